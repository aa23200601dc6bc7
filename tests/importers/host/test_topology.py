"""Topology sources: sysfs snapshot, LISA files, command line, capture, inference."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from importers.capture import Capture
from importers.errors import TopologyError
from importers.host.resolve import load_topology, resolve_topology
from importers.host.topology import (
    SNAPSHOT_FORMAT,
    PmuSpec,
    Topology,
    format_cpulist,
    from_cli,
    infer_from_frequency,
    parse_cpulist,
)
from replay.cli import main
from tests.conftest import FIXTURES

CAPTURE = FIXTURES / "captures" / "cross-cluster-migration.txt"
TOPOLOGY = FIXTURES / "topologies" / "two-cluster.json"


def test_cpulists_round_trip() -> None:
    assert parse_cpulist("0,3-5") == {0, 3, 4, 5}
    assert parse_cpulist("0 3 4 5\n") == {0, 3, 4, 5}
    assert format_cpulist({5, 0, 3, 4, 7}) == "0,3-5,7"
    with pytest.raises(TopologyError, match="not a CPU list"):
        parse_cpulist("0,a")
    with pytest.raises(TopologyError, match="out of order"):
        parse_cpulist("5-3")


def test_juno_plat_info_gives_a53_and_a57(shared_traces: Path) -> None:
    topo = load_topology(shared_traces / "juno-trace-txt/plat_info.yml")
    assert [(p.name, sorted(p.cpus)) for p in topo.pmus] == [
        ("armv8_cortex_a53", [0, 3, 4, 5]),
        ("armv8_cortex_a57", [1, 2]),
    ]
    assert topo.capacity[1] == 1024 and topo.capacity[0] == 446
    assert topo.max_freq_khz(1) == 1_100_000 and topo.max_freq_khz(0) == 850_000
    assert topo.source == "LISA platform file"


@pytest.mark.parametrize(
    ("name", "described"),
    [
        ("juno.json", "armv8_cortex_a53=0,3-5 armv8_cortex_a57=1-2"),
        ("hikey960.json", "armv8_cortex_a53=0-3 armv8_cortex_a73=4-7"),
        ("cros-kevin.json", "armv8_cortex_a53=0-3 armv8_cortex_a72=4-5"),
        ("cros-elm.json", "armv8_cortex_a53=0-1 armv8_cortex_a72=2-3"),
        ("odroid-xu4.json", "armv7_cortex_a7=0-3 armv7_cortex_a15=4-7"),
        ("hikey.json", "armv8_cortex_a53=0-7"),  # two clusters of one core type
        ("pixel.json", "armv8_silver=0-1 armv8_gold=2-3"),  # JSON with a trailing comma
        ("plat_info.yml", "armv8_cortex_a53=0,3-5 armv8_cortex_a57=1-2"),
    ],
)
def test_lisa_platform_files(shared_traces: Path, name: str, described: str) -> None:
    topo = load_topology(shared_traces / "platforms-lisa" / name)
    assert topo.describe() == described


def test_lisa_file_without_cpus_is_a_clear_error(shared_traces: Path) -> None:
    with pytest.raises(TopologyError, match=r"tc2.json.*--pmu"):
        load_topology(shared_traces / "platforms-lisa/tc2.json")


def test_sysfs_snapshot(tmp_path: Path) -> None:
    snap = {
        "format": SNAPSHOT_FORMAT,
        "cpus_possible": "0-5",
        "event_source_devices": {
            "armv8_cortex_a57": {"type": "9\n", "cpus": "1-2\n"},
            "armv8_cortex_a53": {"type": "8\n", "cpus": "0,3-5\n"},
            "software": {"type": "1"},
            "arm_dsu_0": {"type": "10", "cpumask": "0"},
        },
        "cpufreq": {
            "policy0": {
                "related_cpus": "0 3 4 5",
                "scaling_available_frequencies": "450000 850000",
            },
            "policy1": {"related_cpus": "1 2", "cpuinfo_max_freq": "1100000"},
        },
        "cpu_capacity": {"0": "446\n", "1": "1024\n"},
    }
    path = tmp_path / "topo.json"
    path.write_text(json.dumps(snap))
    topo = load_topology(path)
    assert [(p.name, p.perf_type) for p in topo.pmus] == [
        ("armv8_cortex_a53", 8),
        ("armv8_cortex_a57", 9),
    ]
    assert topo.pmu_of(2) == PmuSpec("armv8_cortex_a57", frozenset({1, 2}), 9)
    assert topo.cluster == {0: 0, 3: 0, 4: 0, 5: 0, 1: 1, 2: 1}
    assert topo.max_freq_khz(0) == 850_000 and topo.capacity[1] == 1024
    back = Topology.from_table(topo.to_table())
    assert back.pmus == topo.pmus and back.source == "sysfs snapshot"


def test_snapshot_without_core_pmu(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        json.dumps({"format": SNAPSHOT_FORMAT, "event_source_devices": {"software": {"type": "1"}}})
    )
    with pytest.raises(TopologyError, match="no core PMU"):
        load_topology(path)


def test_command_line() -> None:
    topo = from_cli(["armv8_cortex_a57=1-2", "armv8_cortex_a53=0,3-5"])
    assert topo.describe() == "armv8_cortex_a53=0,3-5 armv8_cortex_a57=1-2"
    assert from_cli(["a:7=0", "b:6=1"]).pmus[0].name == "b"  # perf type order when given
    with pytest.raises(TopologyError, match="NAME=CPULIST"):
        from_cli(["armv8_cortex_a53"])
    with pytest.raises(TopologyError, match="claimed by both"):
        from_cli(["a=0-2", "b=2-3"])


def test_resolution_order_and_conflicts(tmp_path: Path, shared_traces: Path) -> None:
    freq = pl.DataFrame(
        {
            "ts": [1, 1, 1, 1, 2, 2],
            "seq": [0, 1, 2, 3, 4, 5],
            "cpu_id": [0, 1, 2, 3, 0, 1],
            "state": [500, 500, 900, 900, 600, 600],
        }
    ).to_arrow()
    inferred = resolve_topology(None, freq)
    assert inferred is not None and inferred.inferred
    assert inferred.describe() == "inferred_cluster0_pmu=0-1 inferred_cluster1_pmu=2-3"
    assert inferred.source == "inferred from cpu_frequency"
    cli = resolve_topology(inferred.to_table(), freq, pmu_specs=["x=0-3"])
    assert cli is not None and cli.source == "command line"
    carried = resolve_topology(from_cli(["y=0-3"]).to_table(), freq)
    assert carried is not None and carried.describe() == "y=0-3"
    assert resolve_topology(None, freq.slice(0, 0)) is None
    assert infer_from_frequency(freq.slice(0, 0)) is None
    with pytest.raises(TopologyError, match="not both"):
        resolve_topology(None, freq, topology_file="x.json", pmu_specs=["a=0"])


def test_table_rows_that_disagree_about_a_cpu_are_an_error(tmp_path: Path) -> None:
    topo = from_cli(["armv8_cortex_a53=0-1", "armv8_cortex_a72=2-3"])
    rows = pl.from_arrow(topo.to_table())
    assert isinstance(rows, pl.DataFrame)
    # CPU 1 again, as an A72 with a capacity: the last row must not silently win
    moved = rows.filter(pl.col("cpu") == 1).with_columns(
        pl.lit("armv8_cortex_a72").alias("pmu"), pl.lit(1024).alias("capacity")
    )
    table = pl.concat([rows, moved], how="vertical_relaxed").to_arrow()
    with pytest.raises(TopologyError) as err:
        Topology.from_table(table, where="cap/topology.parquet")
    message = str(err.value)
    assert message.startswith("cap/topology.parquet: rows 1, 4 give CPU 1 different ")
    assert "pmu, capacity" in message and "row 4: pmu=armv8_cortex_a72, capacity=1024" in message
    # a CPU repeated with the same facts is no disagreement
    same = pl.concat([rows, rows.filter(pl.col("cpu") == 1)]).to_arrow()
    assert Topology.from_table(same).pmus == topo.pmus


def test_saved_capture_with_disagreeing_topology_rows_names_the_file(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    assert main(["import", str(CAPTURE), "--topology", str(TOPOLOGY), "-o", str(out)]) == 0
    rows = pl.read_parquet(out / "topology.parquet")
    twice = rows.filter(pl.col("cpu") == 2).with_columns(
        pl.lit("armv8_cortex_a53").cast(rows["pmu"].dtype).alias("pmu")
    )
    pl.concat([rows, twice]).write_parquet(out / "topology.parquet")
    with pytest.raises(TopologyError, match=r"cap/topology.parquet: rows 2, 4 give CPU 2 "):
        Capture.load(out)
    assert main(["replay", str(out)]) == TopologyError.exit_code
