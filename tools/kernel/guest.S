/*
 * Bare-metal AArch64 guest for the pmu-replay recording harness (runs at EL1, MMU off).
 *
 * The VMM (vmm.c) enters at _start with x0 = number of spin iterations between reads.
 * The guest reports over MMIO stores to REPORT_BASE (outside every memslot, so each store is
 * a KVM_EXIT_MMIO the VMM sees):
 *
 *   +0x18  ID_AA64DFR0_EL1 at boot (PMUVer, bits 11:8, is 0 when KVM gives no vPMU)
 *   +0x20  PMCR_EL0 at boot, before the guest writes it (N, bits 15:11) - only with a vPMU
 *   then, forever:
 *   +0x00  CNTVCT_EL0 of this read
 *   +0x08  PMCCNTR_EL0 of this read (the VMM logs the read on this store)
 *   +0x10  ESR_EL1 instead of +0x08 when the PMCCNTR_EL0 read raised an exception (no vPMU:
 *          KVM hides the PMU registers and injects UNDEF)
 *
 * The cycle counter is set up as a guest OS would for a clock-tick calibration: PMCR_EL0.E,
 * .C (reset to 0) and .LC, PMCCFILTR_EL0 = 0 (count EL0 and EL1), PMCNTENSET_EL0 bit 31.
 * No stack is used; x19-x28 hold the guest's state.
 */

#define REPORT_BASE	0x10000000

	.section .text.boot, "ax"
	.global _start
_start:
	mov	x19, x0				/* spin iterations between reads */
	ldr	x20, =REPORT_BASE
	adr	x0, vectors
	msr	vbar_el1, x0
	isb

	mrs	x1, id_aa64dfr0_el1
	str	x1, [x20, #0x18]
	ubfx	x2, x1, #8, #4			/* PMUVer */
	cbz	x2, loop
	cmp	x2, #0xf			/* IMPLEMENTATION DEFINED PMU: not PMUv3 */
	b.eq	loop

	mrs	x3, pmcr_el0
	str	x3, [x20, #0x20]
	msr	pmccfiltr_el0, xzr		/* P = U = NSH = 0: count EL1 and EL0, not EL2 */
	mov	x3, #((1 << 0) | (1 << 2) | (1 << 6))	/* E, C (zero PMCCNTR), LC */
	msr	pmcr_el0, x3
	mov	x3, #(1 << 31)			/* C: the cycle counter */
	msr	pmcntenset_el0, x3
	isb

loop:
	cbz	x19, 2f
	mov	x9, x19
1:	subs	x9, x9, #1
	b.ne	1b
2:	isb
	mrs	x21, cntvct_el0
	mov	x23, #0				/* the exception handler sets it */
	mrs	x22, pmccntr_el0		/* trapped by KVM (MDCR_EL2.TPM): the read */
	str	x21, [x20, #0x00]
	cbnz	x23, 3f
	str	x22, [x20, #0x08]
	b	loop
3:	str	x24, [x20, #0x10]
	b	loop

/*
 * Every exception: remember ESR_EL1 in x24, flag it in x23 and skip the instruction.
 * The only one expected is the UNDEF of the PMCCNTR_EL0 read without a vPMU.
 */
handler:
	mrs	x24, esr_el1
	mov	x23, #1
	mrs	x25, elr_el1
	add	x25, x25, #4
	msr	elr_el1, x25
	eret

	.balign	0x800
vectors:
	.rept	16
	b	handler
	.balign	0x80
	.endr

	.ltorg
