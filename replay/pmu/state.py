"""Per-vCPU PMU state: the shadow system registers and the backing events (spec §2.1).

Fields mirror ``__vcpu_sys_reg()`` storage and ``struct kvm_pmu``; the functions in
:mod:`replay.pmu.counters`, :mod:`replay.pmu.overflow` and :mod:`replay.pmu.sysregs` operate on
it the way the kernel's functions operate on ``struct kvm_vcpu``.
"""

from __future__ import annotations

from replay.pmu.arch import MASK32, MAX_COUNTERS, PMCR_LC, PMSELR_SEL_MASK, counter_mask
from replay.pmu.event import BackingEvent
from replay.pmu.kvm import Kvm

#: The value ``reset_unknown()`` gives registers whose reset value is architecturally UNKNOWN
#: (sys_regs.c). The PMU reset helpers then mask it per register.
RESET_UNKNOWN = 0x1DE7_EC7E_DBAD_C0DE


class VcpuState:
    """One vCPU's PMU state.

    Attributes
    ----------
    kvm
        The VM.
    vcpu_id
        Index of the vCPU in its VM.
    has_pmu
        The vCPU was initialised with the ``KVM_ARM_VCPU_PMU_V3`` feature.
    initialized, created
        ``KVM_ARM_VCPU_INIT`` done; PMU ``KVM_ARM_VCPU_PMU_V3_INIT`` done
        (``vcpu->arch.pmu.created``).
    irq_num
        PMU overflow interrupt (``KVM_ARM_VCPU_PMU_V3_IRQ``), ``None`` until set.
    has_run
        First ``KVM_RUN`` done (``kvm_vcpu_first_run_init()``).
    cpu
        ``vcpu->cpu``: the pCPU it is loaded on, -1 after ``vcpu_put()`` under v4; v8 keeps the
        last pCPU (``last_cpu``).
    loaded, in_guest
        Between ``vcpu_load()``/``vcpu_put()``; between ``guest_enter()``/``guest_exit()``.
    on_unsupported_cpu
        ``vcpu_set_on_unsupported_cpu()``: loaded on a pCPU outside ``supported_cpus``.
    reload_pending
        ``KVM_REQ_RELOAD_PMU`` is pending.
    irq_level
        PMU interrupt line level last set by ``kvm_pmu_update_state()``.
    pmcr, pmselr, pmcntenset, pmintenset, pmovsset, pmuserenr
        Shadow registers (PMCR without the N field, which is injected at read time).
    cntr, evtyper
        ``PMEVCNTR<n>_EL0``/``PMEVTYPER<n>_EL0`` for n < 31; index 31 holds ``PMCCNTR_EL0`` and
        ``PMCCFILTR_EL0``. ``cntr`` is the *saved* part of each counter value.
    events
        Backing perf event of each counter (``pmc->perf_event``), or ``None``.
    creations
        How many times each counter's event was (re)created (spec invariant 14).
    """

    __slots__ = (
        "cntr",
        "cpu",
        "created",
        "creations",
        "events",
        "evtyper",
        "has_pmu",
        "has_run",
        "in_guest",
        "initialized",
        "irq_level",
        "irq_num",
        "kvm",
        "loaded",
        "on_unsupported_cpu",
        "pmcntenset",
        "pmcr",
        "pmintenset",
        "pmovsset",
        "pmselr",
        "pmuserenr",
        "reload_pending",
        "vcpu_id",
    )

    def __init__(self, kvm: Kvm, vcpu_id: int) -> None:
        self.kvm = kvm
        self.vcpu_id = vcpu_id
        self.has_pmu = False
        self.initialized = False
        self.created = False
        self.irq_num: int | None = None
        self.has_run = False
        self.cpu = -1
        self.loaded = False
        self.in_guest = False
        self.on_unsupported_cpu = False
        self.reload_pending = False
        self.irq_level = False
        self.pmcr = 0
        self.pmselr = 0
        self.pmcntenset = 0
        self.pmintenset = 0
        self.pmovsset = 0
        self.pmuserenr = 0
        self.cntr = [0] * MAX_COUNTERS
        self.evtyper = [0] * MAX_COUNTERS
        self.events: list[BackingEvent | None] = [None] * MAX_COUNTERS
        self.creations = [0] * MAX_COUNTERS

    def __repr__(self) -> str:
        where = f"cpu {self.cpu}" if self.loaded else "not loaded"
        mode = ", in guest" if self.in_guest else ""
        return f"vCPU {self.vcpu_id} ({where}{mode})"


def reset_pmu_regs(vcpu: VcpuState) -> None:
    """The PMU part of ``kvm_reset_sys_regs()`` for a (re-)``KVM_ARM_VCPU_INIT``.

    Mirrors ``reset_pmcr``, ``reset_pmu_reg``, ``reset_pmevcntr``, ``reset_pmevtyper``,
    ``reset_pmselr`` and the ``reset_unknown``/``reset_val`` entries of the sys_reg table: UNKNOWN
    values are ``RESET_UNKNOWN``, masked as the kernel masks them. Backing events are *not*
    released: since fe53538069bb ("KVM: arm64: PMU: Reload when resetting", v6.15) the reset
    only requests ``KVM_REQ_RELOAD_PMU`` (spec §2.9), which the model keeps (§8.1).
    """
    kvm = vcpu.kvm
    # The LC bit is RES1 when AArch32 is not supported; N comes from the VM at read time.
    vcpu.pmcr = 0 if kvm.host.aarch32_el0 else PMCR_LC
    bitmap = counter_mask(kvm.nr_pmu_counters)
    vcpu.pmcntenset = vcpu.pmintenset = vcpu.pmovsset = RESET_UNKNOWN & bitmap
    vcpu.pmselr = RESET_UNKNOWN & PMSELR_SEL_MASK
    vcpu.pmuserenr = 0
    for idx in range(MAX_COUNTERS - 1):
        vcpu.cntr[idx] = RESET_UNKNOWN & MASK32
        vcpu.evtyper[idx] = RESET_UNKNOWN & kvm.evtyper_mask
    vcpu.cntr[MAX_COUNTERS - 1] = RESET_UNKNOWN  # PMCCNTR_EL0: reset_unknown
    vcpu.evtyper[MAX_COUNTERS - 1] = 0  # PMCCFILTR_EL0: reset_val 0
    if vcpu.has_pmu:
        vcpu.reload_pending = True
