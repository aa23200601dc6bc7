"""The host PMU description: catalogue lookups, snapshot facts, and the order of sources.

Expected values are read off the cited sources (``arch/arm64/include/asm/cputype.h``, QEMU's
transcriptions of the TRMs, ``drivers/perf/apple_m1_cpu_pmu.c``), not off this project's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from importers.errors import TopologyError
from importers.host.catalogue import CORES, core_of_midr, core_of_pmu, parse_pmuver
from importers.host.facts import midrs_from_cpuinfo, pmceid_from_events
from importers.host.pmus import describe_pmus, version_text
from importers.host.resolve import load_topology
from importers.host.topology import Topology, parse_reserved_specs
from replay.pmu import PmuVer, Reservation

# MIDR_EL1 = implementer[31:24] variant[23:20] architecture[19:16]=0xF part[15:4] revision[3:0]
A55_R2P0 = 0x412F_D050
A76_R4P1 = 0x414F_D0B1
FIRESTORM = 0x611F_0230


def _snapshot(tmp_path: Path, **extra: object) -> Path:
    """A sysfs snapshot: Cortex-A55 PMU on CPUs 0-3, Cortex-A76 PMU on CPUs 4-7."""
    data = {
        "format": "pmu-replay-topology/1",
        "cpus_possible": "0-7",
        "event_source_devices": {
            "armv8_cortex_a55": {"type": "8", "cpus": "0-3"},
            "armv8_cortex_a76": {"type": "9", "cpus": "4-7"},
        },
        **extra,
    }
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(data))
    return path


def test_every_catalogued_part_and_pmu_name_is_found() -> None:
    # cputype.h: ARM_CPU_PART_CORTEX_A55 0xD05, ..._CORTEX_X4 0xD82, APPLE_CPU_PART_M2_BLIZZARD 0x032
    assert core_of_midr(A55_R2P0).name == "Cortex-A55"  # type: ignore[union-attr]
    assert core_of_midr(0x410F_D820).name == "Cortex-X4"  # type: ignore[union-attr]
    assert core_of_midr(0x611F_0320).name == "Apple Blizzard (M2)"  # type: ignore[union-attr]
    assert core_of_midr(0x410F_D0F0) is None  # the AEM model is not catalogued
    assert core_of_midr(0x510F_D050) is None  # part 0xD05 of another implementer
    for core in CORES:
        assert core_of_pmu(core.pmu) is core
        for part in core.parts:
            assert core_of_midr(core.implementer << 24 | 0xF << 16 | part << 4) is core
        # Every value is cited; an unconfirmed one says so.
        assert core.source
        if None in (core.pmuver, core.counters, core.aarch32_el0):
            assert "not confirmed" in core.source


def test_a55_and_a76_midrs_give_both_pmus_their_catalogue_values(tmp_path: Path) -> None:
    midrs = {str(c): hex(A55_R2P0 if c < 4 else A76_R4P1) for c in range(8)}
    a55, a76 = describe_pmus(load_topology(_snapshot(tmp_path, midr_el1=midrs)))
    # QEMU aarch64_a55_initfn / aarch64_a76_initfn: ID_AA64DFR0_EL1 0x10305408 (PMUVer 4),
    # PMCR_EL0 reset 0x410b3000 (N = 6), ID_AA64PFR0_EL1.EL0 = 2 (AArch32).
    for pmu, core in ((a55, "Cortex-A55"), (a76, "Cortex-A76")):
        assert pmu.core.value == core and not pmu.core.assumed
        assert "MIDR_EL1" in pmu.core.source and "sysfs snapshot" in pmu.core.source
        assert (pmu.pmuver.value, pmu.counters.value, pmu.aarch32_el0.value) == (4, 6, True)
        for fact in (pmu.pmuver, pmu.counters, pmu.aarch32_el0):
            assert not fact.assumed and fact.source.startswith(f"catalogue, {core}: ")
            assert "TRM" in fact.source
        assert pmu.pmceid.assumed  # no events/ in this snapshot
    assert a55.cpus == frozenset(range(4)) and a76.cpus == frozenset(range(4, 8))


def test_the_midr_wins_over_the_pmu_name(tmp_path: Path) -> None:
    """An ACPI-style name says nothing; a misleading name loses to the CPUs' MIDR."""
    midrs = {str(c): hex(A76_R4P1) for c in range(8)}
    a55_named, _ = describe_pmus(load_topology(_snapshot(tmp_path, midr_el1=midrs)))
    assert a55_named.core.value == "Cortex-A76"


def test_overrides_win_over_the_catalogue_and_unknown_cores_are_assumed(tmp_path: Path) -> None:
    pmus = {"armv8_cortex_a76": {"pmuver": "3.5", "counters": 20, "aarch32_el0": False}}
    devices = {
        "armv8_pmuv3_0": {"type": "8", "cpus": "0-3"},
        "armv8_cortex_a76": {"type": "9", "cpus": "4-7"},
    }
    path = _snapshot(tmp_path, pmus=pmus)
    data = json.loads(path.read_text())
    data["event_source_devices"] = devices
    path.write_text(json.dumps(data))
    acpi, a76 = describe_pmus(load_topology(path))
    assert (a76.pmuver.value, a76.counters.value, a76.aarch32_el0.value) == (6, 20, False)
    assert a76.pmuver.source == "topology file (pmus.armv8_cortex_a76)"
    assert acpi.core.value is None and acpi.core.assumed
    # Unknown core: the version every other PMU has (no evidence of a mismatch), 6, AArch32.
    assert (acpi.pmuver.value, acpi.counters.value, acpi.aarch32_el0.value) == (6, 6, True)
    assert acpi.pmuver.assumed and "the version of the other PMUs" in acpi.pmuver.source
    assert version_text(acpi.pmuver.value) == "PMUv3p5"


def test_sysfs_events_give_the_common_event_bitmap(tmp_path: Path) -> None:
    events = {
        "sw_incr": "event=0x00",
        "inst_retired": "event=0x08",
        "cpu_cycles": "event=0x0011",
        "br_retired": "event=0x21",
        "stall_slot": "event=0x003f",
        "sample_pop": "event=0x4000",
        "l1d_cache_lmiss_rd": "event=0x4039",
        "impdef_event": "event=0x00c0",  # IMPLEMENTATION DEFINED: not in PMCEID
    }
    assert pmceid_from_events("x", events) == (
        1 << 0 | 1 << 8 | 1 << 17 | 1 << 32,  # 0x00, 0x08, 0x11; 0x4000 in the upper word
        1 << 1 | 1 << 31 | 1 << (0x39 - 0x20 + 32),  # 0x21, 0x3F; 0x4039 in the upper word
    )
    path = _snapshot(tmp_path)
    data = json.loads(path.read_text())
    data["event_source_devices"]["armv8_cortex_a55"]["events"] = {"cpu_cycles": "event=0x11"}
    path.write_text(json.dumps(data))
    a55, _ = describe_pmus(load_topology(path))
    assert a55.pmceid.value == (1 << 17, 0) and not a55.pmceid.assumed
    with pytest.raises(TopologyError, match="event=0x0011"):
        pmceid_from_events("x", {"cpu_cycles": "config=0x11"})


def test_apple_pmus_are_impdef_with_ten_counters_and_a_translated_event_set() -> None:
    core = core_of_midr(FIRESTORM)
    assert core is not None and core.pmu == "apple_firestorm_pmu" and core.impdef == "apple"
    # M1_PMU_NR_COUNTERS 10; m1_pmu_pmceid_map: INST_RETIRED 0x08, CPU_CYCLES 0x11,
    # BR_RETIRED 0x21, BR_MIS_PRED_RETIRED 0x22.
    assert (core.pmuver, core.counters) == (PmuVer.IMP_DEF, 10)
    assert core.mappable_events == {0x08, 0x11, 0x21, 0x22}


def test_cpuinfo_rebuilds_midrs() -> None:
    text = (
        "processor\t: 0\nBogoMIPS\t: 38.40\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
        "CPU variant\t: 0x2\nCPU part\t: 0xd05\nCPU revision\t: 0\n\n"
        "processor\t: 4\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
        "CPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
        "processor\t: 9\nvendor_id\t: GenuineIntel\n"  # not arm64: skipped
    )
    assert midrs_from_cpuinfo(text) == {0: A55_R2P0, 4: A76_R4P1}


def test_host_facts_survive_the_capture_table(tmp_path: Path) -> None:
    midrs = {str(c): hex(A55_R2P0) for c in range(4)}
    path = _snapshot(
        tmp_path,
        midr_el1=midrs,
        pmus={"armv8_cortex_a76": {"aarch32_el0": False}},
        host_reserved_counters={"0-1": "cycles+2", "6": "1"},
    )
    topo = load_topology(path)
    assert topo.reserved == {
        0: Reservation(2, True),
        1: Reservation(2, True),
        6: Reservation(1, False),
    }
    back = Topology.from_table(topo.to_table())
    assert back.midr == topo.midr == {c: A55_R2P0 for c in range(4)}
    assert back.overrides == topo.overrides
    assert back.reserved == topo.reserved
    assert describe_pmus(back) == describe_pmus(topo)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"midr_el1": {"0": "A55"}}, "write a number like 0x410fd050"),
        ({"pmus": {"armv8_cortex_a55": {"pmuver": "4"}}}, "pmuver '4' is not one of"),
        ({"pmus": {"armv8_cortex_a55": {"counters": 32}}}, "PMUv3 has 0..31"),
        ({"pmus": {"armv8_cortex_a55": {"aarch32_el0": "yes"}}}, "write true or false"),
        ({"pmus": {"armv8_cortex_a55": {"slots": 8}}}, "it takes pmuver, counters"),
        ({"host_reserved_counters": {"0": "two"}}, "write N, cycles or cycles\\+N"),
        ({"host_reserved_counters": ["0=1"]}, "must be an object"),
        ({"host_reserved_counters": {"0": "32"}}, "0..31 general-purpose counters"),
    ],
)
def test_bad_host_facts_name_the_file_and_the_fix(
    tmp_path: Path, data: dict[str, object], message: str
) -> None:
    path = _snapshot(tmp_path, **data)
    with pytest.raises(TopologyError, match=message) as err:
        load_topology(path)
    assert str(path) in str(err.value)


def test_reserved_counter_specs() -> None:
    assert parse_reserved_specs(["0-1=cycles", "1=3"]) == {
        0: Reservation(0, True),
        1: Reservation(3, False),
    }
    with pytest.raises(TopologyError, match="CPUS=N"):
        parse_reserved_specs(["cycles"])
    assert parse_pmuver("3.4", "x") == PmuVer.V3P4
