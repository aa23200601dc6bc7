"""Spec §8.7 kernel behaviours and the options that replace them.

By default the model does what the kernel code does (Q1/Q2 overflow arming from the perf event's
own count, AArch32 counter writes keeping the saved register's upper half); the options give the
architectural result instead, or reproduce the pre-1750ad1388e0 AArch32 write (Q3).
"""

from __future__ import annotations

import pytest

from importers.errors import UsageError
from importers.host.pmuv3 import CHAIN
from replay.pmu import CPU_CYCLES, CYCLE_IDX, INST_RETIRED, HostPmu, HostPmus, PmuVer, Quirks, Vcpu
from replay.pmu.arch import PMCR_C, PMCR_E, PMCR_LC, PMCR_P
from replay.scenarios import Mode, Scenario, parse_scenario
from tests.replay.pmu.helpers import running_vcpu, two_clusters

ARCH = Quirks(architectural_overflow=True, architectural_aarch32_counter_writes=True)
ARMING = Quirks()  # what the kernel code does
PREFIX = Quirks(prefix_aarch32_counter_writes=True)
P5_HOST = HostPmus([HostPmu("a710", 8, frozenset({0, 1}), pmuver=PmuVer.V3P5)])


def _counters(quirks: Quirks, host: HostPmus | None = None) -> Vcpu:
    """Counter 0 counts INST_RETIRED, counter 1 chains on it, PMCCNTR runs; interrupts on."""
    vcpu = running_vcpu(Scenario(quirks=quirks), host or two_clusters(), 0)
    vcpu.write_sysreg("PMEVTYPER0_EL0", INST_RETIRED)
    vcpu.write_sysreg("PMEVTYPER1_EL0", CHAIN)
    vcpu.write_sysreg("PMCNTENCLR_EL0", 0xFFFF_FFFF)
    vcpu.write_sysreg("PMCNTENSET_EL0", 0b11 | 1 << CYCLE_IDX)
    vcpu.write_sysreg("PMINTENSET_EL1", 0b11 | 1 << CYCLE_IDX)
    vcpu.write_sysreg("PMOVSCLR_EL0", 0xFFFF_FFFF)
    vcpu.write_sysreg("PMCR_EL0", PMCR_E | PMCR_P | PMCR_C)
    return vcpu


def _flagged(vcpu: Vcpu, idx: int) -> bool:
    """Read and clear the PMOVSSET bit of counter ``idx``, as an overflow handler would."""
    hit = bool(vcpu.read_sysreg("PMOVSSET_EL0") >> idx & 1)
    vcpu.write_sysreg("PMOVSCLR_EL0", 1 << idx)
    return hit


def test_options_are_recorded_with_the_scenario() -> None:
    scenario = Scenario(
        quirks=Quirks(architectural_overflow=True, prefix_aarch32_counter_writes=True)
    )
    assert scenario.quirks_on == ("architectural_overflow", "prefix_aarch32_counter_writes")
    assert scenario.name == "default@cpu0+architectural-overflow+prefix-aarch32-counter-writes"
    assert Scenario().quirks_on == ()
    assert Scenario().name == "default@cpu0"


def test_the_two_aarch32_write_options_exclude_each_other() -> None:
    with pytest.raises(UsageError, match="give one of them"):
        Quirks(architectural_aarch32_counter_writes=True, prefix_aarch32_counter_writes=True)


def test_the_former_opt_in_flag_says_what_became_of_it() -> None:
    with pytest.raises(UsageError, match=r"default now.*\+architectural-overflow"):
        parse_scenario("default@cpu0+kernel-overflow-arming")


@pytest.mark.parametrize("quirks", [ARCH, ARMING])
def test_q1_overflow_rearmed_from_the_event_count(quirks: Quirks) -> None:
    """(a) the first overflow after creation at V0 is at the wrap in both settings; (b) with the
    quirk the second comes V0 mod 2^32 events later, not 2^32, then every 2^32."""
    vcpu = _counters(quirks)
    v0 = 2**32 - 100
    vcpu.write_sysreg("PMEVCNTR0_EL0", v0)  # recreates the event at V0
    vcpu.advance({INST_RETIRED: 99})
    assert not _flagged(vcpu, 0)
    vcpu.advance({INST_RETIRED: 1})
    assert _flagged(vcpu, 0)  # (a) the architectural wrap
    assert vcpu.read_sysreg("PMEVCNTR1_EL0") == 1  # chained
    vcpu.advance({INST_RETIRED: v0 - 1})
    assert not _flagged(vcpu, 0)
    vcpu.advance({INST_RETIRED: 1})  # V0 mod 2^32 events after the first overflow
    assert _flagged(vcpu, 0) == (quirks is ARMING)
    assert vcpu.read_sysreg("PMEVCNTR0_EL0") == v0  # the value itself wraps normally
    vcpu.advance({INST_RETIRED: 100})  # the guest value wraps again
    assert _flagged(vcpu, 0) == (quirks is ARCH)
    vcpu.advance({INST_RETIRED: 3 * 2**32})
    assert _flagged(vcpu, 0)
    # Both settings see 5 overflows in total here, at different points: the wraps at +100,
    # +2^32 and 3 more; resp. the firings at event counts 100, 2^32, 2*2^32, 3*2^32, 4*2^32.
    assert vcpu.read_sysreg("PMEVCNTR1_EL0") == 5
    assert vcpu.read_sysreg("PMEVCNTR0_EL0") == 0


@pytest.mark.parametrize("quirks", [ARCH, ARMING])
def test_q1_event_created_at_zero_never_overflows(quirks: Quirks) -> None:
    """(c) after PMCR.C / PMCR.P the event is created at 0 mod 2^32, i.e. non-sampling: with the
    quirk no overflow, no CHAIN increment and no interrupt, although the value wraps."""
    vcpu = _counters(quirks)  # PMCR.P|C: both counters recreated at 0
    vcpu.advance({INST_RETIRED: 2**32 + 5, CPU_CYCLES: 2**32 + 7})
    vcpu.guest_exit()
    assert vcpu.irq_level == (quirks is ARCH)
    assert vcpu.guest_enter().entered
    assert vcpu.read_sysreg("PMEVCNTR0_EL0") == 5
    assert vcpu.read_sysreg("PMCCNTR_EL0") == 2**32 + 7
    assert _flagged(vcpu, 0) == _flagged(vcpu, CYCLE_IDX) == (quirks is ARCH)
    assert vcpu.read_sysreg("PMEVCNTR1_EL0") == (1 if quirks is ARCH else 0)
    # Recreating the event (a counter write) arms it again.
    vcpu.write_sysreg("PMCCNTR_EL0", 2**32 - 1)
    vcpu.advance({CPU_CYCLES: 1})
    assert _flagged(vcpu, CYCLE_IDX)


@pytest.mark.parametrize("quirks", [ARCH, ARMING])
def test_q1_migration_right_after_an_overflow_disarms_the_cycle_counter(quirks: Quirks) -> None:
    """FIXED mode recreates the cycle counter's event on every PMU change (a RELOAD): moving at a
    value that is a multiple of 2^32 leaves a non-sampling event with the quirk (spec §8.7)."""
    vcpu = running_vcpu(Scenario(mode=Mode.FIXED_COUNTERS_ONLY, quirks=quirks), two_clusters(), 0)
    vcpu.write_sysreg("PMCNTENSET_EL0", 1 << CYCLE_IDX)
    vcpu.write_sysreg("PMINTENSET_EL1", 1 << CYCLE_IDX)
    vcpu.write_sysreg("PMCR_EL0", PMCR_E)
    vcpu.write_sysreg("PMOVSCLR_EL0", 0xFFFF_FFFF)
    vcpu.write_sysreg("PMCCNTR_EL0", 2**32 - 1)
    vcpu.advance({CPU_CYCLES: 1})
    assert _flagged(vcpu, CYCLE_IDX)
    vcpu.guest_exit()
    vcpu.vcpu_put()
    vcpu.vcpu_load(5)  # the A57 cluster: the event is recreated at 2^32
    assert vcpu.guest_enter().entered
    vcpu.advance({CPU_CYCLES: 2**32})
    assert vcpu.read_sysreg("PMCCNTR_EL0") == 2**33
    assert _flagged(vcpu, CYCLE_IDX) == (quirks is ARCH)


@pytest.mark.parametrize("quirks", [ARCH, ARMING])
def test_q2_lc_write_does_not_rearm(quirks: Quirks) -> None:
    """An LC-only PMCR write keeps the overflow point computed with the old width (quirk on);
    architecturally the width in force at the wrap decides."""
    vcpu = _counters(quirks)
    vcpu.write_sysreg("PMCCNTR_EL0", 2**32 - 10)  # armed for a 32-bit wrap
    vcpu.write_sysreg("PMCR_EL0", PMCR_E | PMCR_LC)  # 64-bit overflow from now on
    vcpu.advance({CPU_CYCLES: 10})
    assert _flagged(vcpu, CYCLE_IDX) == (quirks is ARMING)
    vcpu.advance({CPU_CYCLES: 2**33})  # re-armed with the new width: nothing until 2^64
    assert not _flagged(vcpu, CYCLE_IDX)
    vcpu.write_sysreg("PMCCNTR_EL0", 2**32 - 10)  # armed for a 64-bit wrap now
    vcpu.write_sysreg("PMCR_EL0", PMCR_E)  # back to 32-bit overflow
    vcpu.advance({CPU_CYCLES: 10})
    assert _flagged(vcpu, CYCLE_IDX) == (quirks is ARCH)
    assert vcpu.read_sysreg("PMCCNTR_EL0") == 2**32


@pytest.mark.parametrize(
    ("host", "quirks", "expected"),
    [
        (P5_HOST, ARMING, 0xAAAA_BBBB_0000_1234),  # 1750ad1388e0: low half written, high kept
        (P5_HOST, ARCH, 0xAAAA_BBBB_0000_1234),
        (P5_HOST, PREFIX, 0xAAAA_BBBB_0000_0000),  # before it: old_high32 << 32
        (None, ARMING, 0x1234),  # 32-bit event counters
        (None, PREFIX, 0),
    ],
)
def test_q3_aarch32_event_counter_write(
    host: HostPmus | None, quirks: Quirks, expected: int
) -> None:
    vcpu = _counters(quirks, host)
    vcpu.write_sysreg("PMEVCNTR0_EL0", 0xAAAA_BBBB_CCCC_DDDD)
    vcpu.write_sysreg("PMEVCNTR0_EL0", 0x1234, aarch32=True)
    assert vcpu.read_sysreg("PMEVCNTR0_EL0") == expected
    # Neither PMCCNTR nor PMCR.P is affected.
    vcpu.write_sysreg("PMCCNTR_EL0", 0x5678, aarch32=True)
    assert vcpu.read_sysreg("PMCCNTR_EL0") == 0x5678
    vcpu.write_sysreg("PMCR_EL0", PMCR_E | PMCR_P, aarch32=True)
    assert vcpu.read_sysreg("PMEVCNTR0_EL0") == 0


@pytest.mark.parametrize(
    ("quirks", "expected"),
    [
        # kvm_pmu_set_pmc_value() releases the event (its count is discarded, not folded) and
        # then reads __vcpu_sys_reg(): the saved 0xFFFF_FFF0 has upper half 0.
        (ARMING, 0x0000_0000_0000_0005),
        # Architecturally the write keeps bits [63:32] of the counter as it is: 0x1_0000_0010.
        (ARCH, 0x0000_0001_0000_0005),
        (PREFIX, 0),
    ],
)
def test_aarch32_write_takes_its_upper_half_from_the_saved_register(
    quirks: Quirks, expected: int
) -> None:
    """The counter passed 2^32 since its event was created: the live value's upper half (1)
    differs from the saved register's (0), and the kernel code keeps the latter."""
    vcpu = _counters(quirks, P5_HOST)
    vcpu.write_sysreg("PMEVCNTR0_EL0", 0xFFFF_FFF0)  # the event is created at this value
    vcpu.advance({INST_RETIRED: 0x20})
    assert vcpu.read_sysreg("PMEVCNTR0_EL0") == 0x1_0000_0010  # 64-bit event counter (v3p5)
    vcpu.write_sysreg("PMEVCNTR0_EL0", 5, aarch32=True)
    assert vcpu.read_sysreg("PMEVCNTR0_EL0") == expected
