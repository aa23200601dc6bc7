"""Counter values and backing-event lifecycle: the per-vCPU half of ``pmu-emul.c``.

Each function mirrors the kernel function named in its docstring. The counter value is the saved
register plus the backing event's count; it is folded into the register whenever the event is
recreated (``kvm_pmu_stop_counter()``), which is what preserves values across migrations,
filter-bit writes and re-enables (spec §2.2-§2.9, §3.3-§3.4).
"""

from __future__ import annotations

from importers.host.pmuv3 import CHAIN, CPU_CYCLES, SW_INCR
from replay.pmu.arch import (
    CYCLE_IDX,
    EXCLUDE_EL0,
    EXCLUDE_EL1,
    EXCLUDE_NS_EL0,
    EXCLUDE_NS_EL1,
    HIGH32,
    MASK32,
    MASK64,
    PMCR_C,
    PMCR_E,
    PMCR_LC,
    PMCR_LP,
    PMCR_N_MASK,
    PMCR_N_SHIFT,
    PMCR_P,
    counter_mask,
)
from replay.pmu.contention import sched_in
from replay.pmu.event import BackingEvent
from replay.pmu.kvm import ReloadTrigger
from replay.pmu.state import VcpuState


def set_bits(mask: int) -> list[int]:
    """Indices of the set bits of ``mask`` (``for_each_set_bit``), lowest first."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def read_pmcr(vcpu: VcpuState) -> int:
    """Mirror ``kvm_vcpu_read_pmcr()``: the stored PMCR with N replaced by the VM's N."""
    return (vcpu.pmcr & ~PMCR_N_MASK) | (vcpu.kvm.nr_pmu_counters << PMCR_N_SHIFT)


def implemented_counter_mask(vcpu: VcpuState) -> int:
    """Mirror ``kvm_pmu_implemented_counter_mask()`` (also the accessible mask: no vEL2)."""
    return counter_mask(vcpu.kvm.nr_pmu_counters)


def pmc_is_64bit(vcpu: VcpuState, idx: int) -> bool:
    """Mirror ``kvm_pmc_is_64bit()``: PMCCNTR always; event counters with PMUv3p5."""
    return idx == CYCLE_IDX or vcpu.kvm.pmuv3p5


def counter_width_mask(vcpu: VcpuState, idx: int) -> int:
    """The bits counter ``idx`` keeps: all 64 if ``kvm_pmc_is_64bit()``, else the low 32 (the
    ``lower_32_bits()`` of ``kvm_pmu_get_pmc_value()`` and ``kvm_pmu_counter_increment()``)."""
    return MASK64 if pmc_is_64bit(vcpu, idx) else MASK32


def pmc_has_64bit_overflow(vcpu: VcpuState, idx: int) -> bool:
    """Mirror ``kvm_pmc_has_64bit_overflow()``: PMCR.LC for PMCCNTR, PMCR.LP otherwise."""
    return bool(vcpu.pmcr & (PMCR_LC if idx == CYCLE_IDX else PMCR_LP))


def overflow_width(vcpu: VcpuState, idx: int) -> int:
    """Bits after which counter ``idx`` overflows now: 64 with 64-bit overflow, else 32."""
    return 64 if pmc_is_64bit(vcpu, idx) and pmc_has_64bit_overflow(vcpu, idx) else 32


def counter_can_chain(vcpu: VcpuState, idx: int) -> bool:
    """Mirror ``kvm_pmu_counter_can_chain()``: even counter, odd partner exists, 32-bit overflow."""
    return not idx & 1 and idx + 1 < CYCLE_IDX and not pmc_has_64bit_overflow(vcpu, idx)


def counter_is_enabled(vcpu: VcpuState, idx: int) -> bool:
    """Mirror ``kvm_pmu_counter_is_enabled()``: ``PMCNTENSET[idx] && PMCR.E``."""
    return bool((vcpu.pmcntenset >> idx) & 1) and bool(vcpu.pmcr & PMCR_E)


def enabled_counter_mask(vcpu: VcpuState) -> int:
    """Mirror ``kvm_pmu_enabled_counter_mask()`` (v4 patch 1), without the vEL2 range."""
    return vcpu.pmcntenset if vcpu.pmcr & PMCR_E else 0


def get_pmc_value(vcpu: VcpuState, idx: int) -> int:
    """Mirror ``kvm_pmu_get_pmc_value()``: saved register + event count, at the counter width."""
    value = vcpu.cntr[idx]
    event = vcpu.events[idx]
    if event is not None:
        value += event.count
    return value & counter_width_mask(vcpu, idx)


def pmc_eventsel(vcpu: VcpuState, idx: int) -> int:
    """The ``eventsel`` of ``kvm_pmu_create_perf_event()``: CPU_CYCLES for the cycle counter,
    else the counter's PMEVTYPER evtCount masked to the guest's event space."""
    return CPU_CYCLES if idx == CYCLE_IDX else vcpu.evtyper[idx] & vcpu.kvm.event_mask


def compute_period(vcpu: VcpuState, idx: int, counter: int) -> int:
    """Mirror ``compute_period()``: events until ``counter`` wraps at its overflow width."""
    return -counter & ((1 << overflow_width(vcpu, idx)) - 1)


def release_backing_event(vcpu: VcpuState, idx: int) -> None:
    """Mirror ``kvm_pmu_release_perf_event()``: drop the event and whatever it counted."""
    vcpu.events[idx] = None


def stop_counter(vcpu: VcpuState, idx: int) -> None:
    """Mirror ``kvm_pmu_stop_counter()``: fold the event's count into the register, release it."""
    if vcpu.events[idx] is None:
        return
    vcpu.cntr[idx] = get_pmc_value(vcpu, idx)
    release_backing_event(vcpu, idx)


def create_backing_event(vcpu: VcpuState, idx: int) -> None:
    """Mirror ``kvm_pmu_create_perf_event()`` (spec §2.3; FIXED mode §3.3).

    In FIXED_COUNTERS_ONLY mode the PMU is the one of the pCPU the vCPU is on; when no registered
    PMU covers it the kernel returns before stopping the old event, which therefore stays
    attached, frozen on that pCPU (v8 ``WARN_ON_ONCE``; under v4 the pCPU is outside
    ``supported_cpus`` and entry fails anyway).
    """
    kvm = vcpu.kvm
    arm_pmu = kvm.pmu_for_new_event(vcpu.cpu)
    if arm_pmu is None:
        return
    evtreg = vcpu.evtyper[idx]
    stop_counter(vcpu, idx)
    eventsel = pmc_eventsel(vcpu, idx)
    # Neither SW_INCR nor CHAIN is backed by a perf event: both are emulated in software.
    if eventsel in (SW_INCR, CHAIN):
        return
    # A filtered event gets no perf event at all: the counter silently stalls (spec §1.5).
    if not kvm.event_allowed(eventsel):
        return
    # kvm_map_pmu_event(): a non-PMUv3 PMU's driver translates the event number or refuses it.
    if not arm_pmu.maps_event(eventsel):
        return
    vcpu.events[idx] = BackingEvent(
        pmu=arm_pmu,
        config=eventsel,
        enabled=counter_is_enabled(vcpu, idx),
        # kvm_pmc_counts_at_el0/el1(): U == NSU, P == NSK.
        exclude_user=bool(evtreg & EXCLUDE_EL0) != bool(evtreg & EXCLUDE_NS_EL0),
        exclude_kernel=bool(evtreg & EXCLUDE_EL1) != bool(evtreg & EXCLUDE_NS_EL1),
        sample_period=compute_period(vcpu, idx, get_pmc_value(vcpu, idx)),
        counter_64bit=pmc_is_64bit(vcpu, idx),
        serial=sum(vcpu.creations),  # events created so far: perf's group_index order
    )
    vcpu.creations[idx] += 1
    if vcpu.loaded:  # perf_install_in_context() on the running task: ctx_resched()
        sched_in(vcpu)


def set_pmc_value(
    vcpu: VcpuState, idx: int, val: int, *, force: bool = False, aarch32: bool = False
) -> None:
    """Mirror ``kvm_pmu_set_pmc_value()``: release the event (its count is discarded), store,
    recreate "to reflect the updated sample_period".

    An AArch32 write to an event counter (``vcpu_mode_is_32bit()``, not ``force``/PMCR.P) only
    writes bits [31:0]. Since 1750ad1388e0 (and its stable backports) the kernel builds the value
    as ``(__vcpu_sys_reg(vcpu, reg) & GENMASK(63, 32)) | lower_32_bits(val)`` *after*
    ``kvm_pmu_release_perf_event()``: the upper half is the saved register's, without what the
    released event counted since it was created (``kvm_pmu_stop_counter()`` is not called). The
    ``architectural_aarch32_counter_writes`` option keeps the upper half of the live value
    instead; quirk Q3 reproduces the earlier code, which stored ``old_high32 << 32`` (§8.7).
    """
    live_high = get_pmc_value(vcpu, idx) & HIGH32
    release_backing_event(vcpu, idx)
    if aarch32 and idx != CYCLE_IDX and not force:
        quirks = vcpu.kvm.quirks
        high = live_high if quirks.architectural_aarch32_counter_writes else vcpu.cntr[idx] & HIGH32
        val = high if quirks.prefix_aarch32_counter_writes else high | (val & MASK32)
    vcpu.cntr[idx] = val & MASK64
    create_backing_event(vcpu, idx)


def set_counter_value_user(vcpu: VcpuState, idx: int, val: int) -> None:
    """Mirror ``kvm_pmu_set_counter_value_user()``: userspace write, recreated at next entry."""
    release_backing_event(vcpu, idx)
    vcpu.cntr[idx] = val & MASK64
    vcpu.reload_pending = True


def set_counter_event_type(vcpu: VcpuState, data: int, idx: int) -> None:
    """Mirror ``kvm_pmu_set_counter_event_type()``: store the masked type, recreate the event."""
    vcpu.evtyper[idx] = data & vcpu.kvm.evtyper_mask
    create_backing_event(vcpu, idx)


def enable_backing_event(vcpu: VcpuState, idx: int) -> None:
    """Mirror ``kvm_pmc_enable_perf_event()``, with the series' recreation of an event whose PMU
    does not cover the current pCPU (v4: every mode; v8: FIXED mode only; spec §3.3)."""
    event = vcpu.events[idx]
    kvm = vcpu.kvm
    if event is None or (
        (kvm.rules.recreate_foreign_events_in_all_modes or kvm.fixed_counters_only)
        and vcpu.cpu not in event.pmu.cpus
    ):
        create_backing_event(vcpu, idx)
        return
    # perf_event_enable(): clears PERF_EVENT_STATE_ERROR, then reschedules the running task.
    event.enabled = True
    event.error = False
    if vcpu.loaded:
        sched_in(vcpu)


def disable_backing_event(vcpu: VcpuState, idx: int) -> None:
    """Mirror ``kvm_pmc_disable_perf_event()``: the event keeps its count, stops counting."""
    event = vcpu.events[idx]
    if event is not None:
        event.enabled = False


def reprogram_counter_mask(vcpu: VcpuState, mask: int) -> None:
    """Mirror ``kvm_pmu_reprogram_counter_mask()``: (re)enable or disable the counters in mask."""
    for idx in set_bits(mask):
        if counter_is_enabled(vcpu, idx):
            enable_backing_event(vcpu, idx)
        else:
            disable_backing_event(vcpu, idx)


def reload_pmu(vcpu: VcpuState) -> None:
    """Mirror ``kvm_vcpu_reload_pmu()`` (``KVM_REQ_RELOAD_PMU`` in ``check_vcpu_requests()``)."""
    mask = implemented_counter_mask(vcpu)
    vcpu.pmovsset &= mask
    vcpu.pmintenset &= mask
    vcpu.pmcntenset &= mask
    reprogram_counter_mask(vcpu, mask)


def load_pmu(vcpu: VcpuState, last_cpu: int) -> None:
    """Mirror the series' ``kvm_vcpu_load_pmu()`` called from ``kvm_arch_vcpu_load()`` (§3.4);
    a released kernel has no such call."""
    kvm = vcpu.kvm
    if kvm.rules.reload_trigger is ReloadTrigger.NEVER:
        return
    if kvm.rules.reload_trigger is ReloadTrigger.FOREIGN_EVENT:
        for idx in set_bits(enabled_counter_mask(vcpu)):
            event = vcpu.events[idx]
            if event is not None and vcpu.cpu not in event.pmu.cpus:
                vcpu.reload_pending = True
                return
        return
    if not kvm.fixed_counters_only or vcpu.cpu == last_cpu or last_cpu == -1:
        return
    if kvm.host.probe_armpmu(vcpu.cpu) is not kvm.host.probe_armpmu(last_cpu):
        vcpu.reload_pending = True


def handle_pmcr(vcpu: VcpuState, val: int) -> None:
    """Mirror ``kvm_pmu_handle_pmcr()`` (spec §2.6).

    An E toggle only requests a reload (applied before the next entry); C and P are actions,
    never stored; LC/LP changes do not recreate events (Q2, observable unless the
    ``architectural_overflow`` option is on).
    """
    if not vcpu.kvm.pmuv3p5:
        val &= ~PMCR_LP
    if (vcpu.pmcr ^ val) & PMCR_E:
        vcpu.reload_pending = True
    vcpu.pmcr = val & ~(PMCR_C | PMCR_P | PMCR_N_MASK)
    if val & PMCR_C:
        set_pmc_value(vcpu, CYCLE_IDX, 0)
    if val & PMCR_P:
        for idx in set_bits(implemented_counter_mask(vcpu) & ~(1 << CYCLE_IDX)):
            set_pmc_value(vcpu, idx, 0, force=True)
