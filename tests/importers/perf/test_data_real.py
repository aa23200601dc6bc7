"""perf.data facts of the shared captures that ``perf script`` does not print: PMUs, topology,
per-CPU samples, header features, and the simpleperf dialect that Linux perf rejects."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import polars as pl

from importers.capture import Capture
from importers.detect import load
from importers.host.topology import Topology

QUIPPER = "quipper-perfdata"


@cache
def imported(path: str) -> Capture:
    return load(Path(path))


def test_hybrid_topology_gives_two_core_pmus_with_their_cpus(shared_traces: Path) -> None:
    cap = imported(str(shared_traces / QUIPPER / "perf.data.hybrid_topology"))
    topo = Topology.from_table(cap.table("topology"))
    assert [(p.name, sorted(p.cpus), p.perf_type) for p in topo.pmus] == [
        ("cpu_core", [0, 1, 2, 3], 4),
        ("cpu_atom", list(range(4, 12)), 7),
    ]
    assert topo.source == "perf.data HYBRID_TOPOLOGY"
    extra = cap.metadata.extra
    assert extra["pmu_caps"]["cpu_atom"] == {
        "branches": "32",
        "max_precise": "3",
        "pmu_name": "alderlake_hybrid",
    }
    # generic cycles expanded per core PMU: the PMU comes from config >> 32 (formats.md §4.6)
    assert [(a["name"], a["pmu"]) for a in extra["attrs"]] == [
        ("cpu_core/cycles:ppp/", "cpu_core"),
        ("cpu_atom/cycles:ppp/", "cpu_atom"),
        ("dummy:HG", "software"),
    ]
    samples = cap.frame("pmu_samples")
    assert samples.height == 7
    assert samples["pmu"].cast(pl.Utf8).to_list() == ["cpu_core"] * 7
    assert samples["cpu"].null_count() == 7  # sample_type has no CPU
    assert cap.metadata.cpu_count == 12


def test_armv7_has_per_cpu_samples_of_six_hardware_events(shared_traces: Path) -> None:
    cap = imported(str(shared_traces / QUIPPER / "perf.data.armv7-3.4"))
    samples = cap.frame("pmu_samples")
    per_event = Counter(samples["event"].cast(pl.Utf8).to_list())
    # perf report -D "stats" per event of this file
    assert per_event == {
        "cycles": 669,
        "instructions": 644,
        "cache-references": 633,
        "cache-misses": 613,
        "branches": 640,
        "branch-misses": 694,
    }
    per_cpu = samples.group_by("event", "cpu").len()
    assert per_cpu.height == 12  # each of the six events sampled on both CPUs
    assert set(samples["cpu"].to_list()) == {0, 1}
    # perf 3.4 wrote no PMU_MAPPINGS: the host PMU is unknown, not guessed
    assert samples["pmu"].null_count() == samples.height
    first = samples.row(0, named=True)
    assert (first["ts"], first["pid"], first["cpu"], first["ip"], first["period"]) == (
        89502343177,
        9622,
        0,
        0x769EAA68,
        1426884,
    )
    assert first["event"] == "instructions" and first["attr_id"] == 3


def test_context_switch_records_without_cpu(shared_traces: Path) -> None:
    cap = imported(str(shared_traces / QUIPPER / "perf.data.ctx_switch_namespaces-4.14"))
    sw = cap.frame("perf_switches")
    assert sw.select("out", "preempt", "pid", "tid").rows() == [
        (True, False, 5969, 5969),
        (False, False, 5969, 5969),
    ]
    assert sw["cpu"].null_count() == 2  # sample_type lacks CPU: unknown, not invented
    assert cap.metadata.extra["records"]["NAMESPACES"] == 1
    topo = Topology.from_table(cap.table("topology"))
    assert topo.describe() == "cpu=0-3"  # the host's single core PMU over its 4 CPUs


def test_group_desc_and_comm_exec(shared_traces: Path) -> None:
    cap = imported(str(shared_traces / QUIPPER / "perf.data.group_desc-4.14"))
    assert cap.metadata.extra["groups"] == [{"name": "{anon_group}", "leader": 0, "members": 2}]
    events = cap.frame("perf_task_events")
    assert ("exec", "echo") in events.select(
        pl.col("kind").cast(pl.Utf8), pl.col("comm").cast(pl.Utf8)
    ).rows()
    tasks = cap.frame("tasks")
    assert "echo" in tasks.filter(pl.col("pid") == 6447)["comm"].cast(pl.Utf8).to_list()


def test_simpleperf_dialect_with_embedded_tracing_data(shared_traces: Path) -> None:
    cap = imported(str(shared_traces / "simpleperf-android" / "perf_with_tracepoint_event.data"))
    extra = cap.metadata.extra
    assert extra["dialect"] == "simpleperf"
    assert extra["tracing_data"]["formats"] == 1
    assert extra["records"]["SAMPLE"] == 45
    switch = cap.frame("sched_switch")
    samples = cap.frame("pmu_samples")
    assert switch.height == 31 and samples.height == 14
    assert set(samples["event"].cast(pl.Utf8)) == {"cpu-cycles"}  # simpleperf event_type_info
    # the task that logs sched_switch is the one switched out
    assert (switch["common_pid"] == switch["prev_pid"]).all()
    assert switch["prev_comm"].cast(pl.Utf8).to_list()[0] == "sleep"
    assert set(switch["cpu"].to_list()) <= set(range(8))
    order = pl.concat([switch.select("seq", "ts"), samples.select("seq", "ts")]).sort("seq")
    assert order["ts"].is_sorted()  # no FINISHED_ROUND: one flush, by time
    assert cap.metadata.skipped == {}
