"""The VMM's view: ``KVM_ARM_VCPU_INIT``, PMU device attributes and ``KVM_{GET,SET}_ONE_REG``.

Every call returns what the ioctl returns (0 or ``-errno``), mirroring ``arm.c``
(``kvm_vcpu_set_target()``, ``kvm_setup_vcpu()``), ``pmu-emul.c``
(``kvm_arm_pmu_v3_{set,get,has}_attr()``) and the ``get_user``/``set_user`` hooks of the
``sys_regs.c`` table (spec §1.2, §1.3, §2.6, §2.7, §3.1). The in-kernel vGIC is assumed to be
created and initialised, as the selftests and QEMU do before PMU INIT.
"""

from __future__ import annotations

from replay.pmu import sysregs
from replay.pmu.arch import (
    MASK64,
    PMCR_LC,
    PMCR_N_MASK,
    PMCR_N_SHIFT,
    PMCR_WRITABLE,
)
from replay.pmu.counters import (
    get_pmc_value,
    implemented_counter_mask,
    read_pmcr,
    set_counter_value_user,
)
from replay.pmu.errors import UnknownRegisterError
from replay.pmu.state import VcpuState, reset_pmu_regs
from replay.pmu.uapi import EBUSY, EINVAL, ENODEV, ENOENT, ENOEXEC, ENXIO, EventFilter, PmuAttr

#: Attribute payloads: an int (IRQ, SET_PMU, SET_NR_COUNTERS), a filter, or nothing.
AttrValue = int | EventFilter | None

_BITMAPS = {
    "PMCNTENSET_EL0": "pmcntenset",
    "PMCNTENCLR_EL0": "pmcntenset",
    "PMINTENSET_EL1": "pmintenset",
    "PMINTENCLR_EL1": "pmintenset",
    "PMOVSSET_EL0": "pmovsset",
    "PMOVSCLR_EL0": "pmovsset",
}


def vcpu_init(vcpu: VcpuState, on_cpu: int, *, pmu_v3: bool) -> int:
    """``KVM_ARM_VCPU_INIT`` issued by a VMM thread running on pCPU ``on_cpu``.

    The first INIT of a vCPU with PMU_V3 binds the VM's default PMU to the PMU of ``on_cpu``
    (``kvm_setup_vcpu()`` -> ``kvm_arm_set_default_pmu()``); later INITs only reset the vCPU.
    """
    kvm = vcpu.kvm
    if pmu_v3 and not kvm.host.supports_guest_pmuv3():
        return -EINVAL  # system_supported_vcpu_features() dropped the feature
    # kvm_vcpu_init_changed(): every vCPU of a VM must ask for the same features.
    configured = vcpu.initialized or kvm.features_configured
    if configured and kvm.vcpu_pmu_feature != pmu_v3:
        return -EINVAL
    if not vcpu.initialized:
        kvm.vcpu_pmu_feature = pmu_v3
        if pmu_v3 and kvm.arm_pmu is None:
            ret = kvm.set_default_pmu(on_cpu)
            if ret:
                return ret
        vcpu.has_pmu = pmu_v3
        kvm.features_configured = True
        vcpu.initialized = True
    reset_pmu_regs(vcpu)  # kvm_reset_vcpu() -> kvm_reset_sys_regs()
    return 0


def _irq_is_valid(vcpu: VcpuState, irq: int) -> bool:
    """Mirror ``pmu_irq_is_valid()``: one PPI for all vCPUs, or a distinct SPI per vCPU.

    Like the kernel it also compares against this vCPU's own interrupt when already set.
    """
    others = vcpu.kvm.pmu_irqs.values()
    if 16 <= irq < 32:
        return all(n == irq for n in others)
    return irq not in others


def set_attr(vcpu: VcpuState, attr: PmuAttr, value: AttrValue = None) -> int:
    """Mirror ``kvm_arm_pmu_v3_set_attr()`` (``KVM_SET_DEVICE_ATTR``)."""
    kvm = vcpu.kvm
    if not vcpu.has_pmu:
        return -ENODEV
    if vcpu.created:
        return -EBUSY
    if attr == PmuAttr.IRQ:
        irq = _int_payload(attr, value)
        if not 16 <= irq < 1020 or not _irq_is_valid(vcpu, irq):
            return -EINVAL
        if vcpu.irq_num is not None:
            return -EBUSY
        vcpu.irq_num = irq
        kvm.pmu_irqs[vcpu.vcpu_id] = irq
        return 0
    if attr == PmuAttr.FILTER:
        if not isinstance(value, EventFilter):
            raise TypeError(f"{attr.name} takes an EventFilter, got {value!r}")
        return kvm.pmu_v3_set_filter(value)
    if attr == PmuAttr.SET_PMU:
        return kvm.pmu_v3_set_pmu(_int_payload(attr, value))
    if attr == PmuAttr.SET_NR_COUNTERS:
        return kvm.pmu_v3_set_nr_counters(_int_payload(attr, value))
    if attr == PmuAttr.FIXED_COUNTERS_ONLY:
        return kvm.pmu_v3_set_fixed_counters_only()
    if attr == PmuAttr.INIT:
        # kvm_arm_pmu_v3_init(): the in-kernel vGIC needs the interrupt number first.
        if vcpu.irq_num is None:
            return -ENXIO
        vcpu.created = True
        return 0
    return -ENXIO


def _int_payload(attr: PmuAttr, value: AttrValue) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{attr.name} takes an int payload, got {value!r}")
    return value


def get_attr(vcpu: VcpuState, attr: PmuAttr) -> tuple[int, int | None]:
    """Mirror ``kvm_arm_pmu_v3_get_attr()``: ``(0, value)`` or ``(-errno, None)``."""
    if attr == PmuAttr.IRQ:
        if not vcpu.has_pmu:
            return -ENODEV, None
        if vcpu.irq_num is None:
            return -ENXIO, None
        return 0, vcpu.irq_num
    if attr == PmuAttr.FIXED_COUNTERS_ONLY and vcpu.kvm.fixed_counters_only:
        return 0, None
    return -ENXIO, None


def has_attr(vcpu: VcpuState, attr: int) -> int:
    """Mirror ``kvm_arm_pmu_v3_has_attr()``: 0 for a known attribute of a vCPU with a PMU."""
    if attr == PmuAttr.FIXED_COUNTERS_ONLY and not vcpu.kvm.rules.fixed_counters_only_attr:
        return -ENXIO  # a released kernel does not know the series' attribute
    if attr in tuple(PmuAttr) and vcpu.has_pmu:
        return 0
    return -ENXIO


def _reg_kind(name: str, idx: int | None) -> tuple[str, int]:
    """``name`` as :func:`sysregs.resolve` resolves it for the guest: ``PMEVCNTR`` (a counter's
    value, PMCCNTR_EL0 included), ``PMEVTYPER`` (its type, PMCCFILTR_EL0 included) or the
    register's own name, and the counter index. Unknown names come back unchanged, index -1."""
    try:
        _, _, reg, index = sysregs.resolve(name, idx)
    except UnknownRegisterError:
        return name, -1
    if reg.startswith(("PMEVCNTR", "PMCCNTR")):
        return "PMEVCNTR", index
    if reg.startswith(("PMEVTYPER", "PMCCFILTR")):
        return "PMEVTYPER", index
    return reg, index


def get_one_reg(vcpu: VcpuState, name: str, idx: int | None = None) -> tuple[int, int]:
    """``KVM_GET_ONE_REG`` of a PMU register: ``(0, value)`` or ``(-errno, 0)``.

    Counters read as the guest would (``get_pmu_evcntr``), bitmaps masked to the implemented
    counters (``get_pmreg``), PMCR with N (``get_pmcr``), PMSWINC as zero (``get_raz_reg``).
    """
    if not vcpu.initialized:
        return -ENOEXEC, 0
    if not vcpu.has_pmu:
        return -ENOENT, 0  # REG_HIDDEN
    kind, index = _reg_kind(name, idx)
    if kind == "PMEVCNTR":
        return 0, get_pmc_value(vcpu, index)
    if kind == "PMEVTYPER":
        return 0, vcpu.evtyper[index]
    if kind in _BITMAPS:
        return 0, getattr(vcpu, _BITMAPS[kind]) & implemented_counter_mask(vcpu)
    if kind == "PMCR_EL0":
        return 0, read_pmcr(vcpu)
    if kind in ("PMSELR_EL0", "PMUSERENR_EL0"):
        return 0, getattr(vcpu, kind.removesuffix("_EL0").lower())
    if kind == "PMSWINC_EL0":
        return 0, 0
    return -ENOENT, 0


def set_one_reg(vcpu: VcpuState, name: str, value: int, idx: int | None = None) -> int:
    """``KVM_SET_ONE_REG`` of a PMU register (``set_pmcr``, ``set_pmreg``, ``set_pmu_evcntr``).

    Writes that affect counting request ``KVM_REQ_RELOAD_PMU`` (applied at the next entry); a
    bitmap write stores the raw value, even through a CLR register (f2aeb7bbd574).
    """
    if not vcpu.initialized:
        return -ENOEXEC
    if not vcpu.has_pmu:
        return -ENOENT
    value &= MASK64
    kind, index = _reg_kind(name, idx)
    if kind == "PMEVCNTR":
        set_counter_value_user(vcpu, index, value)
    elif kind == "PMEVTYPER":
        vcpu.evtyper[index] = value  # raw store, no event re-creation (spec §8.1)
    elif kind in _BITMAPS:
        setattr(vcpu, _BITMAPS[kind], value & implemented_counter_mask(vcpu))
        vcpu.reload_pending = True
    elif kind == "PMCR_EL0":
        _set_pmcr(vcpu, value)
    elif kind in ("PMSELR_EL0", "PMUSERENR_EL0"):
        setattr(vcpu, kind.removesuffix("_EL0").lower(), value)
    elif kind != "PMSWINC_EL0":  # PMSWINC is write-ignored
        return -ENOENT
    return 0


def _set_pmcr(vcpu: VcpuState, val: int) -> None:
    """Mirror ``set_pmcr()``: legacy N write (silently ignored when the VM ran or N is too
    large), bits [7:0] stored as given (LC forced without AArch32 EL0), reload requested."""
    kvm = vcpu.kvm
    new_n = (val & PMCR_N_MASK) >> PMCR_N_SHIFT
    if not kvm.has_ran_once and new_n <= kvm.get_max_counters():
        kvm.nr_pmu_counters = new_n
    val &= PMCR_WRITABLE
    if not kvm.host.aarch32_el0:
        val |= PMCR_LC
    vcpu.pmcr = val
    vcpu.reload_pending = True
