"""Names of the AArch64 PMU system registers from their (Op0, Op1, CRn, CRm, Op2) encoding.

``kvm_sys_access`` carries the encoding of every trapped sysreg access, but its ``name`` is only
a kernel pointer in binary captures, so importers decode PMU registers themselves
(``formats.md`` §2.6). Encodings are those of the Arm ARM (D-profile) as used by
``arch/arm64/include/asm/sysreg.h``: Op0=3, Op1=3, CRn=9 for PMCR_EL0 and friends, CRn=14 for
PMEVCNTR<n>_EL0 / PMEVTYPER<n>_EL0 / PMCCFILTR_EL0; PMINTEN{SET,CLR}_EL1 are Op1=0.
"""

from __future__ import annotations

# (Op0, Op1, CRn, CRm, Op2) -> name, for the fixed-encoding PMU registers.
FIXED: dict[tuple[int, int, int, int, int], str] = {
    (3, 3, 9, 12, 0): "PMCR_EL0",
    (3, 3, 9, 12, 1): "PMCNTENSET_EL0",
    (3, 3, 9, 12, 2): "PMCNTENCLR_EL0",
    (3, 3, 9, 12, 3): "PMOVSCLR_EL0",
    (3, 3, 9, 12, 4): "PMSWINC_EL0",
    (3, 3, 9, 12, 5): "PMSELR_EL0",
    (3, 3, 9, 12, 6): "PMCEID0_EL0",
    (3, 3, 9, 12, 7): "PMCEID1_EL0",
    (3, 3, 9, 13, 0): "PMCCNTR_EL0",
    (3, 3, 9, 13, 1): "PMXEVTYPER_EL0",
    (3, 3, 9, 13, 2): "PMXEVCNTR_EL0",
    (3, 3, 9, 14, 0): "PMUSERENR_EL0",
    (3, 3, 9, 14, 3): "PMOVSSET_EL0",
    (3, 0, 9, 14, 1): "PMINTENSET_EL1",
    (3, 0, 9, 14, 2): "PMINTENCLR_EL1",
    (3, 3, 14, 15, 7): "PMCCFILTR_EL0",
}


def pmu_sysreg_name(op0: int, op1: int, crn: int, crm: int, op2: int) -> str | None:
    """Arm ARM name of a PMU register encoding, or None for any other register.

    PMEVCNTR<n>_EL0 is CRn=14, CRm=0b10:n[4:3], Op2=n[2:0]; PMEVTYPER<n>_EL0 is CRm=0b11:n[4:3]
    (n = 31 with CRm=0b1111, Op2=7 is PMCCFILTR_EL0).
    """
    fixed = FIXED.get((op0, op1, crn, crm, op2))
    if fixed is not None:
        return fixed
    if (op0, op1, crn) == (3, 3, 14) and 8 <= crm <= 15:
        n = ((crm & 0b11) << 3) | op2
        kind = "PMEVCNTR" if crm < 12 else "PMEVTYPER"
        if n <= 30:
            return f"{kind}{n}_EL0"
    return None
