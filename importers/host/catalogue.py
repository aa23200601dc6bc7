"""The host PMU catalogue: what the PMUs of common cores are, by MIDR part and perf PMU name.

Each entry gives what KVM derives its vPMU from (spec §1.1, §2.4, §5.3, §5.6): the core's
``ID_AA64DFR0_EL1.PMUVer``, its number of general-purpose event counters (``PMCR_EL0.N``),
whether EL0 can run AArch32 (``ID_AA64PFR0_EL1.EL0 == 2``) and, for IMPDEF PMUs, their kind. The
values are the reset values of those registers in the core's Technical Reference Manual; the
ones cited "as transcribed in QEMU" are the TRM values QEMU's CPU models
(``target/arm/tcg/cpu64.c``, ``target/arm/cpu64.c``) copy section by section from that TRM.
Part numbers are those of ``arch/arm64/include/asm/cputype.h``; PMU names those the kernel's
drivers register (``drivers/perf/arm_pmuv3.c`` ``PMUV3_INIT_SIMPLE(armv8_cortex_a53)``...,
``drivers/perf/apple_m1_cpu_pmu.c`` ``APPLE_PMU_INIT(m1, icestorm)`` -> ``apple_icestorm_pmu``).

A value this project could not confirm against a primary source is ``None``, with the reason in
``source``; the host description (:mod:`importers.host.pmus`) then states an assumed default.
"""

from __future__ import annotations

from dataclasses import dataclass

from importers.errors import TopologyError
from importers.host.pmuv3 import BR_MIS_PRED_RETIRED, BR_RETIRED, CPU_CYCLES, INST_RETIRED, PmuVer

ARM = 0x41
APPLE = 0x61

#: ``pmuver`` spellings of the topology file and the catalogue -> ``ID_AA64DFR0_EL1.PMUVer``.
PMUVER_NAMES: dict[str, int] = {
    "none": PmuVer.NI,
    "3.0": PmuVer.IMP,
    "3.1": PmuVer.V3P1,
    "3.4": PmuVer.V3P4,
    "3.5": PmuVer.V3P5,
    "3.7": PmuVer.V3P7,
    "3.8": PmuVer.V3P8,
    "3.9": PmuVer.V3P9,
    "impdef": PmuVer.IMP_DEF,
}


def parse_pmuver(text: object, where: str) -> int:
    """``ID_AA64DFR0_EL1.PMUVer`` of a ``pmuver`` spelling (``"3.1"``, ``"impdef"``, ...)."""
    value = PMUVER_NAMES.get(str(text).strip().lower())
    if value is None:
        raise TopologyError(
            f"{where}: pmuver {text!r} is not one of {', '.join(PMUVER_NAMES)} "
            "(3.0 is PMUv3 of Armv8.0, 3.1 PMUv3p1, ...)"
        )
    return value


def pmuver_name(value: int) -> str:
    """The spelling of a ``PMUVer`` value (inverse of :func:`parse_pmuver`)."""
    return next((k for k, v in PMUVER_NAMES.items() if v == value), f"{value:#x}")


@dataclass(frozen=True)
class Core:
    """One core type and its PMU (see module docstring). ``None`` facts are unconfirmed."""

    name: str
    implementer: int
    parts: tuple[int, ...]
    pmu: str
    pmuver: int | None
    counters: int | None
    aarch32_el0: bool | None
    source: str
    impdef: str | None = None
    #: For a driver with ``map_pmuv3_event``: the PMUv3 events it translates.
    mappable_events: frozenset[int] | None = None


def _qemu(init: str, trm: str, dfr0: str, pmcr: str, pfr0: str) -> str:
    return (
        f"{trm}: ID_AA64DFR0_EL1 {dfr0}, PMCR_EL0 reset {pmcr}, ID_AA64PFR0_EL1 {pfr0}, "
        f"as transcribed in QEMU {init}"
    )


_UNCONFIRMED = "not confirmed against the core's TRM here"
_APPLE_SOURCE = (
    "PMUVer IMPDEF: arch/arm64/kernel/cpu_errata.c has_impdef_pmuv3() applies the IMPDEF trap "
    "workaround to these MIDRs only when the sanitised PMUVer is IMP_DEF; 10 counters: "
    "drivers/perf/apple_m1_cpu_pmu.c M1_PMU_NR_COUNTERS (cntr_mask bits 0-9); PMUv3 events: "
    "m1_pmu_pmceid_map (INST_RETIRED, CPU_CYCLES, BR_RETIRED, BR_MIS_PRED_RETIRED); AArch32 EL0 "
    "not confirmed (Apple publishes no TRM)"
)
_APPLE_EVENTS = frozenset({INST_RETIRED, CPU_CYCLES, BR_RETIRED, BR_MIS_PRED_RETIRED})


def _arm(
    name: str, part: int, pmu: str, facts: tuple[int | None, int | None, bool | None], source: str
) -> Core:
    return Core(name, ARM, (part,), pmu, *facts, source=source)


def _apple(name: str, parts: tuple[int, ...], pmu: str) -> Core:
    return Core(
        name,
        APPLE,
        parts,
        pmu,
        PmuVer.IMP_DEF,
        10,
        None,
        _APPLE_SOURCE,
        impdef="apple",
        mappable_events=_APPLE_EVENTS,
    )


CORES: tuple[Core, ...] = (
    _arm(
        "Cortex-A53",
        0xD03,
        "armv8_cortex_a53",
        (PmuVer.IMP, 6, True),
        "Cortex-A53 TRM DDI 0500: ID_AA64DFR0_EL1 0x10305106 (PMUVer 1; also AMD UG1087 "
        "A53_DBG register reference), six event counters EVCNTR0-5 (UG1087 A53_PMU module), "
        "ID_AA64PFR0_EL1.EL0 = 2 (TRM DDI 0500D table 4-45)",
    ),
    _arm(
        "Cortex-A55",
        0xD05,
        "armv8_cortex_a55",
        (PmuVer.V3P1, 6, True),
        _qemu(
            "aarch64_a55_initfn", "Cortex-A55 TRM 100442", "0x10305408", "0x410b3000", "0x10112222"
        )
        + "; PMCFGR.N = 6 (TRM 100442 D6)",
    ),
    _arm(
        "Cortex-A57",
        0xD07,
        "armv8_cortex_a57",
        (PmuVer.IMP, 6, True),
        "Cortex-A57 TRM DDI 0488: ID_AA64DFR0_EL1 0x10305106 and ID_AA64PFR0_EL1 0x00002222 as "
        "transcribed in QEMU aarch64_a57_initfn, PMCR_EL0 reset 0x41013000 in QEMU's "
        "A57-based arm_max_initfn",
    ),
    _arm(
        "Cortex-A72",
        0xD08,
        "armv8_cortex_a72",
        (PmuVer.IMP, 6, True),
        _qemu(
            "aarch64_a72_initfn", "Cortex-A72 TRM 100095", "0x10305106", "0x41023000", "0x00002222"
        ),
    ),
    _arm("Cortex-A73", 0xD09, "armv8_cortex_a73", (None, None, None), _UNCONFIRMED),
    _arm("Cortex-A75", 0xD0A, "armv8_cortex_a75", (None, None, None), _UNCONFIRMED),
    _arm(
        "Cortex-A76",
        0xD0B,
        "armv8_cortex_a76",
        (PmuVer.V3P1, 6, True),
        _qemu(
            "aarch64_a76_initfn",
            "Cortex-A76 TRM 100798",
            "0x10305408",
            "0x410b3000",
            "0x1100000010111112",
        ),
    ),
    _arm(
        "Cortex-A77",
        0xD0D,
        "armv8_cortex_a77",
        (None, 6, None),
        "six counters: Cortex-A77 TRM 101111 'About the PMU'; PMUVer and AArch32 EL0 "
        + _UNCONFIRMED,
    ),
    _arm("Cortex-A78", 0xD41, "armv8_cortex_a78", (None, None, None), _UNCONFIRMED),
    _arm("Cortex-X1", 0xD44, "armv8_cortex_x1", (None, None, None), _UNCONFIRMED),
    _arm("Cortex-X2", 0xD48, "armv9_cortex_x2", (None, None, None), _UNCONFIRMED),
    _arm("Cortex-X3", 0xD4E, "armv9_cortex_x3", (None, None, None), _UNCONFIRMED),
    _arm("Cortex-X4", 0xD82, "armv9_cortex_x4", (None, None, None), _UNCONFIRMED),
    _arm("Cortex-A510", 0xD46, "armv9_cortex_a510", (None, None, None), _UNCONFIRMED),
    _arm("Cortex-A520", 0xD80, "armv9_cortex_a520", (None, None, None), _UNCONFIRMED),
    _arm(
        "Cortex-A710",
        0xD47,
        "armv9_cortex_a710",
        (PmuVer.V3P5, 20, True),
        _qemu(
            "aarch64_a710_initfn",
            "Cortex-A710 TRM B.5",
            "0x000011f010305619",
            "0xa000 (20 counters)",
            "0x1201111120111112",
        ),
    ),
    _arm("Cortex-A715", 0xD4D, "armv9_cortex_a715", (None, None, None), _UNCONFIRMED),
    _arm("Cortex-A720", 0xD81, "armv9_cortex_a720", (None, None, None), _UNCONFIRMED),
    _arm(
        "Neoverse N1",
        0xD0C,
        "armv8_neoverse_n1",
        (PmuVer.V3P1, 6, True),
        _qemu(
            "aarch64_neoverse_n1_initfn",
            "Neoverse N1 TRM",
            "0x0000000110305408",
            "0x410c3000",
            "0x1100000010111112",
        ),
    ),
    _arm(
        "Neoverse N2",
        0xD49,
        "armv9_neoverse_n2",
        (PmuVer.V3P5, 6, True),
        _qemu(
            "aarch64_neoverse_n2_initfn",
            "Neoverse N2 TRM B.5/B.7",
            "0x000011f210305619",
            "0x3000 (6 counters)",
            "0x1201111120111112",
        ),
    ),
    _arm(
        "Neoverse V1",
        0xD40,
        "armv8_neoverse_v1",
        (PmuVer.V3P4, 6, True),
        _qemu(
            "aarch64_neoverse_v1_initfn",
            "Neoverse V1 TRM r1p2",
            "0x000001f210305519",
            "0x41213000",
            "0x1101110120111112",
        ),
    ),
    _arm("Neoverse V2", 0xD4F, "armv8_neoverse_v2", (None, None, None), _UNCONFIRMED),
    _apple("Apple Icestorm (M1)", (0x022, 0x024, 0x028), "apple_icestorm_pmu"),
    _apple("Apple Firestorm (M1)", (0x023, 0x025, 0x029), "apple_firestorm_pmu"),
    _apple("Apple Blizzard (M2)", (0x032, 0x034, 0x038), "apple_blizzard_pmu"),
    _apple("Apple Avalanche (M2)", (0x033, 0x035, 0x039), "apple_avalanche_pmu"),
)

_BY_MIDR = {(c.implementer, part): c for c in CORES for part in c.parts}
_BY_PMU = {c.pmu: c for c in CORES}


def core_of_midr(midr: int) -> Core | None:
    """The catalogued core with this ``MIDR_EL1`` implementer [31:24] and part number [15:4]."""
    return _BY_MIDR.get((midr >> 24 & 0xFF, midr >> 4 & 0xFFF))


def core_of_pmu(name: str) -> Core | None:
    """The catalogued core whose PMU the kernel registers under this perf PMU name."""
    return _BY_PMU.get(name)
