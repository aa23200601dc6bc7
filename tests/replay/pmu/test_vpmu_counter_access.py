"""Port of the kernel selftest ``tools/testing/selftests/kvm/arm64/vpmu_counter_access.c``.

Every guest-visible and userspace-visible assertion listed in spec ``kvm-pmu.md`` §4 runs against
the model, one test per assertion family, named after the selftest function it comes from. The
guest code runs in a loaded vCPU in guest mode, accessing registers by Arm name; an UNDEF
(``ESR_ELx_EC_UNKNOWN`` in the selftest) is :class:`UndefinedAccess`. Each family runs under both
kernel semantics and with every quirk off and on (spec §8.7: the selftest results must not depend
on them). ``run_mdcr_el2_validity_test`` (§4.5) needs a vCPU with EL2 (nested virtualisation),
which the model does not emulate, so the selftest itself would skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from importers.host.pmuv3 import INST_RETIRED, MAX_EVENT_COUNTERS
from replay.pmu import (
    DEFAULT_PMU_IRQ,
    EventFilter,
    HostPmus,
    KernelSemantics,
    Kvm,
    PmuAttr,
    PmuVer,
    Quirks,
    UndefinedAccess,
    Vcpu,
    create_vcpu,
)
from replay.pmu.arch import (
    CYCLE_IDX,
    EXCLUDE_EL1,
    PMCR_E,
    PMCR_N_MASK,
    PMCR_N_SHIFT,
    PMCR_P,
    counter_mask,
)
from replay.pmu.uapi import EBUSY, EINVAL, ENXIO
from tests.replay.pmu.helpers import BITMAP_REGS, two_clusters

KERNELS = [KernelSemantics.V4, KernelSemantics.V8]
QUIRKS = [Quirks(), Quirks(architectural_overflow=True, prefix_aarch32_counter_writes=True)]
#: (VMM pCPU, expected PMCR.N limit): the default PMU is the one of the VMM thread's pCPU.
HOSTS = [(0, 6), (4, 4)]


def _host() -> HostPmus:
    return two_clusters(a53_counters=6, a57_counters=4)


def _pmcr_n(pmcr: int) -> int:
    return (pmcr & PMCR_N_MASK) >> PMCR_N_SHIFT


# --- the guest-side accessors (pmc_accessors[] of the selftest) ----------------------------------


def read_pmevcntrn(v: Vcpu, n: int) -> int:
    return v.read_sysreg(f"PMEVCNTR{n}_EL0")


def write_pmevcntrn(v: Vcpu, n: int, val: int) -> None:
    v.write_sysreg(f"PMEVCNTR{n}_EL0", val)


def read_pmevtypern(v: Vcpu, n: int) -> int:
    return v.read_sysreg("PMEVTYPER<n>_EL0", n)


def write_pmevtypern(v: Vcpu, n: int, val: int) -> None:
    v.write_sysreg("PMEVTYPER<n>_EL0", val, n)


def read_sel_evcntr(v: Vcpu, sel: int) -> int:
    v.write_sysreg("PMSELR_EL0", sel)
    return v.read_sysreg("PMXEVCNTR_EL0")


def write_sel_evcntr(v: Vcpu, sel: int, val: int) -> None:
    v.write_sysreg("PMSELR_EL0", sel)
    v.write_sysreg("PMXEVCNTR_EL0", val)


def read_sel_evtyper(v: Vcpu, sel: int) -> int:
    v.write_sysreg("PMSELR_EL0", sel)
    return v.read_sysreg("PMXEVTYPER_EL0")


def write_sel_evtyper(v: Vcpu, sel: int, val: int) -> None:
    v.write_sysreg("PMSELR_EL0", sel)
    v.write_sysreg("PMXEVTYPER_EL0", val)


@dataclass(frozen=True)
class PmcAccessor:
    name: str
    read_cntr: Callable[[Vcpu, int], int]
    write_cntr: Callable[[Vcpu, int, int], None]
    read_typer: Callable[[Vcpu, int], int]
    write_typer: Callable[[Vcpu, int, int], None]


PMC_ACCESSORS = [
    PmcAccessor("direct", read_pmevcntrn, write_pmevcntrn, read_pmevtypern, write_pmevtypern),
    PmcAccessor("indirect", read_sel_evcntr, write_sel_evcntr, read_sel_evtyper, write_sel_evtyper),
    PmcAccessor(
        "read-direct", read_pmevcntrn, write_sel_evcntr, read_pmevtypern, write_sel_evtyper
    ),
    PmcAccessor(
        "read-indirect", read_sel_evcntr, write_pmevcntrn, read_sel_evtyper, write_pmevtypern
    ),
]


def check_bitmap_pmu_regs(v: Vcpu, mask: int, set_expected: bool) -> None:
    for reg in BITMAP_REGS:
        value = v.read_sysreg(reg)
        assert bool(value & mask) == set_expected, (reg, hex(value), hex(mask))


def bitmap_pmu_regs(v: Vcpu, pmc_idx: int, set_op: bool) -> None:
    """The selftest's ``test_bitmap_pmu_regs()``: set or clear one counter's bit everywhere."""
    bit = 1 << pmc_idx
    set_expected = False
    if set_op:
        for reg in ("PMCNTENSET_EL0", "PMINTENSET_EL1", "PMOVSSET_EL0"):
            v.write_sysreg(reg, bit)
        set_expected = pmc_idx < _pmcr_n(v.read_sysreg("PMCR_EL0"))
    else:
        for reg in ("PMCNTENCLR_EL0", "PMINTENCLR_EL1", "PMOVSCLR_EL0"):
            v.write_sysreg(reg, bit)
    check_bitmap_pmu_regs(v, bit, set_expected)


def pmu_disable_reset(v: Vcpu) -> None:
    pmcr = v.read_sysreg("PMCR_EL0")
    v.write_sysreg("PMCR_EL0", (pmcr & ~PMCR_E) | PMCR_P)


def access_pmc_regs(v: Vcpu, acc: PmcAccessor, pmc: int) -> None:
    """``test_access_pmc_regs()``: an implemented counter, through one accessor combination."""
    pmu_disable_reset(v)
    bitmap_pmu_regs(v, pmc, False)
    bitmap_pmu_regs(v, pmc, True)
    bitmap_pmu_regs(v, pmc, False)
    write_data = EXCLUDE_EL1 | INST_RETIRED
    acc.write_typer(v, pmc, write_data)
    assert acc.read_typer(v, pmc) == write_data, (acc.name, pmc)
    read_data = acc.read_cntr(v, pmc)
    assert read_data == 0, (acc.name, pmc, read_data)  # disabled and reset by PMCR.P
    write_data = read_data + pmc + 0x12345
    acc.write_cntr(v, pmc, write_data)
    assert acc.read_cntr(v, pmc) == write_data, (acc.name, pmc)


def access_invalid_pmc_regs(v: Vcpu, acc: PmcAccessor, pmc: int) -> None:
    """``test_access_invalid_pmc_regs()``: every access UNDEFs, and the bitmap bit is RAZ."""
    with pytest.raises(UndefinedAccess):
        acc.read_cntr(v, pmc)
    with pytest.raises(UndefinedAccess):
        acc.write_cntr(v, pmc, 0)
    with pytest.raises(UndefinedAccess):
        acc.read_typer(v, pmc)
    with pytest.raises(UndefinedAccess):
        acc.write_typer(v, pmc, 0)
    bitmap_pmu_regs(v, pmc, True)
    bitmap_pmu_regs(v, pmc, False)


def guest_code(v: Vcpu, expected_n: int) -> None:
    """The selftest's ``guest_code(expected_pmcr_n)``."""
    assert expected_n <= MAX_EVENT_COUNTERS
    pmcr_n = _pmcr_n(v.read_sysreg("PMCR_EL0"))
    assert pmcr_n == expected_n
    unimplemented = ((1 << MAX_EVENT_COUNTERS) - 1) & ~((1 << pmcr_n) - 1)
    check_bitmap_pmu_regs(v, unimplemented, False)
    for acc in PMC_ACCESSORS:
        for pmc in range(pmcr_n):
            access_pmc_regs(v, acc, pmc)
    for acc in PMC_ACCESSORS:
        for pmc in range(pmcr_n, MAX_EVENT_COUNTERS):
            access_invalid_pmc_regs(v, acc, pmc)


# --- VM setup (userspace side of the selftest) --------------------------------------------------


def create_vpmu_vm(
    kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, nr_vcpus: int = 1
) -> list[Vcpu]:
    """``create_vpmu_vm()``: vCPUs with PMUv3, and the guest sees a real PMUv3 version."""
    kvm = Kvm(_host(), kernel=kernel, quirks=quirks)
    vcpus = [create_vcpu(kvm) for _ in range(nr_vcpus)]
    for v in vcpus:
        assert v.vcpu_init(vmm_cpu) == 0
    assert kvm.guest_pmuver not in (PmuVer.NI, PmuVer.IMP_DEF)
    assert kvm.guest_pmuver >= PmuVer.IMP
    return vcpus


def create_vpmu_vm_with_nr_counters(
    kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, n: int, *, fixed: bool, expect_fail: bool
) -> Vcpu:
    """``test_create_vpmu_vm_with_nr_counters(n, fixed, expect_fail)``."""
    (v,) = create_vpmu_vm(kernel, quirks, vmm_cpu)
    if fixed:
        assert v.set_attr(PmuAttr.FIXED_COUNTERS_ONLY) == 0
    assert v.set_attr(PmuAttr.IRQ, DEFAULT_PMU_IRQ) == 0
    prev = _pmcr_n(v.get_one_reg("PMCR_EL0")[1])
    ret = v.set_attr(PmuAttr.SET_NR_COUNTERS, n)
    if expect_fail:
        assert ret == -EINVAL
        assert _pmcr_n(v.get_one_reg("PMCR_EL0")[1]) == prev
    else:
        assert ret == 0
        assert _pmcr_n(v.get_one_reg("PMCR_EL0")[1]) == n
    assert v.set_attr(PmuAttr.INIT) == 0
    return v


def run_vcpu(v: Vcpu, cpu: int, n: int) -> None:
    v.vcpu_load(cpu)
    assert v.guest_enter().entered
    guest_code(v, n)
    v.guest_exit()
    v.vcpu_put()


def get_pmcr_n_limit(kernel: KernelSemantics, vmm_cpu: int) -> int:
    (v,) = create_vpmu_vm(kernel, Quirks(), vmm_cpu)
    ret, pmcr = v.get_one_reg("PMCR_EL0")
    assert ret == 0
    return _pmcr_n(pmcr)


def _quirks_id(value: object) -> str | None:
    if isinstance(value, Quirks):
        return "+".join(value.enabled_names()) or "architectural"
    return None


params = pytest.mark.parametrize(
    ("kernel", "quirks", "vmm_cpu", "limit"),
    [(k, q, c, lim) for k in KERNELS for q in QUIRKS for c, lim in HOSTS],
    ids=_quirks_id,
)


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
def test_create_vpmu_vm(kernel: KernelSemantics) -> None:
    (v,) = create_vpmu_vm(kernel, Quirks(), 0)
    assert v.kvm.guest_pmuver == PmuVer.V3P1
    assert v.set_attr(PmuAttr.IRQ, DEFAULT_PMU_IRQ) == 0
    assert v.set_attr(PmuAttr.INIT) == 0


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("vmm_cpu", "limit"), HOSTS)
def test_get_pmcr_n_limit(kernel: KernelSemantics, vmm_cpu: int, limit: int) -> None:
    assert get_pmcr_n_limit(kernel, vmm_cpu) == limit


@params
def test_create_vpmu_vm_with_nr_counters(
    kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int
) -> None:
    """Every N up to the limit is accepted; the N above it are ``run_error_test``'s."""
    for n in range(limit + 1):
        create_vpmu_vm_with_nr_counters(kernel, quirks, vmm_cpu, n, fixed=False, expect_fail=False)


@params
def test_create_vpmu_vm_with_pmcr_n(
    kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int
) -> None:
    """The legacy flavour of the selftest: N written through ``KVM_SET_ONE_REG(PMCR_EL0)``; a
    value above the limit "should not modify the field, and return a success"."""
    for n in range(MAX_EVENT_COUNTERS + 1):
        (v,) = create_vpmu_vm(kernel, quirks, vmm_cpu)
        assert v.set_attr(PmuAttr.IRQ, DEFAULT_PMU_IRQ) == 0
        assert v.set_attr(PmuAttr.INIT) == 0
        _, orig = v.get_one_reg("PMCR_EL0")
        assert v.set_one_reg("PMCR_EL0", (orig & ~PMCR_N_MASK) | (n << PMCR_N_SHIFT)) == 0
        _, pmcr = v.get_one_reg("PMCR_EL0")
        assert pmcr == (orig if n > limit else (orig & ~PMCR_N_MASK) | (n << PMCR_N_SHIFT))


@params
def test_guest_code(kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int) -> None:
    for n in range(limit + 1):
        v = create_vpmu_vm_with_nr_counters(
            kernel, quirks, vmm_cpu, n, fixed=False, expect_fail=False
        )
        v.vcpu_load(vmm_cpu)
        assert v.guest_enter().entered
        assert _pmcr_n(v.read_sysreg("PMCR_EL0")) == n
        check_bitmap_pmu_regs(v, ((1 << MAX_EVENT_COUNTERS) - 1) & ~((1 << n) - 1), False)


@params
def test_test_access_pmc_regs(
    kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int
) -> None:
    v = create_vpmu_vm_with_nr_counters(
        kernel, quirks, vmm_cpu, limit, fixed=False, expect_fail=False
    )
    v.vcpu_load(vmm_cpu)
    assert v.guest_enter().entered
    for acc in PMC_ACCESSORS:
        for pmc in range(limit):
            access_pmc_regs(v, acc, pmc)


@params
def test_test_access_invalid_pmc_regs(
    kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int
) -> None:
    for n in (0, limit // 2, limit):
        v = create_vpmu_vm_with_nr_counters(
            kernel, quirks, vmm_cpu, n, fixed=False, expect_fail=False
        )
        v.vcpu_load(vmm_cpu)
        assert v.guest_enter().entered
        for acc in PMC_ACCESSORS:
            for pmc in range(n, MAX_EVENT_COUNTERS):
                access_invalid_pmc_regs(v, acc, pmc)


@params
def test_test_bitmap_pmu_regs(
    kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int
) -> None:
    """Clear/set/clear of every counter's bit: set reads back only for implemented counters."""
    for n in (0, limit):
        v = create_vpmu_vm_with_nr_counters(
            kernel, quirks, vmm_cpu, n, fixed=False, expect_fail=False
        )
        v.vcpu_load(vmm_cpu)
        assert v.guest_enter().entered
        pmu_disable_reset(v)
        for pmc in range(MAX_EVENT_COUNTERS):
            for set_op in (False, True, False):
                bitmap_pmu_regs(v, pmc, set_op)


@params
def test_run_access_test(kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int) -> None:
    """``run_access_test(n)``: the whole guest code, then re-INIT and again: N persists."""
    for n in range(limit + 1):
        v = create_vpmu_vm_with_nr_counters(
            kernel, quirks, vmm_cpu, n, fixed=False, expect_fail=False
        )
        run_vcpu(v, vmm_cpu, n)
        assert v.vcpu_init(vmm_cpu) == 0  # KVM_ARM_VCPU_INIT again: a vCPU reset
        run_vcpu(v, vmm_cpu, n)


def run_pmregs_validity_test(v: Vcpu, n: int) -> None:
    valid = counter_mask(n)
    for set_reg, clr_reg in (
        ("PMCNTENSET_EL0", "PMCNTENCLR_EL0"),
        ("PMINTENSET_EL1", "PMINTENCLR_EL1"),
        ("PMOVSSET_EL0", "PMOVSCLR_EL0"),
    ):
        for reg in (set_reg, clr_reg):
            ret, val = v.get_one_reg(reg)
            assert ret == 0 and val & ~valid == 0, (reg, hex(val))
        assert v.set_one_reg(set_reg, counter_mask(32)) == 0
        for reg in (set_reg, clr_reg):
            ret, val = v.get_one_reg(reg)
            assert ret == 0 and val & ~valid == 0, (reg, hex(val))


@params
def test_run_pmregs_validity_test(
    kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int
) -> None:
    for n in range(limit + 1):
        v = create_vpmu_vm_with_nr_counters(
            kernel, quirks, vmm_cpu, n, fixed=False, expect_fail=False
        )
        run_pmregs_validity_test(v, n)


@params
def test_run_error_test(kernel: KernelSemantics, quirks: Quirks, vmm_cpu: int, limit: int) -> None:
    """``run_error_test(n)`` for n > limit: SET_NR_COUNTERS fails EINVAL, INIT still succeeds."""
    for n in range(limit + 1, MAX_EVENT_COUNTERS + 1):
        v = create_vpmu_vm_with_nr_counters(
            kernel, quirks, vmm_cpu, n, fixed=False, expect_fail=True
        )
        assert v.created


@pytest.mark.parametrize("kernel", KERNELS)
def test_test_fixed_counters_only(kernel: KernelSemantics) -> None:
    """``test_fixed_counters_only()`` steps 1-6 (v4-v7 flavour, and the v8 one for step 4)."""
    # 1. HAS_DEVICE_ATTR: supported on a vCPU with a PMU; ENXIO (the "old kernel" answer)
    #    on a vCPU without one.
    (v,) = create_vpmu_vm(kernel, Quirks(), 0)
    assert v.has_attr(PmuAttr.FIXED_COUNTERS_ONLY) == 0
    no_pmu = create_vcpu(Kvm(_host(), kernel=kernel))
    assert no_pmu.vcpu_init(0, pmu_v3=False) == 0
    assert no_pmu.has_attr(PmuAttr.FIXED_COUNTERS_ONLY) == -ENXIO
    # 2. unset at initialisation
    assert v.get_attr(PmuAttr.FIXED_COUNTERS_ONLY) == (-ENXIO, None)
    # 3. set, then get succeeds
    assert v.set_attr(PmuAttr.FIXED_COUNTERS_ONLY) == 0
    assert v.get_attr(PmuAttr.FIXED_COUNTERS_ONLY) == (0, None)
    # 4. a filter after FIXED: allowed up to v7 (and FIXED again), EBUSY from v8
    flt = EventFilter(base_event=0, nevents=0)
    if kernel == KernelSemantics.V4:
        assert v.set_attr(PmuAttr.FILTER, flt) == 0
        assert v.set_attr(PmuAttr.FIXED_COUNTERS_ONLY) == 0
    else:
        assert v.set_attr(PmuAttr.FILTER, flt) == -EBUSY
    # 5. fresh VM: FILTER first, then FIXED -> EBUSY
    (v,) = create_vpmu_vm(kernel, Quirks(), 0)
    assert v.set_attr(PmuAttr.FILTER, flt) == 0
    assert v.set_attr(PmuAttr.FIXED_COUNTERS_ONLY) == -EBUSY
    # 6. 2-vCPU VM: run vCPU 0, then FIXED on vCPU 1 -> EBUSY ("after running a VCPU")
    v0, v1 = create_vpmu_vm(kernel, Quirks(), 0, nr_vcpus=2)
    assert v0.set_attr(PmuAttr.IRQ, DEFAULT_PMU_IRQ) == 0
    assert v0.set_attr(PmuAttr.INIT) == 0
    v0.vcpu_load(0)
    assert v0.guest_enter().entered
    v0.guest_exit()
    v0.vcpu_put()
    assert v1.set_attr(PmuAttr.FIXED_COUNTERS_ONLY) == -EBUSY


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("quirks", QUIRKS, ids=_quirks_id)
def test_test_config_fixed(kernel: KernelSemantics, quirks: Quirks) -> None:
    """``test_config(0, true)``: every access check with FIXED set and N = 0."""
    v = create_vpmu_vm_with_nr_counters(kernel, quirks, 0, 0, fixed=True, expect_fail=False)
    run_vcpu(v, 0, 0)
    assert v.vcpu_init(0) == 0
    run_vcpu(v, 4, 0)  # any pCPU with a PMU: the cycle counter follows it
    v = create_vpmu_vm_with_nr_counters(kernel, quirks, 0, 0, fixed=True, expect_fail=False)
    run_pmregs_validity_test(v, 0)
    for n in range(1, MAX_EVENT_COUNTERS + 1):
        v = create_vpmu_vm_with_nr_counters(kernel, quirks, 0, n, fixed=True, expect_fail=True)
        assert v.created
    # The cycle counter itself stays fully accessible.
    v = create_vpmu_vm_with_nr_counters(kernel, quirks, 0, 0, fixed=True, expect_fail=False)
    v.vcpu_load(0)
    assert v.guest_enter().entered
    v.write_sysreg("PMCCNTR_EL0", 0x1234_5678_9ABC)
    assert v.read_sysreg("PMCCNTR_EL0") == 0x1234_5678_9ABC
    v.write_sysreg("PMSELR_EL0", CYCLE_IDX)
    assert v.read_sysreg("PMXEVCNTR_EL0") == 0x1234_5678_9ABC
