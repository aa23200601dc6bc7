"""Guest accesses to the PMU system registers: the ``access_*`` trap handlers of ``sys_regs.c``.

A guest ``MRS``/``MSR`` of a PMU register traps to KVM, which emulates it against the shadow
state, then re-enters (processing pending requests and the interrupt level on the way; the caller
does that). Registers are named as in the Arm ARM; counters and types take their index either in
the name (``PMEVCNTR3_EL0``) or as ``idx`` with the generic name (``PMEVCNTR<n>_EL0``).
Undefined accesses raise :class:`UndefinedAccess` (spec §2.7, §2.8).
"""

from __future__ import annotations

from collections.abc import Callable

from importers.host.pmuv3 import MAX_EVENT_COUNTERS
from replay.pmu.arch import (
    CYCLE_IDX,
    MASK64,
    PMCR_C,
    PMCR_LC,
    PMCR_P,
    PMCR_WRITABLE,
    PMSELR_SEL_MASK,
    USERENR_CR,
    USERENR_EN,
    USERENR_ER,
    USERENR_MASK,
    USERENR_SW,
)
from replay.pmu.counters import (
    get_pmc_value,
    handle_pmcr,
    implemented_counter_mask,
    read_pmcr,
    reprogram_counter_mask,
    set_counter_event_type,
    set_pmc_value,
)
from replay.pmu.errors import UndefinedAccess, UnknownRegisterError
from replay.pmu.overflow import software_increment
from replay.pmu.state import VcpuState

#: ``(vcpu, register name, idx, el0) -> value``.
Reader = Callable[[VcpuState, str, int, bool], int]
#: ``(vcpu, register name, idx, value, el0, aarch32)``.
Writer = Callable[[VcpuState, str, int, int, bool, bool], None]


def _el0_check(vcpu: VcpuState, reg: str, el0: bool, flags: int) -> None:
    """Mirror ``check_pmu_access_disabled()``: EL0 needs one of ``flags`` in PMUSERENR_EL0."""
    if el0 and not vcpu.pmuserenr & flags:
        names = "|".join(n for n, b in (("EN", 1), ("SW", 2), ("CR", 4), ("ER", 8)) if flags & b)
        raise UndefinedAccess(reg, f"EL0 access with PMUSERENR_EL0.{names or 'EL1-only'} clear")


def _idx_check(vcpu: VcpuState, reg: str, idx: int) -> None:
    """Mirror ``pmu_counter_idx_valid()``: counters at or above PMCR_EL0.N UNDEF (not 31)."""
    n = vcpu.kvm.nr_pmu_counters
    if idx >= n and idx != CYCLE_IDX:
        raise UndefinedAccess(reg, f"counter {idx} >= PMCR_EL0.N ({n})")


def _read_only(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """Mirror ``write_to_read_only()``: a write to PMCEID0/1_EL0 UNDEFs."""
    raise UndefinedAccess(reg, "write to a read-only register")


def _write_only(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """Mirror ``read_from_write_only()``: a read of PMSWINC_EL0 UNDEFs."""
    raise UndefinedAccess(reg, "read of a write-only register")


def _read_pmcr(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The read half of ``access_pmcr()``: ``kvm_vcpu_read_pmcr()`` (N included)."""
    _el0_check(vcpu, reg, el0, USERENR_EN)
    return read_pmcr(vcpu) & ~(PMCR_P | PMCR_C)  # P and C read as zero


def _write_pmcr(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """``access_pmcr()``: only bits [7:0] are writable; LC is RES1 without AArch32 EL0."""
    _el0_check(vcpu, reg, el0, USERENR_EN)
    val = (read_pmcr(vcpu) & ~PMCR_WRITABLE) | (value & PMCR_WRITABLE)
    if not vcpu.kvm.host.aarch32_el0:
        val |= PMCR_LC
    handle_pmcr(vcpu, val)


def _read_pmselr(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The read half of ``access_pmselr()``: SEL only."""
    _el0_check(vcpu, reg, el0, USERENR_ER | USERENR_EN)
    return vcpu.pmselr & PMSELR_SEL_MASK


def _write_pmselr(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """The write half of ``access_pmselr()``."""
    _el0_check(vcpu, reg, el0, USERENR_ER | USERENR_EN)
    vcpu.pmselr = value & MASK64  # stored raw; reads return SEL only


def _read_pmceid(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """Mirror ``access_pmceid()``: ``kvm_pmu_get_pmceid()`` of the VM."""
    _el0_check(vcpu, reg, el0, USERENR_EN)
    return vcpu.kvm.get_pmceid(reg == "PMCEID1_EL0")


def _counter_idx(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The EL0 check and index decoding of ``access_pmu_evcntr()``."""
    if reg == "PMCCNTR_EL0":
        _el0_check(vcpu, reg, el0, USERENR_CR | USERENR_EN)
        return CYCLE_IDX
    _el0_check(vcpu, reg, el0, USERENR_ER | USERENR_EN)
    if reg == "PMXEVCNTR_EL0":
        idx = vcpu.pmselr & PMSELR_SEL_MASK
    _idx_check(vcpu, reg, idx)
    return idx


def _read_evcntr(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The read half of ``access_pmu_evcntr()``: ``kvm_pmu_get_counter_value()``."""
    return get_pmc_value(vcpu, _counter_idx(vcpu, reg, idx, el0))


def _write_evcntr(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """The write half of ``access_pmu_evcntr()``: ``kvm_pmu_set_counter_value()``."""
    idx = _counter_idx(vcpu, reg, idx, el0)
    _el0_check(vcpu, reg, el0, USERENR_EN)  # writes additionally need EN
    set_pmc_value(vcpu, idx, value, aarch32=a32)


def _type_idx(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The EL0 check and index decoding of ``access_pmu_evtyper()`` (SEL=31 is PMCCFILTR)."""
    _el0_check(vcpu, reg, el0, USERENR_EN)
    if reg == "PMXEVTYPER_EL0":
        idx = vcpu.pmselr & PMSELR_SEL_MASK
    _idx_check(vcpu, reg, idx)
    return idx


def _read_evtyper(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The read half of ``access_pmu_evtyper()``: the stored, masked type."""
    return vcpu.evtyper[_type_idx(vcpu, reg, idx, el0)]


def _write_evtyper(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """The write half of ``access_pmu_evtyper()``: ``kvm_pmu_set_counter_event_type()``."""
    set_counter_event_type(vcpu, value, _type_idx(vcpu, reg, idx, el0))


def _read_pmcnten(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The read half of ``access_pmcnten()``: SET and CLR both read PMCNTENSET_EL0."""
    _el0_check(vcpu, reg, el0, USERENR_EN)
    return vcpu.pmcntenset


def _write_pmcnten(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """``access_pmcnten()``: SET and CLR share one shadow; the touched counters are reprogrammed."""
    _el0_check(vcpu, reg, el0, USERENR_EN)
    val = value & implemented_counter_mask(vcpu)
    if reg == "PMCNTENSET_EL0":
        vcpu.pmcntenset |= val
    else:
        vcpu.pmcntenset &= ~val
    reprogram_counter_mask(vcpu, val)


def _read_pminten(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The read half of ``access_pminten()``: SET and CLR both read PMINTENSET_EL1."""
    _el0_check(vcpu, reg, el0, 0)  # never accessible from EL0
    return vcpu.pmintenset


def _write_pminten(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """The write half of ``access_pminten()``: no perf action, the level follows at entry."""
    _el0_check(vcpu, reg, el0, 0)
    val = value & implemented_counter_mask(vcpu)
    if reg == "PMINTENSET_EL1":
        vcpu.pmintenset |= val
    else:
        vcpu.pmintenset &= ~val


def _read_pmovs(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The read half of ``access_pmovs()``: SET and CLR both read PMOVSSET_EL0."""
    _el0_check(vcpu, reg, el0, USERENR_EN)
    return vcpu.pmovsset


def _write_pmovs(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """The write half of ``access_pmovs()``: no perf action, the level follows at entry."""
    _el0_check(vcpu, reg, el0, USERENR_EN)
    val = value & implemented_counter_mask(vcpu)
    if reg == "PMOVSSET_EL0":
        vcpu.pmovsset |= val
    else:
        vcpu.pmovsset &= ~val


def _write_pmswinc(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """Mirror ``access_pmswinc()``: ``kvm_pmu_software_increment()`` of the accessible counters."""
    _el0_check(vcpu, reg, el0, USERENR_SW | USERENR_EN)
    software_increment(vcpu, value & implemented_counter_mask(vcpu))


def _read_pmuserenr(vcpu: VcpuState, reg: str, idx: int, el0: bool) -> int:
    """The read half of ``access_pmuserenr()``: readable from EL0 too."""
    return vcpu.pmuserenr & USERENR_MASK


def _write_pmuserenr(vcpu: VcpuState, reg: str, idx: int, value: int, el0: bool, a32: bool) -> None:
    """The write half of ``access_pmuserenr()``: EL1 only (``vcpu_mode_priv()``)."""
    if el0:
        raise UndefinedAccess(reg, "PMUSERENR_EL0 is not writable from EL0")
    vcpu.pmuserenr = value & USERENR_MASK


def _table() -> dict[str, tuple[Reader, Writer, int]]:
    """Register name -> (reader, writer, fixed counter index or -1 for "take idx")."""
    regs: dict[str, tuple[Reader, Writer, int]] = {
        "PMCR_EL0": (_read_pmcr, _write_pmcr, -1),
        "PMSELR_EL0": (_read_pmselr, _write_pmselr, -1),
        "PMCEID0_EL0": (_read_pmceid, _read_only, -1),
        "PMCEID1_EL0": (_read_pmceid, _read_only, -1),
        "PMCCNTR_EL0": (_read_evcntr, _write_evcntr, CYCLE_IDX),
        "PMXEVCNTR_EL0": (_read_evcntr, _write_evcntr, -1),
        "PMEVCNTR<n>_EL0": (_read_evcntr, _write_evcntr, -1),
        "PMCCFILTR_EL0": (_read_evtyper, _write_evtyper, CYCLE_IDX),
        "PMXEVTYPER_EL0": (_read_evtyper, _write_evtyper, -1),
        "PMEVTYPER<n>_EL0": (_read_evtyper, _write_evtyper, -1),
        "PMCNTENSET_EL0": (_read_pmcnten, _write_pmcnten, -1),
        "PMCNTENCLR_EL0": (_read_pmcnten, _write_pmcnten, -1),
        "PMINTENSET_EL1": (_read_pminten, _write_pminten, -1),
        "PMINTENCLR_EL1": (_read_pminten, _write_pminten, -1),
        "PMOVSSET_EL0": (_read_pmovs, _write_pmovs, -1),
        "PMOVSCLR_EL0": (_read_pmovs, _write_pmovs, -1),
        "PMSWINC_EL0": (_write_only, _write_pmswinc, -1),
        "PMUSERENR_EL0": (_read_pmuserenr, _write_pmuserenr, -1),
    }
    for n in range(MAX_EVENT_COUNTERS):
        regs[f"PMEVCNTR{n}_EL0"] = (_read_evcntr, _write_evcntr, n)
        regs[f"PMEVTYPER{n}_EL0"] = (_read_evtyper, _write_evtyper, n)
    return regs


#: Every PMU register a guest can access, by Arm name.
GUEST_REGISTERS = _table()
_NUMBERED = tuple(f"{kind}{n}_" for kind in ("PMEVCNTR", "PMEVTYPER") for n in range(31))


def resolve(name: str, idx: int | None) -> tuple[Reader, Writer, str, int]:
    """PMU register ``name`` (``idx`` for a generic ``<n>`` name): its accessors, its Arm name
    with the index filled in, and its counter index (-1: none, or the one PMSELR_EL0 selects).

    Raises
    ------
    UnknownRegisterError
        For a name that is not a PMU register, or a bad index.
    """
    entry = GUEST_REGISTERS.get(name)
    if entry is None:
        known = ", ".join(n for n in GUEST_REGISTERS if not n.startswith(_NUMBERED))
        raise UnknownRegisterError(f"{name!r} is not a PMU register; known: {known}")
    reader, writer, fixed = entry
    if fixed >= 0:
        return reader, writer, name, fixed
    if "<n>" in name:
        if idx is None or not 0 <= idx < MAX_EVENT_COUNTERS:
            raise UnknownRegisterError(f"{name} needs a counter index 0..30, got {idx!r}")
        return reader, writer, name.replace("<n>", str(idx)), idx
    return reader, writer, name, -1


def guest_read(vcpu: VcpuState, name: str, idx: int | None = None, *, el0: bool = False) -> int:
    """Emulate a trapped guest ``MRS`` of PMU register ``name`` (index ``idx`` if generic).

    Raises
    ------
    UndefinedAccess
        When KVM would inject an UNDEF instead.
    UnknownRegisterError
        For a name that is not a PMU register, or a bad index.
    """
    # pmu_visibility() hides every PMU register of a vCPU without a PMU (REG_HIDDEN), and
    # perform_access() injects an UNDEF for a hidden register.
    if not vcpu.has_pmu:
        raise UndefinedAccess(name, "the vCPU has no PMU (register hidden)")
    reader, _, reg, index = resolve(name, idx)
    return reader(vcpu, reg, index, el0)


def guest_write(
    vcpu: VcpuState,
    name: str,
    value: int,
    idx: int | None = None,
    *,
    el0: bool = False,
    aarch32: bool = False,
) -> None:
    """Emulate a trapped guest ``MSR`` of PMU register ``name`` (see :func:`guest_read`)."""
    if not vcpu.has_pmu:  # pmu_visibility(): REG_HIDDEN, see guest_read()
        raise UndefinedAccess(name, "the vCPU has no PMU (register hidden)")
    _, writer, reg, index = resolve(name, idx)
    writer(vcpu, reg, index, value & MASK64, el0, aarch32)
