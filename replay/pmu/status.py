"""Side-effect-free answer to "would this counter count guest execution right now, and why not?"

The replay engine records, per guest window, whether each counter counts and on which host PMU
its backing event lives; a counter that should count but does not is a stall (spec §8.6
invariants 7, 8 and 16). The reasons below are the mechanisms of spec §1.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from replay.pmu.arch import CHAIN, CPU_CYCLES, CYCLE_IDX, MAX_COUNTERS, SW_INCR
from replay.pmu.counters import counter_is_enabled, implemented_counter_mask
from replay.pmu.state import VcpuState


class StallReason(StrEnum):
    """Why a counter does not count guest execution on the current pCPU."""

    #: The vCPU has no vPMU (no ``KVM_ARM_VCPU_PMU_V3`` feature).
    NO_VPMU = "no_vpmu"
    #: The vCPU is not loaded on any pCPU.
    NOT_LOADED = "not_loaded"
    #: The counter index is not implemented (``idx >= PMCR_EL0.N``, not 31).
    UNIMPLEMENTED = "unimplemented"
    #: ``PMCR_EL0.E`` or the counter's ``PMCNTENSET`` bit is clear.
    DISABLED = "disabled"
    #: SW_INCR or CHAIN: no perf event, advanced only by PMSWINC writes or chained overflows.
    SOFTWARE = "software"
    #: The VM's event filter denies the event, so no perf event was created.
    FILTERED = "filtered"
    #: Enabled but without a backing event yet (recreated at the next guest entry).
    NO_EVENT = "no_event"
    #: The event's host PMU does not cover this pCPU, which another PMU covers.
    FOREIGN_CPU = "foreign_cpu"
    #: No registered host PMU covers this pCPU at all.
    NO_PMU_CPU = "no_pmu_cpu"
    #: The filter bits exclude both guest EL0 and EL1.
    EXCLUDED = "excluded"


@dataclass(frozen=True, slots=True)
class CounterStatus:
    """Whether a counter counts guest execution now, on which host PMU, or why not.

    ``host_pmu`` names the PMU of the counter's backing event whenever one exists, also when it
    cannot count (a frozen event on a foreign pCPU still lives on its PMU).
    """

    counting: bool
    host_pmu: str | None
    reason: StallReason | None


def counter_status(vcpu: VcpuState, idx: int) -> CounterStatus:
    """Classify counter ``idx`` (0..30 event counters, 31 cycle counter) of ``vcpu``."""
    if not 0 <= idx < MAX_COUNTERS:
        raise IndexError(f"counter index {idx} outside 0..31")
    if not vcpu.has_pmu:
        return CounterStatus(False, None, StallReason.NO_VPMU)
    event = vcpu.events[idx]
    host_pmu = None if event is None else event.pmu.name
    if not vcpu.loaded:
        return CounterStatus(False, host_pmu, StallReason.NOT_LOADED)
    if event is None:
        kvm = vcpu.kvm
        if not (implemented_counter_mask(vcpu) >> idx) & 1:
            reason = StallReason.UNIMPLEMENTED
        elif not counter_is_enabled(vcpu, idx):
            reason = StallReason.DISABLED
        else:
            eventsel = CPU_CYCLES if idx == CYCLE_IDX else vcpu.evtyper[idx] & kvm.event_mask
            if eventsel in (SW_INCR, CHAIN):
                reason = StallReason.SOFTWARE
            elif not kvm.event_allowed(eventsel):
                reason = StallReason.FILTERED
            elif kvm.fixed_counters_only and kvm.host.probe_armpmu(vcpu.cpu) is None:
                # FIXED mode could not create the event: no PMU covers this pCPU (v8).
                reason = StallReason.NO_PMU_CPU
            else:
                reason = StallReason.NO_EVENT
        return CounterStatus(False, None, reason)
    if not counter_is_enabled(vcpu, idx):
        return CounterStatus(False, host_pmu, StallReason.DISABLED)
    # The guest enabled the counter. Its event may still be a stale, disabled one: FIXED mode
    # under v8 cannot recreate it on a pCPU no PMU covers (kvm_pmu_create_perf_event() returns
    # early and leaves the old event attached), so check coverage before the event's own state.
    if vcpu.cpu not in event.pmu.cpus:
        if vcpu.kvm.host.probe_armpmu(vcpu.cpu) is None:
            return CounterStatus(False, host_pmu, StallReason.NO_PMU_CPU)
        return CounterStatus(False, host_pmu, StallReason.FOREIGN_CPU)
    if not event.enabled:  # enabled by the guest, the event re-enabled at the next reload
        return CounterStatus(False, host_pmu, StallReason.NO_EVENT)
    if event.exclude_user and event.exclude_kernel:
        return CounterStatus(False, host_pmu, StallReason.EXCLUDED)
    return CounterStatus(True, host_pmu, None)
