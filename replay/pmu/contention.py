"""Which of a vCPU's backing events get a hardware counter when its thread runs (spec §1.5).

KVM's events are pinned, task-bound perf events. Whenever the vCPU thread is scheduled in on a
CPU, and whenever one of its events is created or enabled while it runs (``ctx_resched()``),
perf core schedules the CPU's own pinned events first, then the task's pinned events in creation
order (``perf_event_sched_in()``, ``visit_groups_merge()``). A pinned event that gets no counter
goes to ``PERF_EVENT_STATE_ERROR`` and stops counting until it is enabled again
(``merge_sched_in()``; ``_perf_event_enable()`` clears the error) or recreated; KVM only logs
``kvm_debug("fail to enable perf event")``. Once one event of a pass failed, no later event of
that pass goes on either (``*can_add_hw = 0``, ``group_can_go_on()``).

Counters are assigned the way ``armv8pmu_get_event_idx()`` does for a PMUv3 PMU: a CPU_CYCLES
event prefers the cycle counter; a 64-bit event on a PMU without long-event support (before
PMUv3p5) needs a chained pair, an odd counter and the even one below it
(``armv8pmu_get_chain_idx()``); any other event takes the lowest free counter
(``armv8pmu_get_single_idx()``). What else uses the counters is a host condition, a
:class:`~replay.pmu.host.Reservation` per CPU. The IMPDEF counter affinities of Apple PMUs
(``m1_pmu_get_event_idx()``) are not modelled: their events always get a counter here.
"""

from __future__ import annotations

from importers.host.pmuv3 import CPU_CYCLES, PmuVer, Reservation
from replay.pmu.arch import CYCLE_IDX, pmuv3_implemented
from replay.pmu.event import BackingEvent
from replay.pmu.host import HostPmu
from replay.pmu.state import VcpuState

_NO_RESERVATION = Reservation()


def sched_in(vcpu: VcpuState) -> None:
    """Schedule the vCPU thread's enabled events in on ``vcpu.cpu``; those that get no counter go
    to the error state (see module docstring)."""
    cpu = vcpu.cpu
    # armpmu_filter(): an event is only scheduled on a CPU its PMU supports.
    waiting = [
        e for e in vcpu.events if e is not None and e.enabled and not e.error and cpu in e.pmu.cpus
    ]
    reserved = vcpu.kvm.host.reserved.get(cpu, _NO_RESERVATION)
    for pmu in {e.pmu.name: e.pmu for e in waiting}.values():
        if pmu.mappable_events is not None:
            continue  # an Apple PMU: IMPDEF counter affinities, not modelled
        used = set(range(reserved.counters)) | ({CYCLE_IDX} if reserved.cycles else set())
        can_add_hw = True
        for event in sorted((e for e in waiting if e.pmu is pmu), key=lambda e: e.serial):
            can_add_hw = can_add_hw and _get_event_idx(pmu, event, used)
            event.error = not can_add_hw


def _get_event_idx(pmu: HostPmu, event: BackingEvent, used: set[int]) -> bool:
    """Mirror ``armv8pmu_get_event_idx()``: take a counter (or a chained pair) for ``event`` in
    ``used``; False when none is free."""
    if event.config == CPU_CYCLES and CYCLE_IDX not in used:
        used.add(CYCLE_IDX)
        return True
    general = range(pmu.num_counters)
    # armv8pmu_event_is_chained(): 64-bit, and the PMU has no long counters (before PMUv3p5).
    if event.counter_64bit and not (pmuv3_implemented(pmu.pmuver) and pmu.pmuver >= PmuVer.V3P5):
        for odd in general[1::2]:
            if odd not in used and odd - 1 not in used:
                used.update((odd, odd - 1))
                return True
        return False
    free = next((idx for idx in general if idx not in used), None)
    if free is None:
        return False
    used.add(free)
    return True
