"""``pmu-replay record`` snapshots the host facts the PMU description needs: each CPU's
MIDR_EL1 (sysfs, else /proc/cpuinfo) and each core PMU's events/, in a form the topology reader
takes back."""

from __future__ import annotations

import json
from pathlib import Path

from importers.host.pmus import PmuDescription, describe_pmus
from importers.host.resolve import load_topology
from replay.record import snapshot_topology


def _sysfs(root: Path) -> Path:
    sysfs = root / "sys"
    dev = sysfs / "bus/event_source/devices/armv8_cortex_a55"
    (dev / "events").mkdir(parents=True)
    (dev / "type").write_text("8\n")
    (dev / "cpus").write_text("0-1\n")
    (dev / "events/cpu_cycles").write_text("event=0x0011\n")
    (dev / "events/inst_retired").write_text("event=0x0008\n")
    uncore = sysfs / "bus/event_source/devices/arm_dsu_0"
    uncore.mkdir()
    (uncore / "cpumask").write_text("0\n")
    for cpu in (0, 1):
        (sysfs / f"devices/system/cpu/cpu{cpu}").mkdir(parents=True)
    return sysfs


def _roundtrip(root: Path, snap: dict[str, object]) -> list[PmuDescription]:
    path = root / "topology.json"
    path.write_text(json.dumps(snap))
    return list(describe_pmus(load_topology(path)))


def test_midrs_from_sysfs_and_events_of_core_pmus(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path)
    for cpu in (0, 1):
        ident = sysfs / f"devices/system/cpu/cpu{cpu}/regs/identification"
        ident.mkdir(parents=True)
        (ident / "midr_el1").write_text("0x00000000412fd050\n")
    snap = snapshot_topology(sysfs, tmp_path / "no-proc")
    assert snap["midr_el1"] == {"0": "0x00000000412fd050", "1": "0x00000000412fd050"}
    devices = snap["event_source_devices"]
    assert devices["armv8_cortex_a55"]["events"] == {
        "cpu_cycles": "event=0x0011",
        "inst_retired": "event=0x0008",
    }
    assert "events" not in devices["arm_dsu_0"]  # an uncore PMU: no per-CPU events
    (a55,) = _roundtrip(tmp_path, snap)
    assert a55.core.value == "Cortex-A55"
    assert a55.pmceid.value == (1 << 0x11 | 1 << 0x08, 0)


def test_midrs_fall_back_to_proc_cpuinfo(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path)
    proc = tmp_path / "proc"
    proc.mkdir()
    block = "processor\t: {}\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x2\n"
    block += "CPU part\t: 0xd05\nCPU revision\t: 0\n"
    (proc / "cpuinfo").write_text(block.format(0) + "\n" + block.format(1))
    snap = snapshot_topology(sysfs, proc)
    assert snap["midr_el1"] == {"0": "0x00000000412fd050", "1": "0x00000000412fd050"}
    (a55,) = _roundtrip(tmp_path, snap)
    assert "MIDR_EL1 0x412fd050 of CPUs 0-1" in a55.core.source
