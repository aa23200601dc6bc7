"""VM-scoped PMU state (``struct kvm`` arch PMU fields) and the VM-wide attribute rules.

Mirrors the VM half of ``arch/arm64/kvm/pmu-emul.c``: the bound host PMU
(``kvm->arch.arm_pmu``), ``nr_pmu_counters``, the event filter, ``supported_cpus`` and the
FIXED_COUNTERS_ONLY / explicit-PMU flags, with the per-revision differences of the series held
as data in :class:`KernelRules` (spec §8.1).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum, StrEnum

from importers.errors import UsageError
from importers.host.pmuv3 import (
    CHAIN,
    STALL_SLOT,
    STALL_SLOT_BACKEND,
    STALL_SLOT_FRONTEND,
    SW_INCR,
    PmuVer,
)
from replay.pmu.arch import EXCLUDE_EL0, EXCLUDE_EL1, event_mask
from replay.pmu.host import HostPmu, HostPmus
from replay.pmu.uapi import EBUSY, EINVAL, ENODEV, ENXIO, EventFilter, FilterAction


class KernelSemantics(StrEnum):
    """Which kernel the model implements: a released (mainline) kernel, or a revision of the
    FIXED_COUNTERS_ONLY series (spec §8.1, §3.8)."""

    MAINLINE = "mainline"
    V4 = "v4"
    V8 = "v8"


class ReloadTrigger(Enum):
    """When ``kvm_vcpu_load_pmu()`` requests ``KVM_REQ_RELOAD_PMU`` (spec §3.4)."""

    #: mainline: ``kvm_arch_vcpu_load()`` has no ``kvm_vcpu_load_pmu()``; a load never reloads.
    NEVER = "never"
    #: v4: in every mode, when an enabled counter's event lives on a PMU not covering the CPU.
    FOREIGN_EVENT = "foreign-event"
    #: v8: FIXED mode only, when ``probe_armpmu(cpu) != probe_armpmu(last_cpu)``.
    PMU_CHANGE = "pmu-change"


@dataclass(frozen=True, slots=True)
class KernelRules:
    """The behaviours that differ between series revisions, as data (spec §3.8, §8.1)."""

    #: ``KVM_ARM_VCPU_PMU_V3_FIXED_COUNTERS_ONLY`` exists (the series); mainline answers -ENXIO.
    fixed_counters_only_attr: bool
    #: FIXED sets ``supported_cpus`` to the union of the registered PMUs (v4) or leaves it.
    fixed_supported_cpus_union: bool
    #: SET_PMU and FIXED_COUNTERS_ONLY refuse each other with -EBUSY (v8, via PMU_V3_EXPLICIT).
    set_pmu_fixed_exclusive: bool
    #: FILTER and FIXED_COUNTERS_ONLY refuse each other in both orders (v8).
    filter_fixed_exclusive: bool
    #: v4 clears the FIXED flag only after ``kvm_arm_set_pmu()``, so FIXED->SET_PMU leaves N = 0.
    set_pmu_clears_fixed_late: bool
    reload_trigger: ReloadTrigger
    #: ``kvm_pmc_enable_perf_event()`` recreates an event whose PMU does not cover the CPU in
    #: every mode (v4) or in FIXED mode only (v8).
    recreate_foreign_events_in_all_modes: bool
    #: ``kvm_arch_vcpu_put()`` resets ``vcpu->cpu`` to -1 (v4; v8 keeps it as ``last_cpu``).
    put_clears_cpu: bool


KERNEL_RULES: dict[KernelSemantics, KernelRules] = {
    # Released kernels: the series' rows of spec §3.8 do not exist, the mainline column holds.
    KernelSemantics.MAINLINE: KernelRules(
        fixed_counters_only_attr=False,
        fixed_supported_cpus_union=False,
        set_pmu_fixed_exclusive=False,
        filter_fixed_exclusive=False,
        set_pmu_clears_fixed_late=False,
        reload_trigger=ReloadTrigger.NEVER,
        recreate_foreign_events_in_all_modes=False,
        put_clears_cpu=True,
    ),
    KernelSemantics.V4: KernelRules(
        fixed_counters_only_attr=True,
        fixed_supported_cpus_union=True,
        set_pmu_fixed_exclusive=False,
        filter_fixed_exclusive=False,
        set_pmu_clears_fixed_late=True,
        reload_trigger=ReloadTrigger.FOREIGN_EVENT,
        recreate_foreign_events_in_all_modes=True,
        put_clears_cpu=True,
    ),
    KernelSemantics.V8: KernelRules(
        fixed_counters_only_attr=True,
        fixed_supported_cpus_union=False,
        set_pmu_fixed_exclusive=True,
        filter_fixed_exclusive=True,
        set_pmu_clears_fixed_late=False,
        reload_trigger=ReloadTrigger.PMU_CHANGE,
        recreate_foreign_events_in_all_modes=False,
        put_clears_cpu=False,
    ),
}


@dataclass(frozen=True, slots=True)
class Quirks:
    """Departures from the kernel code the model mirrors (spec §8.7), for what-if comparisons.

    All off by default: the model then does what the kernel code does, suspected deviations from
    the architecture included. Each option substitutes the architectural result for one of them
    (or, for ``prefix_aarch32_counter_writes``, reproduces an older kernel).
    """

    #: Q1+Q2 off: overflow flagged at each architectural wrap, with the LC/LP in force then,
    #: instead of where ``kvm_pmu_perf_overflow()`` re-arms perf from the event's own count.
    architectural_overflow: bool = False
    #: An AArch32 write to an event counter keeps bits [63:32] of the live counter value
    #: (architectural) instead of those of the saved register, which ``kvm_pmu_set_pmc_value()``
    #: reads after ``kvm_pmu_release_perf_event()`` has discarded the event's count.
    architectural_aarch32_counter_writes: bool = False
    #: Q3: an AArch32 write to an event counter stores ``old_high32 << 32`` (kernels before
    #: 1750ad1388e0 and its stable backports).
    prefix_aarch32_counter_writes: bool = False

    def __post_init__(self) -> None:
        if self.architectural_aarch32_counter_writes and self.prefix_aarch32_counter_writes:
            raise UsageError(
                "architectural-aarch32-counter-writes and prefix-aarch32-counter-writes choose "
                "different results for the same AArch32 write: give one of them"
            )

    def enabled_names(self) -> tuple[str, ...]:
        """Names of the options that are on, for recording next to results."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name))


class Kvm:
    """One VM's arch PMU state.

    Parameters
    ----------
    host
        The host's PMUs.
    kernel
        Series revision whose semantics to follow.
    quirks
        Departures from the kernel code (spec §8.7); none by default.
    """

    __slots__ = (
        "arm_pmu",
        "event_mask",
        "evtyper_mask",
        "features_configured",
        "fixed_counters_only",
        "has_ran_once",
        "host",
        "kernel",
        "nr_pmu_counters",
        "nr_vcpus",
        "pmu_explicit",
        "pmu_filter",
        "pmu_irqs",
        "pmuv3p5",
        "quirks",
        "rules",
        "supported_cpus",
        "vcpu_pmu_feature",
    )

    def __init__(
        self,
        host: HostPmus,
        *,
        kernel: KernelSemantics = KernelSemantics.V4,
        quirks: Quirks = Quirks(),
    ) -> None:
        self.host = host
        self.kernel = KernelSemantics(kernel)
        self.rules = KERNEL_RULES[self.kernel]
        self.quirks = quirks
        self.arm_pmu: HostPmu | None = None
        self.nr_pmu_counters = 0
        #: Allowed-event bitmap of ``KVM_ARM_VCPU_PMU_V3_FILTER`` (bit n = event n), or None.
        self.pmu_filter: int | None = None
        #: ``kvm_arch_init_vm()`` starts from ``cpu_possible_mask``.
        self.supported_cpus: frozenset[int] = host.possible_cpus
        self.fixed_counters_only = False
        self.pmu_explicit = False
        self.has_ran_once = False
        self.nr_vcpus = 0
        #: PMU interrupt of each vCPU that has one (vcpu_id -> INTID), for pmu_irq_is_valid().
        self.pmu_irqs: dict[int, int] = {}
        #: The VM-wide vCPU feature set: has KVM_ARM_VCPU_PMU_V3 (None until the first INIT).
        self.vcpu_pmu_feature: bool | None = None
        self.features_configured = False
        # The guest's ID_AA64DFR0_EL1.PMUVer is kvm_arm_pmu_get_pmuver_limit() (not lowered).
        guest_pmuver = host.pmuver_limit()
        self.pmuv3p5 = guest_pmuver >= PmuVer.V3P5
        self.event_mask = event_mask(guest_pmuver)
        # kvm_pmu_evtyper_mask(): P|U|evtCount; no NSH (no vEL2) and no NSK/NSU/M (no EL3).
        self.evtyper_mask = EXCLUDE_EL1 | EXCLUDE_EL0 | self.event_mask

    @property
    def guest_pmuver(self) -> int:
        """``ID_AA64DFR0_EL1.PMUVer`` as the guest and userspace read it."""
        return self.host.pmuver_limit()

    def get_max_counters(self) -> int:
        """Mirror ``kvm_arm_pmu_get_max_counters()`` (0 in FIXED_COUNTERS_ONLY mode)."""
        if self.fixed_counters_only or self.arm_pmu is None:
            return 0
        return self.host.max_counters(self.arm_pmu)

    def set_pmu(self, arm_pmu: HostPmu) -> None:
        """Mirror ``kvm_arm_set_pmu()``: bind the PMU and reset N to its maximum."""
        self.arm_pmu = arm_pmu
        self.nr_pmu_counters = self.get_max_counters()

    def set_default_pmu(self, cpu: int) -> int:
        """Mirror ``kvm_arm_set_default_pmu()`` run by a VMM thread on ``cpu`` (spec §1.2).

        ``supported_cpus`` is deliberately left alone: vCPUs may run anywhere.
        """
        arm_pmu = self.host.probe_armpmu(cpu)
        if arm_pmu is None:
            return -ENODEV
        self.set_pmu(arm_pmu)
        return 0

    def pmu_v3_set_pmu(self, perf_type: int) -> int:
        """Mirror ``kvm_arm_pmu_v3_set_pmu()`` (``SET_PMU``, VM-wide; spec §1.3, §3.1)."""
        arm_pmu = self.host.by_type(perf_type)
        if arm_pmu is None:
            return -ENXIO
        if self.has_ran_once or (self.pmu_filter is not None and self.arm_pmu is not arm_pmu):
            return -EBUSY
        if self.rules.set_pmu_fixed_exclusive and self.fixed_counters_only:
            return -EBUSY
        if self.rules.set_pmu_clears_fixed_late:
            self.set_pmu(arm_pmu)  # still sees FIXED mode: N = 0
            self.fixed_counters_only = False
        else:
            self.fixed_counters_only = False
            self.set_pmu(arm_pmu)
        self.pmu_explicit = True
        self.supported_cpus = arm_pmu.cpus
        return 0

    def pmu_v3_set_fixed_counters_only(self) -> int:
        """Mirror ``kvm_arm_pmu_v3_set_pmu_fixed_counters_only()`` (spec §3.1, §8.1 items 2-4);
        a released kernel does not know the attribute (``kvm_arm_pmu_v3_set_attr()``: -ENXIO)."""
        if not self.rules.fixed_counters_only_attr:
            return -ENXIO
        if self.has_ran_once:
            return -EBUSY
        if self.pmu_filter is not None and (
            self.rules.filter_fixed_exclusive or not self.fixed_counters_only
        ):
            return -EBUSY
        if self.rules.set_pmu_fixed_exclusive and self.pmu_explicit:
            return -EBUSY
        self.fixed_counters_only = True
        self.nr_pmu_counters = 0
        if self.rules.fixed_supported_cpus_union:
            self.supported_cpus = self.host.union_cpus
        return 0

    def pmu_v3_set_nr_counters(self, n: int) -> int:
        """Mirror ``kvm_arm_pmu_v3_set_nr_counters()``; no "VM has run" check (spec §2.6)."""
        if self.arm_pmu is None and not self.fixed_counters_only:
            return -EINVAL
        if not 0 <= n <= self.get_max_counters():
            return -EINVAL
        self.nr_pmu_counters = n
        return 0

    def pmu_v3_set_filter(self, flt: EventFilter) -> int:
        """Mirror the ``KVM_ARM_VCPU_PMU_V3_FILTER`` case of ``kvm_arm_pmu_v3_set_attr()``."""
        # The range is checked against the host's event space, not the guest's (kernel comment:
        # "for KVM backward compatibility").
        nr_events = event_mask(self.host.pmuver_limit()) + 1
        in_range = flt.base_event >= 0 and flt.nevents >= 0
        if not in_range or flt.base_event + flt.nevents > nr_events:
            return -EINVAL
        if flt.action not in (FilterAction.ALLOW, FilterAction.DENY):
            return -EINVAL
        if self.has_ran_once:
            return -EBUSY
        if self.rules.filter_fixed_exclusive and self.fixed_counters_only:
            return -EBUSY
        if self.pmu_filter is None:
            # The first filter decides the default for every other event.
            self.pmu_filter = 0 if flt.action == FilterAction.ALLOW else (1 << nr_events) - 1
        span = ((1 << flt.nevents) - 1) << flt.base_event
        if flt.action == FilterAction.ALLOW:
            self.pmu_filter |= span
        else:
            self.pmu_filter &= ~span
        return 0

    def event_allowed(self, eventsel: int) -> bool:
        """``!pmu_filter || test_bit(eventsel, pmu_filter)``."""
        return self.pmu_filter is None or bool((self.pmu_filter >> eventsel) & 1)

    def pmu_for_new_event(self, cpu: int) -> HostPmu | None:
        """The PMU ``kvm_pmu_create_perf_event()`` creates on (spec §3.3).

        The VM's PMU, except in FIXED_COUNTERS_ONLY mode: the PMU of the pCPU the vCPU runs on
        (``kvm_pmu_probe_armpmu(vcpu->cpu)``; v8's retry loop converges to the same PMU).
        """
        if self.fixed_counters_only:
            return self.host.probe_armpmu(cpu)
        return self.arm_pmu

    def get_pmceid(self, pmceid1: bool) -> int:
        """Mirror ``kvm_pmu_get_pmceid()`` (spec §2.8, §3.2)."""
        if self.fixed_counters_only or self.arm_pmu is None:
            return 0
        if not pmceid1:
            val = self.arm_pmu.pmceid[0] | (1 << SW_INCR) | (1 << CHAIN)
            base = 0
        else:
            stall_slots = (STALL_SLOT, STALL_SLOT_FRONTEND, STALL_SLOT_BACKEND)
            val = self.arm_pmu.pmceid[1] & ~sum(1 << (e - 32) for e in stall_slots)
            base = 32
        if self.pmu_filter is None:
            return val
        mask = (self.pmu_filter >> base) & 0xFFFF_FFFF
        if self.event_mask + 1 >= 0x4000 + base + 32:
            mask |= ((self.pmu_filter >> (0x4000 + base)) & 0xFFFF_FFFF) << 32
        return val & mask
