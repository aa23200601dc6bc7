"""Guest execution, overflow, software increments and the PMU interrupt (spec §2.4, §2.5, §2.8).

:func:`count_guest_execution` is what the host perf events do while the vCPU runs guest code:
each enabled event on a PMU that covers the current pCPU counts its event for the guest ELs its
filter admits. Overflows are flagged where the kernel's perf re-arming flags them (Q1/Q2, spec
§8.7), or at the architectural wraps with the ``architectural_overflow`` option.
"""

from __future__ import annotations

from collections.abc import Mapping

from importers.host.pmuv3 import CHAIN, SW_INCR
from replay.pmu.arch import CYCLE_IDX, PMCR_E
from replay.pmu.counters import (
    counter_can_chain,
    counter_width_mask,
    get_pmc_value,
    overflow_width,
    set_bits,
)
from replay.pmu.event import BackingEvent
from replay.pmu.state import VcpuState


def overflow_status(vcpu: VcpuState) -> bool:
    """Mirror ``kvm_pmu_overflow_status()``: ``PMOVSSET & PMINTENSET``, gated by PMCR.E.

    Recent kernels no longer AND in PMCNTENSET (spec §2.5, §8.1).
    """
    return bool(vcpu.pmcr & PMCR_E) and bool(vcpu.pmovsset & vcpu.pmintenset)


def update_state(vcpu: VcpuState) -> None:
    """Mirror ``kvm_pmu_update_state()`` (run by ``kvm_pmu_flush_hwstate``/``sync_hwstate``)."""
    vcpu.irq_level = overflow_status(vcpu)


def counter_increment(vcpu: VcpuState, mask: int, event: int, times: int = 1) -> None:
    """Mirror ``kvm_pmu_counter_increment()`` applied ``times`` times in a row.

    Only with PMCR.E, only enabled counters below 31 whose event type is ``event`` (SW_INCR or
    CHAIN); each wrap sets PMOVSSET and increments the odd CHAIN partner once.
    """
    if not vcpu.pmcr & PMCR_E:
        return
    event_mask = vcpu.kvm.event_mask
    for idx in set_bits(mask & vcpu.pmcntenset):
        if idx >= CYCLE_IDX or vcpu.evtyper[idx] & event_mask != event:
            continue
        old = vcpu.cntr[idx]
        width = overflow_width(vcpu, idx)
        wraps = ((old & ((1 << width) - 1)) + times) >> width
        vcpu.cntr[idx] = (old + times) & counter_width_mask(vcpu, idx)
        if wraps:
            vcpu.pmovsset |= 1 << idx
            if counter_can_chain(vcpu, idx):
                counter_increment(vcpu, 1 << (idx + 1), CHAIN, wraps)


def software_increment(vcpu: VcpuState, val: int) -> None:
    """Mirror ``kvm_pmu_software_increment()`` (a guest PMSWINC_EL0 write)."""
    counter_increment(vcpu, val, SW_INCR)


def perf_overflow(vcpu: VcpuState, idx: int, times: int) -> None:
    """Mirror the state effects of ``kvm_pmu_perf_overflow()`` firing ``times`` times.

    Sets PMOVSSET and chain-increments the odd partner; the interrupt is re-evaluated by the
    caller (the kernel kicks the vCPU, whose exit runs ``kvm_pmu_sync_hwstate()``).
    """
    vcpu.pmovsset |= 1 << idx
    if counter_can_chain(vcpu, idx):
        counter_increment(vcpu, 1 << (idx + 1), CHAIN, times)


def _kernel_overflows(vcpu: VcpuState, idx: int, event: BackingEvent, new_count: int) -> int:
    """Overflow callbacks perf would run while the event's count grows to ``new_count`` (Q1).

    The first fires at the ``sample_period`` set at creation; each re-arm is
    ``compute_period(local64_read(&event->count))`` with the width in force at that overflow, so
    the next one fires when the event's own count reaches the next multiple of 2^width
    (spec §2.5, §8.7 Q1 (a)-(c), Q2). A non-sampling event (period 0) never fires.
    """
    first = event.next_overflow
    if first is None or new_count < first:
        return 0
    width = overflow_width(vcpu, idx)
    fired = 1 + (new_count >> width) - (first >> width)
    event.next_overflow = ((new_count >> width) + 1) << width
    return fired


def count_guest_execution(vcpu: VcpuState, el1: Mapping[int, int], el0: Mapping[int, int]) -> None:
    """Let every active backing event count guest execution on the current pCPU.

    Parameters
    ----------
    vcpu
        A vCPU in guest mode.
    el1, el0
        Event number -> occurrences (>= 0, checked by the caller) during guest EL1 resp. EL0
        execution since the last call.
    """
    kernel_arming = not vcpu.kvm.quirks.architectural_overflow
    cpu = vcpu.cpu
    overflowed = False
    for idx, event in enumerate(vcpu.events):
        # perf schedules the pinned event only where its PMU exists (armpmu_filter()), and not
        # at all once it is in the error state.
        if event is None or not event.enabled or event.error or cpu not in event.pmu.cpus:
            continue
        delta = 0
        if not event.exclude_kernel:
            delta += el1.get(event.config, 0)
        if not event.exclude_user:
            delta += el0.get(event.config, 0)
        if delta == 0:
            continue
        if kernel_arming:
            wraps = _kernel_overflows(vcpu, idx, event, event.count + delta)
        else:
            width = overflow_width(vcpu, idx)
            wraps = ((get_pmc_value(vcpu, idx) & ((1 << width) - 1)) + delta) >> width
        event.count += delta
        if wraps:
            perf_overflow(vcpu, idx, wraps)
            overflowed = True
    if overflowed:
        update_state(vcpu)
