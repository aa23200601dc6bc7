"""An independent, architecture-level oracle for the property tests.

It knows nothing of perf events, folding, reloads or requests: it keeps each counter's value and
applies the statements of spec ``kvm-pmu.md`` §8.6 directly (a counter advances during a guest
interval iff enabled, not filtered, admitted by its U/P bits and the pCPU has the right PMU for
the mode; it wraps and flags overflow at 2^32 or 2^64 per LC/LP; SW_INCR and CHAIN change only on
PMSWINC writes and even-partner overflows). The VM's configuration (mode, B, N, PMUv3p5) comes
from the scenario and the host description, never from the model, which must agree with the
oracle after every operation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from importers.host.pmuv3 import CHAIN, CPU_CYCLES, SW_INCR
from replay.pmu import HostPmu, HostPmus, PmuVer, Vcpu
from replay.pmu.arch import (
    CYCLE_IDX,
    EXCLUDE_EL0,
    EXCLUDE_EL1,
    MASK32,
    MASK64,
    PMCR_C,
    PMCR_E,
    PMCR_LC,
    PMCR_LP,
    PMCR_P,
    counter_mask,
)
from replay.scenarios import Mode, Scenario
from tests.replay.pmu.helpers import pmu_of


@dataclass
class Shadow:
    """Architectural state of one vCPU's PMU as the spec describes it."""

    host: HostPmus
    fixed: bool
    bound: HostPmu  # B = kvm->arch.arm_pmu, which counts outside FIXED mode
    n: int
    p5: bool
    event_mask: int
    allowed: Callable[[int], bool]  # event -> allowed by the VM's event filter
    pmcr: int = 0
    cntenset: int = 0
    intenset: int = 0
    ovsset: int = 0
    evtyper: list[int] = field(default_factory=lambda: [0] * 32)
    value: list[int] = field(default_factory=lambda: [0] * 32)

    @classmethod
    def of(
        cls, vcpu: Vcpu, scenario: Scenario, host: HostPmus, allowed: Callable[[int], bool]
    ) -> Shadow:
        """The VM configuration the spec derives from ``scenario`` and ``host`` (§8.2-§8.4, §5.3),
        and the registers of the model's ``vcpu`` right after it (their reset values are UNKNOWN).
        """
        fixed = scenario.mode is Mode.FIXED_COUNTERS_ONLY
        if scenario.mode is Mode.SET_PMU:
            bound = host.by_name(scenario.set_pmu or "")
        else:
            bound = pmu_of(host, scenario.init_cpu)
        assert bound is not None
        # N: none in FIXED mode (invariant 4), else SET_NR_COUNTERS or B's count (invariants 1, 2).
        n = scenario.nr_counters if scenario.nr_counters is not None else bound.num_counters
        shadow = cls(
            host=host,
            fixed=fixed,
            bound=bound,
            n=0 if fixed else n,
            # Invariant 11: 64-bit event counters iff every CPU has PMUv3p5 (the guest's PMUVer is
            # the common host value capped at V3P5); CPUs without a PMU report the first PMU's.
            p5=all(p.pmuver >= PmuVer.V3P5 for p in host.pmus),
            # PMUv3 (Armv8.0) has a 10-bit event space, PMUv3p1 and later a 16-bit one (Arm ARM
            # PMEVTYPER<n>_EL0.evtCount); a host offering a vPMU has one version on every CPU.
            event_mask=0x3FF if host.pmus[0].pmuver == PmuVer.IMP else 0xFFFF,
            allowed=allowed,
        )
        shadow.pmcr = vcpu.get_one_reg("PMCR_EL0")[1] & 0xFF
        shadow.cntenset = vcpu.get_one_reg("PMCNTENSET_EL0")[1]
        shadow.intenset = vcpu.get_one_reg("PMINTENSET_EL1")[1]
        shadow.ovsset = vcpu.get_one_reg("PMOVSSET_EL0")[1]
        shadow.evtyper = list(vcpu.evtyper)
        shadow.value = [vcpu.counter_value(i) for i in range(32)]
        return shadow

    # -- facts ---------------------------------------------------------------------------------

    @property
    def implemented(self) -> int:
        return counter_mask(self.n)

    def is64(self, k: int) -> bool:
        return k == CYCLE_IDX or self.p5

    def ovf_width(self, k: int) -> int:
        long = self.pmcr & (PMCR_LC if k == CYCLE_IDX else PMCR_LP)
        return 64 if self.is64(k) and long else 32

    def width_mask(self, k: int) -> int:
        return MASK64 if self.is64(k) else MASK32

    def enabled(self, k: int) -> bool:
        return bool(self.pmcr & PMCR_E) and bool((self.cntenset >> k) & 1)

    def event(self, k: int) -> int:
        return CPU_CYCLES if k == CYCLE_IDX else self.evtyper[k] & self.event_mask

    def pmu_counts_on(self, cpu: int) -> bool:
        """Invariants 7 and 8: the mode's PMU can count on ``cpu``."""
        if self.fixed:
            return pmu_of(self.host, cpu) is not None
        return cpu in self.bound.cpus

    def irq_status(self) -> bool:
        return bool(self.pmcr & PMCR_E) and bool(self.ovsset & self.intenset)

    # -- operations ----------------------------------------------------------------------------

    def advance(self, cpu: int, el1: Mapping[int, int], el0: Mapping[int, int]) -> None:
        for k in range(32):
            if not (self.implemented >> k) & 1 or not self.enabled(k):
                continue
            event = self.event(k)
            if event in (SW_INCR, CHAIN) or not self.allowed(event):
                continue
            if not self.pmu_counts_on(cpu):
                continue
            filt = self.evtyper[k]
            delta = (0 if filt & EXCLUDE_EL1 else el1.get(event, 0)) + (
                0 if filt & EXCLUDE_EL0 else el0.get(event, 0)
            )
            self.add(k, delta)

    def add(self, k: int, delta: int) -> None:
        """Advance counter ``k`` by ``delta``: wrap, flag overflow, chain (invariants 12, 13)."""
        if delta == 0:
            return
        w = self.ovf_width(k)
        wraps = ((self.value[k] & ((1 << w) - 1)) + delta) >> w
        self.value[k] = (self.value[k] + delta) & self.width_mask(k)
        if not wraps:
            return
        self.ovsset |= 1 << k
        odd = k + 1
        chainable = k % 2 == 0 and odd < CYCLE_IDX and not self.pmcr & PMCR_LP
        if chainable and self.enabled(odd) and self.event(odd) == CHAIN:
            self.add(odd, wraps)

    def swinc(self, mask: int) -> None:
        for k in range(CYCLE_IDX):
            if (
                ((mask & self.implemented) >> k) & 1
                and self.enabled(k)
                and self.event(k) == SW_INCR
            ):
                self.add(k, 1)

    def write_pmcr(self, value: int) -> None:
        stored = value & 0xFF & ~(PMCR_C | PMCR_P)
        if not self.p5:
            stored &= ~PMCR_LP
        self.pmcr = stored
        if value & PMCR_C:
            self.value[CYCLE_IDX] = 0
        if value & PMCR_P:
            for k in range(self.n):
                self.value[k] = 0

    def write_counter(self, k: int, value: int) -> None:
        self.value[k] = value & self.width_mask(k)

    def write_evtyper(self, k: int, value: int) -> None:
        self.evtyper[k] = value & (EXCLUDE_EL1 | EXCLUDE_EL0 | self.event_mask)
