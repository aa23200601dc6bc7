"""Side-effect-free answer to "would this counter count guest execution right now, and why not?"

The replay engine records, per guest window, whether each counter counts and on which host PMU
its backing event lives; a counter that should count but does not is a stall (spec §8.6
invariants 7, 8 and 16). The reasons below are the mechanisms of spec §1.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from importers.host.pmuv3 import CHAIN, SW_INCR
from replay.pmu.arch import MAX_COUNTERS
from replay.pmu.counters import counter_is_enabled, implemented_counter_mask, pmc_eventsel
from replay.pmu.event import BackingEvent
from replay.pmu.state import VcpuState


class StallReason(StrEnum):
    """Why a counter does not count guest execution on the current pCPU."""

    #: The vCPU has no vPMU (no ``KVM_ARM_VCPU_PMU_V3`` feature).
    NO_VPMU = "no_vpmu"
    #: The vCPU has no vPMU because the host offers none (``KVM_CAP_ARM_PMU_V3`` reads 0: its CPUs
    #: disagree on PMUVer, or the PMU is IMPDEF without the trap workaround, spec §1.1).
    NO_VPMU_OFFERED = "no_vpmu_offered"
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
    #: The host PMU is not PMUv3 and its driver cannot translate the event
    #: (``kvm_map_pmu_event()`` < 0), so no perf event was created.
    UNMAPPABLE = "unmappable_event"
    #: Enabled, on a pCPU its PMU covers, but the backing event is missing or still disabled:
    #: the ``KVM_REQ_RELOAD_PMU`` pending for the next guest entry recreates or re-enables it.
    NO_EVENT = "no_event"
    #: The event's host PMU does not cover this pCPU, which another PMU covers.
    FOREIGN_CPU = "foreign_cpu"
    #: No registered host PMU covers this pCPU at all.
    NO_PMU_CPU = "no_pmu_cpu"
    #: The filter bits exclude both guest EL0 and EL1.
    EXCLUDED = "excluded"
    #: The pinned backing event got no hardware counter (the host's own pinned events, or the
    #: vCPU's earlier events, hold them) and is in ``PERF_EVENT_STATE_ERROR``.
    CONTENTION = "counter_contention"


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
        offered = vcpu.kvm.host.supports_guest_pmuv3()
        return CounterStatus(
            False, None, StallReason.NO_VPMU if offered else StallReason.NO_VPMU_OFFERED
        )
    event = vcpu.events[idx]
    reason = _stall_reason(vcpu, idx, event)
    return CounterStatus(reason is None, None if event is None else event.pmu.name, reason)


def _stall_reason(vcpu: VcpuState, idx: int, event: BackingEvent | None) -> StallReason | None:
    """The first step from the guest's enables to a counting perf event that fails, if any."""
    kvm = vcpu.kvm
    if not vcpu.loaded:
        return StallReason.NOT_LOADED
    # An event created before N was lowered (SET_NR_COUNTERS from another vCPU, spec §2.6) still
    # counts: perf knows nothing of N.
    if event is None and not (implemented_counter_mask(vcpu) >> idx) & 1:
        return StallReason.UNIMPLEMENTED
    if not counter_is_enabled(vcpu, idx):
        return StallReason.DISABLED
    if event is None:  # kvm_pmu_create_perf_event() creates none for these
        eventsel = pmc_eventsel(vcpu, idx)
        if eventsel in (SW_INCR, CHAIN):
            return StallReason.SOFTWARE
        if not kvm.event_allowed(eventsel):
            return StallReason.FILTERED
        arm_pmu = kvm.pmu_for_new_event(vcpu.cpu)
        if arm_pmu is not None and not arm_pmu.maps_event(eventsel):
            return StallReason.UNMAPPABLE
    # Coverage before the event's own state: FIXED mode under v8 cannot (re)create an event on a
    # pCPU no PMU covers (kvm_pmu_create_perf_event() returns early, leaving any old event
    # attached and disabled), so the pCPU, not the reload, is why the counter stalls there.
    pmu = kvm.pmu_for_new_event(vcpu.cpu) if event is None else event.pmu
    if pmu is None or vcpu.cpu not in pmu.cpus:
        no_pmu = kvm.host.probe_armpmu(vcpu.cpu) is None
        return StallReason.NO_PMU_CPU if no_pmu else StallReason.FOREIGN_CPU
    if event is None or not event.enabled:
        return StallReason.NO_EVENT
    if event.error:
        return StallReason.CONTENTION
    if event.exclude_user and event.exclude_kernel:
        return StallReason.EXCLUDED
    return None
