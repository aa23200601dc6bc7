"""Spec §8.6 counting invariants (3, 6-14, 16) as hypothesis properties.

Random heterogeneous hosts (whose PMUs differ in counter count and, sometimes, in PMU version:
then KVM offers no vPMU at all), random scenarios (default / set-pmu / fixed-counters-only, v4 / v8,
optional event filter) and random operation sequences: loads on random pCPUs, entries, exits,
guest register writes and reads, PMSWINC, userspace counter writes and guest execution. After
every operation the model must agree with the architecture-level oracle of
:mod:`tests.replay.pmu.shadow` on every counter value, PMOVSSET and the interrupt level, and
entry, re-creation and counter-status rules are checked directly. The oracle is architectural,
so the scenarios take the ``architectural_overflow`` option (the kernel's overflow arming is
tested in ``test_quirks.py``). Explicit examples pin the edge
cases: wraps at 2^32 and 2^64, LC/LP toggles, a counter written while running, migration exactly
at an overflow, PMCR.P/C resets.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from importers.host.pmuv3 import CHAIN, CPU_CYCLES, INST_RETIRED, SW_INCR
from replay.pmu import (
    EventFilter,
    FailEntry,
    FilterAction,
    HostPmu,
    HostPmus,
    KernelSemantics,
    KvmRefusedError,
    PmuVer,
    Quirks,
    StallReason,
    UndefinedAccess,
)
from replay.pmu.arch import (
    CYCLE_IDX,
    EXCLUDE_EL0,
    EXCLUDE_EL1,
    PMCR_C,
    PMCR_E,
    PMCR_LC,
    PMCR_LP,
    PMCR_P,
)
from replay.scenarios import Mode, Scenario, build_vm
from tests.replay.pmu.helpers import BITMAP_REGS, pmu_cpus, pmu_of
from tests.replay.pmu.shadow import Shadow

STALL_FRONTEND = 0x23
Op = tuple[Any, ...]


# --- strategies ----------------------------------------------------------------------------------


#: Invariant 12 as the oracle states it: overflow at the architectural wraps.
ARCHITECTURAL = Quirks(architectural_overflow=True)


@st.composite
def hosts(draw: st.DrawFn) -> HostPmus:
    """1-3 PMUs of 1-3 CPUs and 1-6 counters each, plus 0-2 PMUv3 CPUs without a PMU. The PMUs
    usually share one PMU version; one in five gets a version of its own."""
    common = draw(st.sampled_from([PmuVer.V3P1, PmuVer.V3P5]))
    pmus, cpu = [], 0
    for i in range(draw(st.integers(1, 3))):
        size = draw(st.integers(1, 3))
        cpus = frozenset(range(cpu, cpu + size))
        counters = draw(st.integers(1, 6))
        own = draw(st.integers(0, 4)) == 0
        pmuver = draw(st.sampled_from([v for v in PmuVer if v != common])) if own else common
        pmus.append(HostPmu(f"pmu{i}", 8 + i, cpus, num_counters=counters, pmuver=pmuver))
        cpu += size
    return HostPmus(pmus, possible_cpus=range(cpu + draw(st.integers(0, 2))))


def offers_vpmu(host: HostPmus) -> bool:
    """Invariant 1 read off the host description: one PMU version, and a real PMUv3 one."""
    versions = {p.pmuver for p in host.pmus}
    return len(versions) == 1 and versions.isdisjoint({PmuVer.NI, PmuVer.IMP_DEF})


FILTERS = [
    (),
    (EventFilter(CPU_CYCLES, 1, FilterAction.DENY),),
    (EventFilter(INST_RETIRED, 1, FilterAction.DENY),),
    (EventFilter(INST_RETIRED, 1, FilterAction.ALLOW),),
    (EventFilter(0, 0x40, FilterAction.ALLOW), EventFilter(STALL_FRONTEND, 1, FilterAction.DENY)),
]


@st.composite
def scenarios(draw: st.DrawFn, host: HostPmus) -> Scenario:
    mode = draw(st.sampled_from([Mode.DEFAULT, Mode.SET_PMU, Mode.FIXED_COUNTERS_ONLY]))
    series = [KernelSemantics.V4, KernelSemantics.V8]  # a released kernel has no FIXED mode
    kernel = draw(
        st.sampled_from(series if mode == Mode.FIXED_COUNTERS_ONLY else list(KernelSemantics))
    )
    filters = draw(st.sampled_from(FILTERS))
    if mode == Mode.FIXED_COUNTERS_ONLY and kernel == KernelSemantics.V8:
        filters = ()  # v8 refuses any filter with FIXED_COUNTERS_ONLY
    init_cpu = draw(st.sampled_from(sorted(pmu_cpus(host))))
    target = draw(st.sampled_from(host.pmus))
    bound = target if mode == Mode.SET_PMU else pmu_of(host, init_cpu)
    assert bound is not None
    nr_counters = None
    if mode != Mode.FIXED_COUNTERS_ONLY and draw(st.booleans()):
        nr_counters = draw(st.integers(0, bound.num_counters))
    return Scenario(
        mode=mode,
        kernel=kernel,
        init_cpu=init_cpu,
        set_pmu=target.name if mode == Mode.SET_PMU else None,
        event_filters=filters,
        nr_counters=nr_counters,
        quirks=ARCHITECTURAL,
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[HostPmus, Scenario, list[Op]]:
    """A host, a scenario and an operation sequence, usually starting with the guest running
    and some counters enabled so that most operations act on a live vPMU."""
    host = draw(hosts())
    ops: list[Op] = []
    if draw(st.integers(0, 9)):
        ops += [("migrate", draw(st.integers(0, 15))), ("PMCNTENSET_EL0", draw(MASKS))]
        ops += [("pmcr", PMCR_E | draw(st.integers(0, 0xFF)))]
    ops += draw(st.lists(OPS, min_size=1, max_size=50))
    return host, draw(scenarios(host)), ops


IDX = st.sampled_from([0, 1, 2, 3, 4, 5, CYCLE_IDX])
EVENT_IDX = st.integers(0, 5)
VALUES = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 2**32 - 1, 2**32 - 5, 2**32, 2**64 - 1, 2**64 - 5]),
)
MASKS = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([1 << 31, 0b11, 0b1100, 0xFFFFFFFF]))
FILTER_BITS = st.sampled_from([0, EXCLUDE_EL0, EXCLUDE_EL1, EXCLUDE_EL0 | EXCLUDE_EL1])
EVENTS = st.sampled_from([SW_INCR, INST_RETIRED, CPU_CYCLES, CHAIN, STALL_FRONTEND])
COUNTS = st.dictionaries(
    st.sampled_from([CPU_CYCLES, INST_RETIRED, STALL_FRONTEND]),
    st.one_of(st.integers(0, 2**33), st.sampled_from([1, 2**32, 2**32 - 1, 2**40])),
    max_size=3,
)
ADVANCE = st.tuples(st.just("advance"), COUNTS, COUNTS)
OPS = st.one_of(
    ADVANCE,
    ADVANCE,
    st.tuples(st.just("migrate"), st.integers(0, 15)),
    st.tuples(st.just("migrate"), st.integers(0, 15)),
    st.tuples(st.just("load"), st.integers(0, 15)),
    st.tuples(st.sampled_from(["put", "enter", "exit"])),
    st.tuples(st.just("pmcr"), st.integers(0, 0xFF)),
    st.tuples(st.sampled_from(BITMAP_REGS), MASKS),
    st.tuples(st.just("evtyper"), EVENT_IDX, EVENTS, FILTER_BITS),
    st.tuples(st.just("ccfiltr"), FILTER_BITS),
    st.tuples(st.just("write"), IDX, VALUES),
    st.tuples(st.just("user_write"), IDX, VALUES),
    st.tuples(st.just("swinc"), MASKS),
    st.tuples(st.just("read"), IDX),
)


# --- oracle helpers -----------------------------------------------------------------------------


def allowed_by(filters: Sequence[EventFilter]) -> Callable[[int], bool]:
    """The event filter as vcpu.rst §1.3 states it: the first filter sets the default."""

    def allowed(event: int) -> bool:
        if not filters:
            return True
        state = filters[0].action == FilterAction.DENY
        for flt in filters:
            if flt.base_event <= event < flt.base_event + flt.nevents:
                state = flt.action == FilterAction.ALLOW
        return state

    return allowed


def supported_cpus(scenario: Scenario, host: HostPmus) -> frozenset[int]:
    """Invariants 1-3 and §8.4: where guest entry succeeds."""
    if scenario.mode == Mode.SET_PMU:
        pmu = host.by_name(scenario.set_pmu or "")
        assert pmu is not None
        return pmu.cpus
    if scenario.mode == Mode.FIXED_COUNTERS_ONLY and scenario.kernel == KernelSemantics.V4:
        return pmu_cpus(host)
    return host.possible_cpus


def expected_recreations(sh: Shadow, kernel: KernelSemantics, before: Any, cpu: int) -> int | None:
    """Invariant 14 for the cycle counter across one load+entry; None when it does not apply."""
    event, enabled = before
    if event is None or not enabled:
        return None
    target = pmu_of(sh.host, cpu) if sh.fixed else sh.bound
    if kernel == KernelSemantics.V4:
        return int(cpu not in event.pmu.cpus and target is not None)
    if sh.fixed:
        return int(target is not None and target is not event.pmu)
    return 0


# --- the interpreter ----------------------------------------------------------------------------


class Run:
    """Applies operations to the model and the oracle and checks them after each step."""

    def __init__(self, host: HostPmus, scenario: Scenario) -> None:
        self.v = build_vm(scenario, host).vcpus[0]
        self.sh = Shadow.of(self.v, scenario, host, allowed_by(scenario.event_filters))
        self.kernel = scenario.kernel
        self.supported = supported_cpus(scenario, host)
        self.cpus = sorted(host.possible_cpus)
        self.before_load: Any = None
        #: A guest event counter counted CPU_CYCLES at some point (see check()).
        self.cycles_on_event_counter = False

    def apply(self, op: Op) -> None:
        v, sh, kind = self.v, self.sh, op[0]
        if kind == "migrate":
            if v.in_guest:
                v.guest_exit()
            if v.loaded:
                v.vcpu_put()
            self.apply(("load", op[1]))
            self.apply(("enter",))
        elif kind == "load" and not v.loaded:
            event = v.backing_event(CYCLE_IDX)
            self.before_load = (event, event is not None and event.enabled and sh.enabled(31))
            self.created_before = v.creations[CYCLE_IDX]
            v.vcpu_load(self.cpus[op[1] % len(self.cpus)])
        elif kind == "put" and v.loaded and not v.in_guest:
            v.vcpu_put()
            self.before_load = None
        elif kind == "enter" and v.loaded and not v.in_guest:
            self.enter()
        elif kind == "exit" and v.in_guest:
            v.guest_exit()
        elif kind == "user_write" and not v.in_guest:
            name = "PMCCNTR_EL0" if op[1] == CYCLE_IDX else f"PMEVCNTR{op[1]}_EL0"
            assert v.set_one_reg(name, op[2]) == 0
            sh.write_counter(op[1], op[2])
        elif v.in_guest:
            self.guest_op(op)

    def enter(self) -> None:
        v = self.v
        outcome = v.guest_enter()
        # Invariant 3: entry fails exactly outside supported_cpus, naming the pCPU.
        assert outcome.entered == (v.cpu in self.supported)
        if not outcome.entered:
            assert outcome == FailEntry(cpu=v.cpu)
        if self.before_load is not None:
            expected = expected_recreations(self.sh, self.kernel, self.before_load, v.cpu)
            if expected is not None:
                assert v.creations[CYCLE_IDX] - self.created_before == expected
        self.before_load = None

    def guest_op(self, op: Op) -> None:
        v, sh, kind = self.v, self.sh, op[0]
        if kind == "advance":
            v.advance(op[1], op[2])
            sh.advance(v.cpu, op[1], op[2])
        elif kind == "pmcr":
            v.write_sysreg("PMCR_EL0", op[1])
            sh.write_pmcr(op[1])
        elif kind in BITMAP_REGS:
            v.write_sysreg(kind, op[1])
            val = op[1] & sh.implemented
            attr = {"PMCN": "cntenset", "PMIN": "intenset", "PMOV": "ovsset"}[kind[:4]]
            if "SET" in kind:
                setattr(sh, attr, getattr(sh, attr) | val)
            else:
                setattr(sh, attr, getattr(sh, attr) & ~val)
        elif kind == "evtyper":
            self.maybe_undef(op[1], lambda: v.write_sysreg(f"PMEVTYPER{op[1]}_EL0", op[2] | op[3]))
            if op[1] < sh.n:
                sh.write_evtyper(op[1], op[2] | op[3])
                self.cycles_on_event_counter |= op[2] == CPU_CYCLES
        elif kind == "ccfiltr":
            v.write_sysreg("PMCCFILTR_EL0", op[1])
            sh.write_evtyper(CYCLE_IDX, op[1])
        elif kind == "write":
            name = "PMCCNTR_EL0" if op[1] == CYCLE_IDX else f"PMEVCNTR{op[1]}_EL0"
            self.maybe_undef(op[1], lambda: v.write_sysreg(name, op[2]))
            if op[1] == CYCLE_IDX or op[1] < sh.n:
                sh.write_counter(op[1], op[2])
        elif kind == "swinc":
            v.write_sysreg("PMSWINC_EL0", op[1])
            sh.swinc(op[1])
        elif kind == "read":
            name = "PMCCNTR_EL0" if op[1] == CYCLE_IDX else f"PMEVCNTR{op[1]}_EL0"
            got = self.maybe_undef(op[1], lambda: v.read_sysreg(name))
            if got is not None:
                assert got == sh.value[op[1]]

    def maybe_undef(self, idx: int, access: Callable[[], Any]) -> Any:
        """Counters at or above N UNDEF (spec §2.8, invariant 4)."""
        if idx != CYCLE_IDX and idx >= self.sh.n:
            with pytest.raises(UndefinedAccess):
                access()
            return None
        return access()

    def check(self) -> None:
        v, sh = self.v, self.sh
        if any(e is not None and e.error for e in v.events):
            # A pinned event without a hardware counter (perf's error state) is beyond the
            # architectural oracle. With no host reservation it takes a second CPU_CYCLES event
            # that got the cycle counter first (test_contention.py).
            assert self.cycles_on_event_counter
            reject()
        for k in range(32):
            if (sh.implemented >> k) & 1:
                assert v.counter_value(k) == sh.value[k], k
        assert v.get_one_reg("PMOVSSET_EL0")[1] == sh.ovsset
        assert v.irq_level == sh.irq_status()  # invariant 12, second statement
        if v.in_guest:
            self.check_status()

    def check_status(self) -> None:
        """Invariants 7, 8 and 16: which counters count on this pCPU, and why the others stop."""
        v, sh = self.v, self.sh
        for k in range(32):
            eligible = (
                (sh.implemented >> k) & 1
                and sh.enabled(k)
                and sh.event(k) not in (SW_INCR, CHAIN)
                and sh.allowed(sh.event(k))
                and sh.evtyper[k] & (EXCLUDE_EL0 | EXCLUDE_EL1) != EXCLUDE_EL0 | EXCLUDE_EL1
            )
            if not eligible:
                continue
            status = v.counter_status(k)
            assert status.counting == sh.pmu_counts_on(v.cpu), (k, status)
            if not status.counting:
                no_pmu = pmu_of(sh.host, v.cpu) is None
                cause = StallReason.NO_PMU_CPU if no_pmu else StallReason.FOREIGN_CPU
                assert status.reason == cause, (k, status)


def _replay(host: HostPmus, scenario: Scenario, ops: Sequence[Op]) -> Run:
    run = Run(host, scenario)
    run.check()
    for op in ops:
        run.apply(op)
        run.check()
    return run


# --- explicit edge cases --------------------------------------------------------------------------

A53 = HostPmu("a53", 8, frozenset({0, 1}), pmuver=PmuVer.V3P1)
A57 = HostPmu("a57", 9, frozenset({2, 3}), pmuver=PmuVer.V3P1)
BIG_LITTLE = HostPmus([A53, A57], possible_cpus=range(5))  # CPU 4: PMUv3, no registered PMU
P5_BIG_LITTLE = HostPmus(
    [
        HostPmu("a510", 8, frozenset({0, 1}), pmuver=PmuVer.V3P5),
        HostPmu("a710", 9, frozenset({2, 3}), pmuver=PmuVer.V3P5),
    ]
)
DEFAULT0 = Scenario(quirks=ARCHITECTURAL)
FIXED = Scenario(mode=Mode.FIXED_COUNTERS_ONLY, kernel=KernelSemantics.V4, quirks=ARCHITECTURAL)
FIXED8 = Scenario(mode=Mode.FIXED_COUNTERS_ONLY, kernel=KernelSemantics.V8, quirks=ARCHITECTURAL)


def cycles_at(value: int, *, irq: bool = False) -> list[Op]:
    """The cycle counter running on CPU 0 from ``value``, its overflow interrupt on if ``irq``."""
    ops: list[Op] = [
        ("load", 0),
        ("enter",),
        ("PMCNTENSET_EL0", 1 << 31),
        ("pmcr", PMCR_E | PMCR_C),
    ]
    if irq:
        ops.append(("PMINTENSET_EL1", 1 << 31))
    return [*ops, ("write", 31, value)]


# Event counter 0 counts INST_RETIRED, counter 1 chains on it, counter 2 is a SW_INCR counter.
EVENTS_ON = [
    ("load", 0),
    ("enter",),
    ("evtyper", 0, INST_RETIRED, 0),
    ("evtyper", 1, CHAIN, 0),
    ("evtyper", 2, SW_INCR, 0),
    ("PMCNTENSET_EL0", 0b111 | 1 << 31),
    ("PMINTENSET_EL1", 0xFFFFFFFF),
    ("pmcr", PMCR_E | PMCR_P | PMCR_C),
]


@settings(
    max_examples=max(600, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# FIXED under v8 on a pCPU no PMU covers: PMCR.E toggled there leaves the old, disabled event
# attached; the guest-enabled cycle counter is stalled (no_pmu_cpu), not "disabled".
@example(
    case=(
        HostPmus([HostPmu("pmu0", 8, frozenset({0}))], possible_cpus=[0, 1]),
        FIXED8,
        [
            ("migrate", 0),
            ("PMCNTENSET_EL0", 0),
            ("pmcr", 1),
            ("migrate", 1),
            ("pmcr", 0),
            ("pmcr", 1),
        ],
    )
)
# Wrap at 2^32 (LC=0) and at 2^64 (LC=1) of the cycle counter, with the interrupt enabled.
@example(
    case=(
        BIG_LITTLE,
        DEFAULT0,
        [
            *cycles_at(2**32 - 10, irq=True),
            ("advance", {CPU_CYCLES: 10}, {}),
            ("advance", {CPU_CYCLES: 2**32}, {}),
            ("PMOVSCLR_EL0", 1 << 31),
            ("pmcr", PMCR_E | PMCR_LC),
            ("write", 31, 2**64 - 3),
            ("advance", {CPU_CYCLES: 2}, {}),
            ("advance", {}, {CPU_CYCLES: 1}),
        ],
    )
)
# LC/LP toggled while counters run (64-bit event counters: PMUv3p5).
@example(
    case=(
        P5_BIG_LITTLE,
        DEFAULT0,
        [
            *EVENTS_ON,
            ("write", 0, 2**32 - 1),
            ("pmcr", PMCR_E | PMCR_LP),
            ("advance", {INST_RETIRED: 5}, {}),
            ("pmcr", PMCR_E),
            ("advance", {INST_RETIRED: 2**32}, {}),
            ("pmcr", PMCR_E | PMCR_LP | PMCR_LC),
            ("write", 0, 2**64 - 1),
            ("advance", {INST_RETIRED: 1, CPU_CYCLES: 2**33}, {}),
        ],
    )
)
# Counters written while running; SW_INCR wrap chaining; P and C resets.
@example(
    case=(
        BIG_LITTLE,
        DEFAULT0,
        [
            *EVENTS_ON,
            ("advance", {INST_RETIRED: 100, CPU_CYCLES: 1000}, {}),
            ("write", 0, 2**32 - 1),
            ("write", 31, 12345),
            ("advance", {INST_RETIRED: 3}, {CPU_CYCLES: 7}),
            ("write", 2, 2**32 - 1),
            ("swinc", 0b100),
            ("swinc", 0b101),
            ("read", 1),
            ("pmcr", PMCR_E | PMCR_P),
            ("read", 31),
            ("pmcr", PMCR_E | PMCR_C),
            ("read", 0),
        ],
    )
)
# Migration exactly at an overflow: the cycle counter sits at 2^32 - 1 when the vCPU moves.
@example(
    case=(
        BIG_LITTLE,
        FIXED,
        [
            *cycles_at(2**32 - 1, irq=True),
            ("migrate", 2),
            ("advance", {CPU_CYCLES: 1}, {}),
            ("migrate", 4),  # no registered PMU: v4 refuses entry
            ("migrate", 1),
            ("advance", {CPU_CYCLES: 2**32}, {}),
        ],
    )
)
# ... and exactly at the wrap: the overflow happens in the last interval before the move.
@example(
    case=(
        BIG_LITTLE,
        FIXED,
        [
            *cycles_at(2**32 - 1, irq=True),
            ("advance", {CPU_CYCLES: 1}, {}),
            ("migrate", 3),
            ("advance", {CPU_CYCLES: 2**32 - 1}, {}),
            ("PMOVSCLR_EL0", 1 << 31),
            ("advance", {CPU_CYCLES: 1}, {}),
            ("migrate", 0),
        ],
    )
)
@example(
    case=(
        BIG_LITTLE,
        FIXED8,
        [
            *cycles_at(2**32 - 1),
            ("migrate", 4),  # v8: runs, frozen
            ("advance", {CPU_CYCLES: 50}, {}),
            ("migrate", 3),
            ("advance", {CPU_CYCLES: 1}, {}),
            ("migrate", 2),
            ("advance", {CPU_CYCLES: 5}, {}),
        ],
    )
)
# Default mode: frozen on the foreign cluster, exactly at the overflow point.
@example(
    case=(
        BIG_LITTLE,
        DEFAULT0,
        [
            *cycles_at(2**32 - 1),
            ("migrate", 2),
            ("advance", {CPU_CYCLES: 10}, {}),
            ("migrate", 4),
            ("advance", {CPU_CYCLES: 10}, {}),
            ("migrate", 0),
            ("advance", {CPU_CYCLES: 1}, {}),
        ],
    )
)
@given(case=cases())
def test_counting_invariants_hold_for_any_operation_sequence(
    case: tuple[HostPmus, Scenario, list[Op]],
) -> None:
    host, scenario, ops = case
    if not offers_vpmu(host):
        # Invariant 1: PMUVer differs across CPUs, so the sanitised value is 0 and
        # KVM_ARM_VCPU_INIT with the PMU_V3 feature fails with -EINVAL in every mode.
        with pytest.raises(KvmRefusedError) as refused:
            build_vm(scenario, host)
        assert refused.value.errno == errno.EINVAL
        return
    _replay(host, scenario, ops)
