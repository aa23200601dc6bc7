"""Arm PMUv3 architectural facts the model needs: register bits and masks.

Names follow the Arm ARM and ``include/linux/perf/arm_pmuv3.h`` (``ARMV8_PMU_PMCR_E`` becomes
``PMCR_E`` here). Only what KVM's emulation consults is listed; spec ``kvm-pmu.md`` §5. The
facts a host description states too (PMU versions, common event numbers, the event counter
limit) live in :mod:`importers.host.pmuv3`, since importers never import the model.
"""

from __future__ import annotations

from importers.host.pmuv3 import PmuVer

#: Index of the cycle counter in every bitmap register (``ARMV8_PMU_CYCLE_IDX``).
CYCLE_IDX = 31
#: Counter slots KVM keeps per vCPU: event counters 0..30 plus the cycle counter.
MAX_COUNTERS = 32

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
HIGH32 = MASK64 ^ MASK32

# PMCR_EL0 fields (Arm ARM D24.5; arm_pmuv3.h ARMV8_PMU_PMCR_*).
PMCR_E = 1 << 0  # enable all counters (with PMCNTENSET)
PMCR_P = 1 << 1  # reset event counters (write-only in effect)
PMCR_C = 1 << 2  # reset cycle counter (write-only in effect)
PMCR_D = 1 << 3  # divide cycles by 64 (AArch32 legacy; KVM stores it, never emulates it)
PMCR_X = 1 << 4  # export events (stored, no effect)
PMCR_DP = 1 << 5  # disable PMCCNTR when prohibited (stored, no effect)
PMCR_LC = 1 << 6  # cycle counter overflows at 64 bits
PMCR_LP = 1 << 7  # event counters overflow at 64 bits (PMUv3p5)
#: Bits a guest or userspace may write (``ARMV8_PMU_PMCR_MASK``).
PMCR_WRITABLE = 0xFF
PMCR_N_SHIFT = 11
PMCR_N_MASK = 0x1F << PMCR_N_SHIFT

# PMEVTYPER<n>_EL0 / PMCCFILTR_EL0 filter bits (arm_pmuv3.h ARMV8_PMU_EXCLUDE_*).
EXCLUDE_EL1 = 1 << 31  # P
EXCLUDE_EL0 = 1 << 30  # U
EXCLUDE_NS_EL1 = 1 << 29  # NSK
EXCLUDE_NS_EL0 = 1 << 28  # NSU

# PMUSERENR_EL0 (arm_pmuv3.h ARMV8_PMU_USERENR_*).
USERENR_EN = 1 << 0
USERENR_SW = 1 << 1
USERENR_CR = 1 << 2
USERENR_ER = 1 << 3
USERENR_MASK = USERENR_EN | USERENR_SW | USERENR_CR | USERENR_ER

#: PMSELR_EL0.SEL.
PMSELR_SEL_MASK = 0x1F


def pmuv3_implemented(pmuver: int) -> bool:
    """Mirror ``pmuv3_implemented()``: a real PMUv3, i.e. neither absent nor IMPDEF."""
    return pmuver not in (PmuVer.NI, PmuVer.IMP_DEF)


def event_mask(pmuver: int) -> int:
    """Mirror ``__kvm_pmu_event_mask()``: 10-bit event space for PMUv3, 16-bit from v3p1.

    The kernel only calls it with versions up to the V3P5 cap of
    ``kvm_arm_pmu_get_pmuver_limit()``; anything else is the kernel's "unknown" case (0).
    """
    if pmuver == PmuVer.IMP:
        return 0x3FF
    if pmuver in (PmuVer.V3P1, PmuVer.V3P4, PmuVer.V3P5, PmuVer.V3P7):
        return 0xFFFF
    return 0


def counter_mask(n: int) -> int:
    """``BIT(31) | GENMASK(n - 1, 0)``: the counters implemented with ``PMCR_EL0.N == n``."""
    return (1 << CYCLE_IDX) | ((1 << n) - 1)
