"""Host counter contention, unmappable events and hosts without a vPMU (spec §1.1, §1.5).

Expected outcomes are worked out from the kernel functions named in each test: perf core's
pinned-event scheduling (``merge_sched_in()``, ``group_can_go_on()``), the PMUv3 driver's counter
assignment (``armv8pmu_get_event_idx()``) and ``kvm_map_pmu_event()``.
"""

from __future__ import annotations

from replay.pmu import (
    CPU_CYCLES,
    CYCLE_IDX,
    INST_RETIRED,
    HostPmu,
    HostPmus,
    PmuVer,
    Reservation,
    StallReason,
    Vcpu,
)
from replay.pmu.arch import PMCR_C, PMCR_E, PMCR_P
from replay.scenarios import Mode, Scenario, build_vm
from tests.replay.pmu.helpers import running_vcpu

L1D_CACHE_REFILL = 0x03
BR_RETIRED = 0x21


def _host(reserved: dict[int, Reservation], pmuver: int = PmuVer.V3P1) -> HostPmus:
    """Two CPUs of one 6-counter PMU; the host's own pinned events hold ``reserved``."""
    pmu = HostPmu("armv8_cortex_a55", 8, frozenset({0, 1}), num_counters=6, pmuver=pmuver)
    return HostPmus([pmu], reserved=reserved)


def _pin(vcpu: Vcpu, events: list[int]) -> Vcpu:
    """The guest programs event counters 0.. with ``events`` and the cycle counter, then enables
    them all (``perf stat``-like): PMCR.C recreates the cycle counter's event first, PMCR.P the
    event counters' in index order, so that is the order perf schedules them in."""
    vcpu.write_sysreg("PMCNTENCLR_EL0", 0xFFFF_FFFF)  # the reset value is UNKNOWN
    for idx, event in enumerate(events):
        vcpu.write_sysreg("PMEVTYPER<n>_EL0", event, idx)
    vcpu.write_sysreg("PMCR_EL0", PMCR_E | PMCR_P | PMCR_C)
    vcpu.write_sysreg("PMCNTENSET_EL0", 1 << CYCLE_IDX | (1 << len(events)) - 1)
    return vcpu


def _stalled(vcpu: Vcpu) -> list[int]:
    counters = [*range(vcpu.pmcr_n), CYCLE_IDX]
    return [k for k in counters if vcpu.counter_status(k).reason == StallReason.CONTENTION]


def test_one_reserved_counter_leaves_the_last_pinned_event_without_one() -> None:
    six = [INST_RETIRED] * 6
    free = _pin(running_vcpu(Scenario(), _host({}), 0), six)
    assert _stalled(free) == []
    busy = _pin(running_vcpu(Scenario(), _host({0: Reservation(counters=1)}), 0), six)
    # Cycle counter -> PMCCNTR; counters 0-4 -> hardware counters 1-5; counter 5: none left.
    assert _stalled(busy) == [5]
    busy.advance({INST_RETIRED: 100, CPU_CYCLES: 300})
    assert [busy.counter_value(k) for k in (0, 4, 5, CYCLE_IDX)] == [100, 100, 0, 300]


def test_the_error_state_outlives_a_move_to_a_free_cpu_until_re_enabled() -> None:
    vcpu = _pin(
        running_vcpu(Scenario(), _host({0: Reservation(counters=1)}), 0), [INST_RETIRED] * 6
    )
    vcpu.guest_exit()
    vcpu.vcpu_put()
    vcpu.vcpu_load(1)  # nothing reserved on CPU 1, but ERROR events are not scheduled in again
    assert vcpu.guest_enter().entered
    assert _stalled(vcpu) == [5]
    vcpu.write_sysreg("PMCNTENSET_EL0", 1 << 5)  # perf_event_enable() clears the error
    assert _stalled(vcpu) == []
    vcpu.advance({INST_RETIRED: 7})
    assert vcpu.counter_value(5) == 7


def test_a_reserved_cycle_counter_makes_the_guest_cycle_event_take_a_chained_pair() -> None:
    """The hard-lockup detector's cycles event holds PMCCNTR. KVM's cycle-counter event is
    64-bit (``kvm_pmc_is_64bit()``), so before PMUv3p5 it needs an odd/even pair of general
    counters: with five more guest events, seven counters are needed and the PMU has six."""
    lockup = {0: Reservation(cycles=True)}
    five = [INST_RETIRED] * 5
    v31 = _pin(running_vcpu(Scenario(), _host(lockup), 0), five)
    # The pair is counters 0-1; events 0-3 take 2-5; event 4 finds nothing.
    assert _stalled(v31) == [4]
    v35 = _pin(running_vcpu(Scenario(), _host(lockup, PmuVer.V3P5), 0), five)
    assert _stalled(v35) == []  # long counters: one general counter is enough


def test_after_one_failure_no_later_event_of_the_pass_goes_on() -> None:
    """``merge_sched_in()`` clears ``can_add_hw`` at the first failure: the cycle counter's
    event (first in order) finds no free pair, and the later event counters stay off too,
    although a single counter is still free for one of them."""
    host = _host({0: Reservation(counters=5, cycles=True)})
    vcpu = _pin(running_vcpu(Scenario(), host, 0), [INST_RETIRED])
    assert _stalled(vcpu) == [0, CYCLE_IDX]


def test_a_cycles_event_counter_created_first_takes_the_cycle_counter() -> None:
    """No host reservation at all: a guest event counter counting CPU_CYCLES whose event was
    created before the cycle counter's event gets PMCCNTR; the cycle counter's 64-bit event then
    needs a pair, and with every general counter in use it stays in error."""
    vcpu = running_vcpu(Scenario(), _host({}), 0)
    vcpu.write_sysreg("PMCNTENCLR_EL0", 0xFFFF_FFFF)
    events = [CPU_CYCLES] + [INST_RETIRED] * 5
    for idx, event in enumerate(events):
        vcpu.write_sysreg("PMEVTYPER<n>_EL0", event, idx)
    vcpu.write_sysreg("PMCR_EL0", PMCR_E)
    vcpu.write_sysreg("PMCNTENSET_EL0", 0b11_1111)  # their events exist since the PMEVTYPER writes
    vcpu.write_sysreg("PMCNTENSET_EL0", 1 << CYCLE_IDX)
    assert _stalled(vcpu) == [CYCLE_IDX]


APPLE = HostPmus(
    [
        HostPmu(
            "apple_firestorm_pmu",
            8,
            frozenset({0}),
            num_counters=10,
            pmuver=PmuVer.IMP_DEF,
            pmceid=(0x0002_0100, 0x6),
            mappable_events=frozenset({INST_RETIRED, CPU_CYCLES, BR_RETIRED, 0x22}),
        )
    ],
    impdef_traps=True,
)


def test_an_event_the_apple_driver_cannot_translate_gets_no_perf_event() -> None:
    vcpu = running_vcpu(Scenario(), APPLE, 0)
    assert vcpu.pmcr_n == 1  # kvm_arm_pmu_get_max_counters() with IMPDEF traps
    vcpu.write_sysreg("PMEVTYPER0_EL0", L1D_CACHE_REFILL)
    vcpu.write_sysreg("PMCR_EL0", PMCR_E | PMCR_P | PMCR_C)
    vcpu.write_sysreg("PMCNTENSET_EL0", 1 | 1 << CYCLE_IDX)
    assert vcpu.backing_event(0) is None
    assert vcpu.counter_status(0).reason == StallReason.UNMAPPABLE
    vcpu.advance({L1D_CACHE_REFILL: 9, CPU_CYCLES: 20})
    assert (vcpu.counter_value(0), vcpu.counter_value(CYCLE_IDX)) == (0, 20)
    vcpu.write_sysreg("PMEVTYPER0_EL0", BR_RETIRED)
    vcpu.advance({BR_RETIRED: 4})
    assert vcpu.counter_value(0) == 4


def test_a_host_without_a_vpmu_names_that_as_the_reason() -> None:
    mixed = HostPmus(
        [
            HostPmu("armv8_cortex_a53", 8, frozenset({0}), pmuver=PmuVer.IMP),
            HostPmu("armv8_cortex_a55", 9, frozenset({1}), pmuver=PmuVer.V3P1),
        ]
    )
    vcpu = build_vm(Scenario(mode=Mode.NO_PMU), mixed).vcpus[0]
    assert vcpu.counter_status(CYCLE_IDX).reason == StallReason.NO_VPMU_OFFERED
    offered = build_vm(Scenario(mode=Mode.NO_PMU), _host({})).vcpus[0]
    assert offered.counter_status(CYCLE_IDX).reason == StallReason.NO_VPMU
