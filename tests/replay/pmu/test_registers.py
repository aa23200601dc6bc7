"""Guest-visible register semantics of spec §2.6-§2.8 not covered by the selftest port, the
userspace register interface, and the run-side state rules."""

from __future__ import annotations

import pytest

from importers.host.pmuv3 import CHAIN, SW_INCR
from replay.pmu import (
    CPU_CYCLES,
    CYCLE_IDX,
    INST_RETIRED,
    EventFilter,
    FilterAction,
    HostPmu,
    HostPmus,
    KvmRefusedError,
    PmuAttr,
    PmuVer,
    StallReason,
    UndefinedAccess,
    Vcpu,
    VpmuStateError,
    create_vcpu,
)
from replay.pmu.arch import (
    EXCLUDE_EL0,
    EXCLUDE_EL1,
    EXCLUDE_NS_EL0,
    EXCLUDE_NS_EL1,
    PMCR_C,
    PMCR_D,
    PMCR_DP,
    PMCR_E,
    PMCR_LC,
    PMCR_LP,
    PMCR_N_SHIFT,
    PMCR_P,
    PMCR_X,
    USERENR_CR,
    USERENR_EN,
    USERENR_ER,
    USERENR_SW,
)
from replay.pmu.errors import UnknownRegisterError
from replay.pmu.kvm import Kvm
from replay.pmu.state import RESET_UNKNOWN
from replay.pmu.uapi import EBUSY, ENOENT, ENOEXEC
from replay.scenarios import Mode, Scenario, build_vm
from tests.replay.pmu.helpers import A53, running_vcpu, two_clusters


def _cycles_on(v: Vcpu) -> None:
    v.write_sysreg("PMCNTENSET_EL0", 1 << CYCLE_IDX)
    v.write_sysreg("PMCR_EL0", PMCR_E | PMCR_C)


def test_pmcr_stored_bits_and_read_as_zero_fields() -> None:
    """D, X and DP are stored and read back without effect; P, C, IDCODE and IMP read 0; N is
    not writable; LP needs PMUv3p5 (spec §2.6, invariant 6)."""
    v = running_vcpu(Scenario(), two_clusters(), 0)
    v.write_sysreg("PMCNTENSET_EL0", 1 << CYCLE_IDX)
    v.write_sysreg("PMCR_EL0", 0xFF00_FFFF_FFFF_FFFF)
    pmcr = v.read_sysreg("PMCR_EL0")
    assert pmcr == PMCR_E | PMCR_D | PMCR_X | PMCR_DP | PMCR_LC | 6 << PMCR_N_SHIFT
    v.write_sysreg("PMCCNTR_EL0", 0)
    v.advance({CPU_CYCLES: 6400})
    assert v.read_sysreg("PMCCNTR_EL0") == 6400  # D=1 does not divide by 64
    p5 = running_vcpu(
        Scenario(), HostPmus([HostPmu("x", 8, frozenset({0}), pmuver=PmuVer.V3P5)]), 0
    )
    p5.write_sysreg("PMCR_EL0", PMCR_LP)
    assert p5.read_sysreg("PMCR_EL0") & PMCR_LP


def test_pmcr_lc_is_res1_without_aarch32_el0() -> None:
    host = HostPmus([HostPmu("x", 8, frozenset({0}))], aarch32_el0=False)
    v = running_vcpu(Scenario(), host, 0)
    assert v.read_sysreg("PMCR_EL0") & PMCR_LC  # reset_pmcr
    v.write_sysreg("PMCR_EL0", 0)
    assert v.read_sysreg("PMCR_EL0") & PMCR_LC  # access_pmcr
    v.guest_exit()
    assert v.set_one_reg("PMCR_EL0", 0) == 0
    assert v.get_one_reg("PMCR_EL0")[1] & PMCR_LC  # set_pmcr


@pytest.mark.parametrize(
    ("reg", "write", "needs"),
    [
        ("PMCR_EL0", False, USERENR_EN),
        ("PMCR_EL0", True, USERENR_EN),
        ("PMCNTENSET_EL0", True, USERENR_EN),
        ("PMOVSCLR_EL0", False, USERENR_EN),
        ("PMCEID0_EL0", False, USERENR_EN),
        ("PMCCFILTR_EL0", False, USERENR_EN),
        ("PMEVTYPER0_EL0", True, USERENR_EN),
        ("PMSWINC_EL0", True, USERENR_SW),
        ("PMSWINC_EL0", True, USERENR_EN),
        ("PMCCNTR_EL0", False, USERENR_CR),
        ("PMCCNTR_EL0", False, USERENR_EN),
        ("PMEVCNTR0_EL0", False, USERENR_ER),
        ("PMXEVCNTR_EL0", False, USERENR_ER),
        ("PMSELR_EL0", True, USERENR_ER),
        ("PMCCNTR_EL0", True, USERENR_EN),  # counter writes need EN as well
        ("PMEVCNTR0_EL0", True, USERENR_EN),
    ],
)
def test_pmuserenr_gates_el0_accesses(reg: str, write: bool, needs: int) -> None:
    """``check_pmu_access_disabled()``: without the enabling bit an EL0 access UNDEFs."""
    v = running_vcpu(Scenario(), two_clusters(), 0)
    v.write_sysreg("PMSELR_EL0", 0)

    def access() -> None:
        if write:
            v.write_sysreg(reg, 0, el0=True)
        else:
            v.read_sysreg(reg, el0=True)

    with pytest.raises(UndefinedAccess, match="EL0"):
        access()
    v.write_sysreg("PMUSERENR_EL0", needs)
    access()


def test_counter_writes_from_el0_need_en_besides_cr_or_er() -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    v.write_sysreg("PMCCNTR_EL0", 0x1234_5678_9ABC)  # from EL1; the counter is not enabled
    v.write_sysreg("PMUSERENR_EL0", USERENR_CR | USERENR_ER)
    assert v.read_sysreg("PMCCNTR_EL0", el0=True) == 0x1234_5678_9ABC
    with pytest.raises(UndefinedAccess):
        v.write_sysreg("PMCCNTR_EL0", 1, el0=True)


def test_el1_only_and_write_only_registers() -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    v.write_sysreg("PMUSERENR_EL0", 0xFF)
    assert v.read_sysreg("PMUSERENR_EL0", el0=True) == 0xF
    for access in (
        lambda: v.read_sysreg("PMINTENSET_EL1", el0=True),  # never from EL0
        lambda: v.write_sysreg("PMUSERENR_EL0", 0, el0=True),
        lambda: v.read_sysreg("PMSWINC_EL0"),
        lambda: v.write_sysreg("PMCEID1_EL0", 0),
    ):
        with pytest.raises(UndefinedAccess):
            access()
    with pytest.raises(UnknownRegisterError, match="PMCEID1_EL0, PMCCNTR_EL0"):
        v.read_sysreg("PMBOGUS_EL0")
    with pytest.raises(UnknownRegisterError, match=r"index 0\.\.30"):
        v.read_sysreg("PMEVCNTR<n>_EL0", 31)


def test_pmselr_and_indirect_access_to_the_cycle_counter() -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    v.write_sysreg("PMSELR_EL0", 0xFFFF_FFE3)
    assert v.read_sysreg("PMSELR_EL0") == 3
    v.write_sysreg("PMSELR_EL0", CYCLE_IDX)
    v.write_sysreg("PMXEVTYPER_EL0", EXCLUDE_EL1)
    assert v.read_sysreg("PMCCFILTR_EL0") == EXCLUDE_EL1
    v.write_sysreg("PMXEVCNTR_EL0", 77)
    assert v.read_sysreg("PMCCNTR_EL0") == 77


def test_pmccfiltr_counts_cycles_whatever_its_event_field() -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    _cycles_on(v)
    v.write_sysreg("PMCCFILTR_EL0", INST_RETIRED)
    assert v.read_sysreg("PMCCFILTR_EL0") == INST_RETIRED  # stored as written
    v.advance({CPU_CYCLES: 10, INST_RETIRED: 3})
    assert v.read_sysreg("PMCCNTR_EL0") == 10


@pytest.mark.parametrize(
    ("bits", "expected"),
    [(0, 11), (EXCLUDE_EL0, 10), (EXCLUDE_EL1, 1), (EXCLUDE_EL0 | EXCLUDE_EL1, 0)],
)
def test_u_and_p_bits_select_guest_el0_and_el1(bits: int, expected: int) -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    _cycles_on(v)
    v.write_sysreg("PMCCFILTR_EL0", bits)
    v.advance({CPU_CYCLES: 10}, {CPU_CYCLES: 1})
    assert v.read_sysreg("PMCCNTR_EL0") == expected
    status = v.counter_status(CYCLE_IDX)
    assert status.counting == (expected > 0)
    assert status.reason == (StallReason.EXCLUDED if expected == 0 else None)


def test_pmceid_advertises_the_bound_pmu_masked_by_the_filter() -> None:
    """``kvm_pmu_get_pmceid()``: SW_INCR and CHAIN always, no STALL_SLOT*, filter applied."""
    pmceid1 = 0x0000_0007_E000_0001  # 0x20, 0x3D-0x3F, and extended events 0x4020-0x4022
    host = HostPmus([HostPmu("x", 8, frozenset({0}), pmceid=(0x4000_0008_0000_0000, pmceid1))])
    v = running_vcpu(Scenario(), host, 0)
    assert v.read_sysreg("PMCEID0_EL0") == 0x4000_0008_4000_0001
    assert v.read_sysreg("PMCEID1_EL0") == 0x0000_0007_0000_0001
    deny = (EventFilter(0x1E, 1, FilterAction.DENY), EventFilter(0x4020, 1, FilterAction.DENY))
    v = running_vcpu(Scenario(event_filters=deny), host, 0)
    assert v.read_sysreg("PMCEID0_EL0") == 0x4000_0008_0000_0001
    assert v.read_sysreg("PMCEID1_EL0") == 0x0000_0006_0000_0001
    imp = HostPmus([HostPmu("x", 8, frozenset({0}), pmuver=PmuVer.IMP, pmceid=(0, pmceid1))])
    v = running_vcpu(Scenario(event_filters=(EventFilter(0, 1, FilterAction.DENY),)), imp, 0)
    assert v.read_sysreg("PMCEID1_EL0") == 1  # no extended half in a 10-bit event space
    assert v.read_sysreg("PMCEID0_EL0") == 1 << CHAIN


def test_filtered_cycles_stall_the_cycle_counter() -> None:
    deny = (EventFilter(CPU_CYCLES, 1, FilterAction.DENY),)
    v = running_vcpu(Scenario(event_filters=deny), two_clusters(), 0)
    _cycles_on(v)
    v.advance({CPU_CYCLES: 100})
    assert v.read_sysreg("PMCCNTR_EL0") == 0
    assert v.counter_status(CYCLE_IDX).reason == StallReason.FILTERED


def test_counter_statuses() -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    v.write_sysreg("PMCNTENCLR_EL0", 0xFFFF_FFFF)
    assert v.counter_status(0).reason == StallReason.DISABLED
    assert v.counter_status(9).reason == StallReason.UNIMPLEMENTED
    v.write_sysreg("PMEVTYPER0_EL0", SW_INCR)
    v.write_sysreg("PMEVTYPER1_EL0", CHAIN)
    v.write_sysreg("PMEVTYPER2_EL0", INST_RETIRED)
    v.write_sysreg("PMCNTENSET_EL0", 0b111)
    v.write_sysreg("PMCR_EL0", PMCR_E)
    assert v.counter_status(0).reason == v.counter_status(1).reason == StallReason.SOFTWARE
    assert v.counter_status(2).counting and v.counter_status(2).host_pmu == A53
    v.guest_exit()
    v.vcpu_put()
    assert v.counter_status(2).reason == StallReason.NOT_LOADED
    with pytest.raises(IndexError):
        v.counter_status(32)


def test_sw_incr_and_chain_change_only_by_software_increments() -> None:
    """Invariant 13: PMSWINC adds 1 to enabled SW_INCR counters (with PMCR.E); CHAIN counts
    overflows of its even partner; execution changes neither."""
    v = running_vcpu(Scenario(), two_clusters(), 0)
    v.write_sysreg("PMEVTYPER0_EL0", SW_INCR)
    v.write_sysreg("PMEVTYPER1_EL0", CHAIN)
    v.write_sysreg("PMCNTENSET_EL0", 0b11)
    v.write_sysreg("PMCR_EL0", PMCR_P)
    v.write_sysreg("PMSWINC_EL0", 0b1)
    assert v.read_sysreg("PMEVCNTR0_EL0") == 0  # PMCR.E clear
    v.write_sysreg("PMCR_EL0", PMCR_E)
    v.write_sysreg("PMEVCNTR0_EL0", 2**32 - 2)
    v.advance({SW_INCR: 50, CPU_CYCLES: 10, CHAIN: 3})
    v.write_sysreg("PMSWINC_EL0", 0xFFFF_FFFF)
    v.write_sysreg("PMSWINC_EL0", 0b1)
    assert v.read_sysreg("PMEVCNTR0_EL0") == 0
    assert v.read_sysreg("PMEVCNTR1_EL0") == 1
    assert v.read_sysreg("PMOVSSET_EL0") & 1


def test_interrupt_level_follows_overflow_enable_and_clear() -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    v.write_sysreg("PMOVSCLR_EL0", 0xFFFF_FFFF)
    _cycles_on(v)
    v.write_sysreg("PMINTENSET_EL1", 1 << CYCLE_IDX)
    v.write_sysreg("PMCCNTR_EL0", 2**32 - 1)
    v.advance({CPU_CYCLES: 1})
    assert v.irq_level and v.overflow_status()
    v.write_sysreg("PMCR_EL0", 0)  # PMCR.E gates the interrupt
    assert not v.irq_level
    v.write_sysreg("PMCR_EL0", PMCR_E)
    assert v.irq_level
    v.write_sysreg("PMOVSCLR_EL0", 1 << CYCLE_IDX)
    assert not v.irq_level


def test_counter_written_while_running_reads_back_exactly() -> None:
    """Invariant 10, and invariant 9: re-creations by filter writes and enable toggles keep the
    value."""
    v = running_vcpu(Scenario(), two_clusters(), 0)
    _cycles_on(v)
    v.advance({CPU_CYCLES: 500})
    v.write_sysreg("PMCCNTR_EL0", 123_456_789_012)
    assert v.read_sysreg("PMCCNTR_EL0") == 123_456_789_012
    v.advance({CPU_CYCLES: 8})
    before = v.read_sysreg("PMCCNTR_EL0")
    created = v.creations[CYCLE_IDX]
    v.write_sysreg("PMCCFILTR_EL0", EXCLUDE_EL0)
    v.write_sysreg("PMCNTENCLR_EL0", 1 << CYCLE_IDX)
    v.write_sysreg("PMCNTENSET_EL0", 1 << CYCLE_IDX)
    assert v.read_sysreg("PMCCNTR_EL0") == before == 123_456_789_020
    assert v.creations[CYCLE_IDX] == created + 1  # the filter write; the toggle only disables


def test_userspace_register_interface() -> None:
    kvm = Kvm(two_clusters())
    v = create_vcpu(kvm)
    assert v.get_one_reg("PMCR_EL0") == (-ENOEXEC, 0)
    assert v.set_one_reg("PMCR_EL0", 0) == -ENOEXEC
    assert v.vcpu_init(0) == 0
    assert v.get_one_reg("PMSWINC_EL0") == (0, 0)
    assert v.set_one_reg("PMSWINC_EL0", 5) == 0  # write-ignored
    assert v.get_one_reg("PMCEID0_EL0") == (-ENOENT, 0)
    assert v.set_one_reg("PMCNTENCLR_EL0", 0b101 | 1 << 20) == 0  # raw value, through CLR
    assert v.get_one_reg("PMCNTENSET_EL0") == (0, 0b101)
    assert v.set_one_reg("PMEVTYPER<n>_EL0", 0xFFFF_FFFF_FFFF, 4) == 0
    assert v.get_one_reg("PMEVTYPER4_EL0") == (0, 0xFFFF_FFFF_FFFF)  # stored raw
    assert v.set_one_reg("PMSELR_EL0", 0x123) == 0
    assert v.get_one_reg("PMSELR_EL0") == (0, 0x123)
    nopmu = create_vcpu(Kvm(two_clusters()))
    assert nopmu.vcpu_init(0, pmu_v3=False) == 0
    assert nopmu.get_one_reg("PMCR_EL0") == (-ENOENT, 0)
    assert nopmu.set_one_reg("PMCR_EL0", 0) == -ENOENT


def test_userspace_counter_write_applies_at_next_entry() -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    _cycles_on(v)
    v.advance({CPU_CYCLES: 10})
    v.guest_exit()
    assert v.set_one_reg("PMCCNTR_EL0", 1000) == 0
    assert v.get_one_reg("PMCCNTR_EL0") == (0, 1000)
    assert v.backing_event(CYCLE_IDX) is None  # released; recreated by the reload
    assert v.guest_enter().entered
    v.advance({CPU_CYCLES: 5})
    assert v.read_sysreg("PMCCNTR_EL0") == 1005


def test_vcpu_reset_keeps_events_and_n() -> None:
    """Re-INIT resets the registers (kernel's UNKNOWN pattern) but, since fe53538069bb, only
    requests a reload: the backing events survive and keep their counts (spec §2.9)."""
    v = running_vcpu(Scenario(nr_counters=3), two_clusters(), 0)
    v.write_sysreg("PMEVTYPER0_EL0", INST_RETIRED)
    v.write_sysreg("PMCNTENSET_EL0", 1)
    v.write_sysreg("PMCR_EL0", PMCR_E | PMCR_P)
    v.advance({INST_RETIRED: 40})
    v.guest_exit()
    v.vcpu_put()
    assert v.vcpu_init(5) == 0
    assert v.pmcr_n == 3
    assert v.get_one_reg("PMCNTENSET_EL0")[1] == RESET_UNKNOWN & (1 << 31 | 0b111)
    assert v.get_one_reg("PMEVCNTR0_EL0")[1] == (RESET_UNKNOWN & 0xFFFF_FFFF) + 40
    event = v.backing_event(0)
    assert event is not None and event.count == 40
    v.vcpu_load(0)
    assert v.guest_enter().entered
    assert v.backing_event(0) is event and not event.enabled  # PMCR.E reset to 0


def test_set_nr_counters_after_the_vm_ran_changes_n_vm_wide() -> None:
    """SET_NR_COUNTERS has no "VM has run" check (spec §2.6, §8.2): a vCPU without PMU INIT
    changes N, and running vCPUs see it at their next PMCR read."""
    cfg = build_vm(Scenario(), two_clusters())
    (v0,) = cfg.vcpus
    late = create_vcpu(cfg.kvm)  # a vCPU that has not done its PMU INIT yet
    assert late.vcpu_init(0) == 0
    v0.vcpu_load(0)
    assert v0.guest_enter().entered
    v0.guest_exit()
    assert late.set_attr(PmuAttr.SET_PMU, 9) == -EBUSY  # the VM has run
    assert late.set_attr(PmuAttr.SET_NR_COUNTERS, 2) == 0
    assert v0.guest_enter().entered
    assert v0.read_sysreg("PMCR_EL0") >> PMCR_N_SHIFT & 0x1F == 2


def test_userspace_pmcr_n_write_is_ignored_once_the_vm_ran() -> None:
    """``set_pmcr()``: the legacy N write takes effect only while ``!kvm_vm_has_ran_once()``
    (and ``new_n <= kvm_arm_pmu_get_max_counters()``); afterwards it is silently ignored."""
    cfg = build_vm(Scenario(), two_clusters())
    (v,) = cfg.vcpus
    assert v.set_one_reg("PMCR_EL0", 7 << PMCR_N_SHIFT) == 0  # more than the A53's 6: ignored
    assert v.pmcr_n == 6
    assert v.set_one_reg("PMCR_EL0", 4 << PMCR_N_SHIFT) == 0
    assert v.pmcr_n == 4
    v.vcpu_load(0)
    assert v.guest_enter().entered
    v.guest_exit()
    assert v.set_one_reg("PMCR_EL0", 2 << PMCR_N_SHIFT) == 0
    assert v.pmcr_n == 4
    assert v.get_one_reg("PMCR_EL0")[1] >> PMCR_N_SHIFT & 0x1F == 4


@pytest.mark.parametrize(
    ("evtyper", "counted"),
    [
        (EXCLUDE_NS_EL0, 10),  # U=0, NSU=1: U != NSU, so EL0 is not counted
        (EXCLUDE_EL0 | EXCLUDE_NS_EL0, 17),  # U=1, NSU=1: U == NSU, EL0 counted
        (EXCLUDE_NS_EL1, 7),  # P=0, NSK=1: EL1 not counted
    ],
)
def test_userspace_written_ns_bits_reach_the_backing_event(evtyper: int, counted: int) -> None:
    """A guest write masks NSK/NSU away (no EL3), but ``KVM_SET_ONE_REG`` stores PMEVTYPER raw,
    and ``kvm_pmc_counts_at_el0()``/``_el1()`` compare U with NSU and P with NSK."""
    (v,) = build_vm(Scenario(), two_clusters()).vcpus
    assert v.set_one_reg("PMEVTYPER<n>_EL0", evtyper | INST_RETIRED, 0) == 0
    v.vcpu_load(0)
    assert v.guest_enter().entered
    v.write_sysreg("PMCNTENSET_EL0", 1)
    v.write_sysreg("PMCR_EL0", PMCR_E | PMCR_P)  # PMCR.P recreates the event from the raw type
    v.advance({INST_RETIRED: 10}, {INST_RETIRED: 7})
    assert v.read_sysreg("PMEVCNTR0_EL0") == counted


def test_pmswinc_touches_only_counters_below_n() -> None:
    """``access_pmswinc()`` masks the written value with the accessible counters before
    ``kvm_pmu_software_increment()``: once N shrinks (SET_NR_COUNTERS from a vCPU without PMU
    INIT, spec §2.6), a counter above N that is still enabled in PMCNTENSET is left alone."""
    cfg = build_vm(Scenario(), two_clusters())
    (v,) = cfg.vcpus
    v.vcpu_load(0)
    assert v.guest_enter().entered
    v.write_sysreg("PMEVTYPER5_EL0", SW_INCR)
    v.write_sysreg("PMEVTYPER0_EL0", SW_INCR)
    v.write_sysreg("PMCNTENSET_EL0", 1 << 5 | 1)
    v.write_sysreg("PMCR_EL0", PMCR_E | PMCR_P)
    v.write_sysreg("PMSWINC_EL0", 1 << 5 | 1)
    assert v.counter_value(5) == v.counter_value(0) == 1
    v.guest_exit()
    late = create_vcpu(cfg.kvm)
    assert late.vcpu_init(0) == 0
    assert late.set_attr(PmuAttr.SET_NR_COUNTERS, 2) == 0
    assert v.guest_enter().entered
    assert v.pmcntenset >> 5 & 1  # no reload since: the shadow register keeps bit 5
    v.write_sysreg("PMSWINC_EL0", 1 << 5 | 1)
    assert v.counter_value(0) == 2
    assert v.counter_value(5) == 1


def test_run_side_misuse_is_a_state_error() -> None:
    v = running_vcpu(Scenario(), two_clusters(), 0)
    with pytest.raises(VpmuStateError, match="already loaded"):
        v.vcpu_load(1)
    with pytest.raises(VpmuStateError):
        v.vcpu_put()
    with pytest.raises(VpmuStateError):
        v.guest_enter()
    with pytest.raises(VpmuStateError, match="negative"):
        v.advance({CPU_CYCLES: -1})
    with pytest.raises(VpmuStateError):
        v.set_attr(PmuAttr.INIT)
    v.guest_exit()
    with pytest.raises(VpmuStateError):
        v.guest_exit()
    with pytest.raises(VpmuStateError, match="outside guest mode"):
        v.advance({CPU_CYCLES: 1})
    with pytest.raises(VpmuStateError, match="outside guest mode"):
        v.read_sysreg("PMCR_EL0")
    v.vcpu_put()
    with pytest.raises(VpmuStateError, match="does not have"):
        v.vcpu_load(64)


def test_kvm_run_without_init_is_refused() -> None:
    kvm = Kvm(two_clusters())
    v = create_vcpu(kvm)
    v.vcpu_load(0)
    with pytest.raises(KvmRefusedError) as err:
        v.guest_enter()
    assert err.value.errno == ENOEXEC
    v.vcpu_put()
    assert v.vcpu_init(0) == 0
    v.vcpu_load(0)
    with pytest.raises(KvmRefusedError, match="PMU_V3_INIT"):
        v.guest_enter()
    assert not kvm.has_ran_once


def test_fixed_mode_pmceid_is_zero_and_event_counters_undef() -> None:
    v = running_vcpu(Scenario(mode=Mode.FIXED_COUNTERS_ONLY), two_clusters(), 6)
    assert v.read_sysreg("PMCEID0_EL0") == v.read_sysreg("PMCEID1_EL0") == 0
    with pytest.raises(UndefinedAccess, match=r"PMEVCNTR0_EL0 .*PMCR_EL0.N \(0\)"):
        v.read_sysreg("PMEVCNTR<n>_EL0", 0)
