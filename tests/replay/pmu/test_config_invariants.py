"""Spec §8.6 configuration invariants (1, 2, 4, 5, 15) as hypothesis properties.

Random sequences of VMM calls on a two-vCPU VM (``KVM_ARM_VCPU_INIT`` on random pCPUs, every PMU
attribute with valid and invalid payloads, runs on random pCPUs, re-INITs) on random hosts. The
expected return codes and the resulting binding come from :class:`Expected`, a direct encoding of
the attribute rules of spec §1.3, §3.1 and §8.1-§8.4, independent of the model's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from replay.pmu import (
    EventFilter,
    FilterAction,
    HostPmu,
    HostPmus,
    KernelSemantics,
    Kvm,
    KvmRefusedError,
    PmuAttr,
    PmuVer,
    UndefinedAccess,
    Vcpu,
    create_vcpu,
)
from replay.pmu.arch import PMCR_N_MASK, PMCR_N_SHIFT, counter_mask
from replay.pmu.uapi import EBUSY, EINVAL, ENODEV, ENOEXEC, ENXIO
from tests.replay.pmu.helpers import pmu_cpus, pmu_of

Op = tuple[Any, ...]


@st.composite
def hosts(draw: st.DrawFn) -> HostPmus:
    """Random PMUs; sometimes CPUs disagree on PMUVer, which leaves the host without a vPMU."""
    pmus, cpu = [], 0
    for i in range(draw(st.integers(1, 3))):
        size = draw(st.integers(1, 3))
        pmuver = draw(st.sampled_from([PmuVer.V3P1, PmuVer.V3P1, PmuVer.V3P1, PmuVer.IMP]))
        counters = draw(st.integers(0, 8))
        pmus.append(HostPmu(f"pmu{i}", 10 + i, frozenset(range(cpu, cpu + size)), counters, pmuver))
        cpu += size
    return HostPmus(pmus, possible_cpus=range(cpu + draw(st.integers(0, 1))))


CPU = st.integers(0, 12)
VCPU = st.integers(0, 1)
ATTR_OPS = st.one_of(
    st.tuples(st.just(PmuAttr.SET_PMU), st.sampled_from([10, 11, 12, 99])),
    st.tuples(st.just(PmuAttr.FIXED_COUNTERS_ONLY), st.none()),
    st.tuples(
        st.just(PmuAttr.FILTER),
        st.builds(
            EventFilter,
            st.sampled_from([0, 0x11, 0x3FF, 0xFFFF]),
            st.sampled_from([0, 1, 2]),
            st.sampled_from(list(FilterAction)),
        ),
    ),
    st.tuples(st.just(PmuAttr.SET_NR_COUNTERS), st.integers(0, 9)),
    st.tuples(st.just(PmuAttr.IRQ), st.sampled_from([23, 23, 22, 40, 41, 5])),
    st.tuples(st.just(PmuAttr.INIT), st.none()),
)
OPS = st.one_of(
    st.tuples(st.just("init"), VCPU, CPU, st.sampled_from([True, True, True, False])),
    st.tuples(st.just("attr"), VCPU, ATTR_OPS),
    st.tuples(st.just("attr"), VCPU, ATTR_OPS),
    st.tuples(st.just("run"), VCPU, CPU),
    st.tuples(st.just("get_fixed"), VCPU),
)


@dataclass
class ExpectedVcpu:
    initialized: bool = False
    has_pmu: bool = False
    created: bool = False
    irq: int | None = None


@dataclass
class Expected:
    """The spec's rules, stated directly, on the host description alone."""

    host: HostPmus
    kernel: KernelSemantics
    pmu: HostPmu | None = None
    n: int = 0
    fixed: bool = False
    explicit: bool = False
    filtered: bool = False
    ran: bool = False
    features: bool | None = None
    supported: frozenset[int] = frozenset()
    vcpus: list[ExpectedVcpu] = field(default_factory=lambda: [ExpectedVcpu(), ExpectedVcpu()])
    offers: bool = field(init=False)
    event_space: int = field(init=False)

    def __post_init__(self) -> None:
        self.supported = self.host.possible_cpus
        # Spec §8 host preconditions: a vPMU only if every CPU reports the same PMUVer (FTR_EXACT).
        # hosts() draws only real PMUv3 versions, and CPUs without a PMU report the first PMU's.
        versions = {p.pmuver for p in self.host.pmus}
        self.offers = len(versions) == 1
        # FILTER ranges are checked against the host's event space: 10 bits for PMUv3 (IMP).
        self.event_space = 0x400 if versions == {PmuVer.IMP} else 0x10000

    @property
    def v8(self) -> bool:
        return self.kernel == KernelSemantics.V8

    def max_n(self, pmu: HostPmu | None) -> int:
        return 0 if self.fixed or pmu is None else pmu.num_counters

    def init(self, i: int, cpu: int, pmu_v3: bool) -> int:
        v = self.vcpus[i]
        if pmu_v3 and not self.offers:  # invariant 1: no vPMU on this host
            return -EINVAL
        # Every vCPU must ask for the features of the first successful INIT.
        if self.features is not None and self.features != pmu_v3:
            return -EINVAL
        if not v.initialized:
            if pmu_v3 and self.pmu is None:
                default = pmu_of(self.host, cpu)  # invariant 1: B = P(c_init)
                if default is None:
                    return -ENODEV
                self.pmu, self.n = default, default.num_counters
            v.initialized, v.has_pmu, self.features = True, pmu_v3, pmu_v3
        return 0  # a re-INIT resets the vCPU and keeps N (invariant 15)

    def attr(self, i: int, attr: PmuAttr, payload: Any) -> int:
        v = self.vcpus[i]
        if not v.has_pmu:
            return -ENODEV
        if v.created:
            return -EBUSY
        if attr == PmuAttr.SET_PMU:
            return self.set_pmu(payload)
        if attr == PmuAttr.FIXED_COUNTERS_ONLY:
            if self.kernel == KernelSemantics.MAINLINE:
                return -ENXIO  # a released kernel does not know the series' attribute
            if self.ran or (self.filtered and (self.v8 or not self.fixed)):
                return -EBUSY
            if self.v8 and self.explicit:
                return -EBUSY
            self.fixed, self.n = True, 0
            if not self.v8:
                self.supported = pmu_cpus(self.host)
            return 0
        if attr == PmuAttr.FILTER:
            if payload.base_event + payload.nevents > self.event_space:
                return -EINVAL
            if self.ran or (self.v8 and self.fixed):
                return -EBUSY
            self.filtered = True
            return 0
        if attr == PmuAttr.SET_NR_COUNTERS:
            if payload > self.max_n(self.pmu):
                return -EINVAL
            self.n = payload
            return 0
        if attr == PmuAttr.IRQ:
            ppi = 16 <= payload < 32
            irqs = [u.irq for u in self.vcpus if u.irq is not None]
            # One PPI shared by all vCPUs, or one distinct SPI each (own one included).
            if not 16 <= payload < 1020 or any((irq == payload) != ppi for irq in irqs):
                return -EINVAL
            if v.irq is not None:
                return -EBUSY
            v.irq = payload
            return 0
        if v.irq is None:  # INIT
            return -ENXIO
        v.created = True
        return 0

    def set_pmu(self, perf_type: int) -> int:
        target = next((p for p in self.host.pmus if p.perf_type == perf_type), None)
        if target is None:
            return -ENXIO
        if self.ran or (self.filtered and self.pmu is not target):
            return -EBUSY
        if self.v8 and self.fixed:
            return -EBUSY
        # Invariant 2 (v4 exception: FIXED set earlier leaves N = 0).
        self.n = 0 if self.fixed and not self.v8 else target.num_counters
        self.pmu, self.fixed, self.explicit = target, False, True
        self.supported = target.cpus
        return 0


class Run:
    def __init__(self, host: HostPmus, kernel: KernelSemantics) -> None:
        kvm = Kvm(host, kernel=kernel)
        self.vcpus = [create_vcpu(kvm), create_vcpu(kvm)]
        self.kvm = kvm
        self.exp = Expected(host, kernel)

    def apply(self, op: Op) -> None:
        kind, i = op[0], op[1]
        v, exp = self.vcpus[i], self.exp
        cpus = sorted(self.kvm.host.possible_cpus)
        if kind == "init":
            cpu = cpus[op[2] % len(cpus)]
            assert v.vcpu_init(cpu, pmu_v3=op[3]) == exp.init(i, cpu, op[3]), op
        elif kind == "attr":
            attr, payload = op[2]
            assert v.set_attr(attr, payload) == exp.attr(i, attr, payload), op
        elif kind == "get_fixed":
            assert v.get_attr(PmuAttr.FIXED_COUNTERS_ONLY) == (
                (0, None) if exp.fixed else (-ENXIO, None)
            )
        elif kind == "run":
            self.run(i, cpus[op[2] % len(cpus)])

    def run(self, i: int, cpu: int) -> None:
        v, exp = self.vcpus[i], self.exp
        ev = exp.vcpus[i]
        v.vcpu_load(cpu)
        try:
            if not ev.initialized or (ev.has_pmu and not ev.created):
                try:
                    v.guest_enter()
                except KvmRefusedError as err:
                    assert err.errno == (ENOEXEC if not ev.initialized else EINVAL)
                    return
                raise AssertionError("KVM_RUN should have failed")
            outcome = v.guest_enter()
            exp.ran = True
            assert outcome.entered == (cpu in exp.supported)  # invariant 3
            if outcome.entered:
                if ev.has_pmu:
                    self.check_guest_view(v)
                v.guest_exit()
        finally:
            v.vcpu_put()

    def check_guest_view(self, v: Vcpu) -> None:
        exp = self.exp
        assert (v.read_sysreg("PMCR_EL0") & PMCR_N_MASK) >> PMCR_N_SHIFT == exp.n
        if exp.fixed:  # invariant 4
            assert v.read_sysreg("PMCEID0_EL0") == v.read_sysreg("PMCEID1_EL0") == 0
            for n in (0, 5, 30):
                for reg in ("PMEVCNTR<n>_EL0", "PMEVTYPER<n>_EL0"):
                    try:
                        v.read_sysreg(reg, n)
                    except UndefinedAccess:
                        continue
                    raise AssertionError(f"{reg} {n} readable in FIXED mode")
            for reg in ("PMCNTENSET_EL0", "PMINTENSET_EL1", "PMOVSSET_EL0"):
                v.write_sysreg(reg, 0xFFFF_FFFF)
                assert v.read_sysreg(reg) & 0x7FFF_FFFF == 0
        elif not exp.filtered:  # a filter may deny SW_INCR too (PMCEID is ANDed with it)
            assert v.read_sysreg("PMCEID0_EL0") & 1  # SW_INCR always advertised

    def check(self) -> None:
        exp, kvm = self.exp, self.kvm
        assert kvm.arm_pmu is exp.pmu
        assert kvm.supported_cpus == exp.supported
        assert kvm.nr_pmu_counters == exp.n
        assert kvm.fixed_counters_only == exp.fixed
        assert not (
            kvm.rules.set_pmu_fixed_exclusive and kvm.fixed_counters_only and kvm.pmu_explicit
        )
        for v in self.vcpus:  # invariant 15: no bits for unimplemented counters
            if v.has_pmu:
                for reg in ("PMCNTENSET_EL0", "PMINTENCLR_EL1", "PMOVSSET_EL0"):
                    assert v.get_one_reg(reg)[1] & ~counter_mask(exp.n) == 0


TWO = HostPmus(
    [HostPmu("pmu0", 10, frozenset({0, 1}), 6), HostPmu("pmu1", 11, frozenset({2, 3}), 4)],
    possible_cpus=range(5),
)
MIXED = HostPmus(
    [
        HostPmu("pmu0", 10, frozenset({0}), 6, PmuVer.V3P1),
        HostPmu("pmu1", 11, frozenset({1}), 6, PmuVer.IMP),
    ]
)
INIT0 = [("init", 0, 0, True), ("init", 1, 0, True)]


@settings(
    max_examples=max(400, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# FIXED then SET_PMU: v4 leaves N = 0 (flag cleared after kvm_arm_set_pmu), v8 refuses.
@example(
    TWO,
    KernelSemantics.V4,
    [*INIT0, ("attr", 0, (PmuAttr.FIXED_COUNTERS_ONLY, None)), ("attr", 0, (PmuAttr.SET_PMU, 11))],
)
@example(
    TWO,
    KernelSemantics.V8,
    [*INIT0, ("attr", 0, (PmuAttr.FIXED_COUNTERS_ONLY, None)), ("attr", 0, (PmuAttr.SET_PMU, 11))],
)
@example(TWO, KernelSemantics.MAINLINE, [*INIT0, ("attr", 0, (PmuAttr.FIXED_COUNTERS_ONLY, None))])
# SET_PMU then FIXED; FILTER/FIXED orders; re-INIT keeps N; SET_NR_COUNTERS after the VM ran.
@example(
    TWO,
    KernelSemantics.V8,
    [*INIT0, ("attr", 0, (PmuAttr.SET_PMU, 11)), ("attr", 0, (PmuAttr.FIXED_COUNTERS_ONLY, None))],
)
@example(
    TWO,
    KernelSemantics.V4,
    [
        *INIT0,
        ("attr", 0, (PmuAttr.FIXED_COUNTERS_ONLY, None)),
        ("attr", 0, (PmuAttr.FILTER, EventFilter(0, 0))),
        ("attr", 0, (PmuAttr.FIXED_COUNTERS_ONLY, None)),
        ("attr", 0, (PmuAttr.IRQ, 23)),
        ("attr", 0, (PmuAttr.INIT, None)),
        ("run", 0, 4),
        ("run", 0, 2),
        ("attr", 1, (PmuAttr.SET_NR_COUNTERS, 0)),
        ("init", 0, 3, True),
        ("run", 0, 0),
    ],
)
@example(
    TWO,
    KernelSemantics.V4,
    [
        *INIT0,
        ("attr", 0, (PmuAttr.SET_NR_COUNTERS, 3)),
        ("attr", 0, (PmuAttr.IRQ, 23)),
        ("attr", 0, (PmuAttr.INIT, None)),
        ("run", 0, 3),
        ("attr", 1, (PmuAttr.SET_NR_COUNTERS, 1)),  # no "has run" check: N changes VM-wide
        ("run", 0, 1),
        ("init", 0, 0, True),
        ("run", 0, 1),
    ],
)
# No vPMU on a host whose CPUs disagree on PMUVer; INIT on a CPU without a registered PMU.
@example(MIXED, KernelSemantics.V4, [("init", 0, 0, True), ("init", 0, 0, False), ("run", 0, 1)])
@example(TWO, KernelSemantics.V4, [("init", 0, 4, True), ("init", 0, 1, True)])
# A failed first INIT does not fix the VM's feature set (KVM_ARCH_FLAG_VCPU_FEATURES_CONFIGURED).
@example(
    TWO, KernelSemantics.V4, [("init", 0, 4, True), ("init", 0, 4, False), ("init", 1, 0, True)]
)
@given(host=hosts(), kernel=st.sampled_from(list(KernelSemantics)), ops=st.lists(OPS, max_size=30))
def test_configuration_invariants_hold_for_any_vmm_call_sequence(
    host: HostPmus, kernel: KernelSemantics, ops: list[Op]
) -> None:
    run = Run(host, kernel)
    run.check()
    for op in ops:
        run.apply(op)
        run.check()
