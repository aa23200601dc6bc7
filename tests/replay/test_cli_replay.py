"""`pmu-replay replay` and `pmu-replay compare` end to end through main()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from replay.cli import build_parser, main
from replay.commands.session import load_work
from replay.results import Results
from tests.conftest import FIXTURES

CAPTURE = str(FIXTURES / "captures" / "cross-cluster-migration.txt")
TOPOLOGY = str(FIXTURES / "topologies" / "two-cluster.json")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_replay_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(
        capsys, "replay", CAPTURE, "--topology", TOPOLOGY, "--scenario", "default@cpu0", "--json"
    )
    rows = {r["vcpu"]: r for r in out["summary"]}  # type: ignore[union-attr]
    assert rows[4001]["stalled_ns"] == 49_980_000 and rows[4001]["risky_ticks"] == 3
    assert rows[4002]["stalled_ns"] == 0


def test_replay_paths_give_the_same_summary(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "replay",
        CAPTURE,
        "--topology",
        TOPOLOGY,
        "--scenario",
        "default@cpu2",
        "--scenario",
        "set-pmu:armv8_cortex_a53",
        "--json",
    ]
    fast = run_json(capsys, *args)
    slow = run_json(capsys, *args, "--path", "reference")
    assert fast == slow


def test_compare_writes_results_and_recommends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_json(
        capsys, "compare", CAPTURE, "--topology", TOPOLOGY, "-o", str(tmp_path), "--json"
    )
    ranking = out["ranking"]
    assert ranking[0]["scenario"] == "fixed-counters-only+v8"  # type: ignore[index]
    assert str(out["recommendation"]).startswith("deploy fixed-counters-only")
    results = Results.load(tmp_path)
    assert set(results.summary["scenario"].unique()) == {
        "default@cpu0",
        "default@cpu2",
        "set-pmu:armv8_cortex_a53",
        "set-pmu:armv8_cortex_a72",
        "fixed-counters-only+v8",
        "no-pmu",
    }
    assert results.meta["recommendation"] == out["recommendation"]
    assert [r["rank"] for r in ranking] == list(range(1, 7))  # type: ignore[index]
    want = ranked_by_current_rule(results.summary, results.meta["scenarios"])
    assert [r["scenario"] for r in ranking] == want  # type: ignore[index]


def ranked_by_current_rule(summary: pl.DataFrame, scenarios: list[dict[str, Any]]) -> list[str]:
    """Scenarios best first by the rule of replay/compare.py's docstring, from the summary: a
    counter the guest programs taken away, then traced zero-delta reads, risky ticks, stalled
    time, host capacity pinned off, guest time where pinning forbids entry, re-creation CPU
    time, a released kernel before the series (v8 before v4), name."""
    preference = {"mainline": 0, "v8": 1, "v4": 2}
    kernel = {s["name"]: preference[s["kernel"]] for s in scenarios}
    per = summary.group_by("scenario").agg(
        (pl.col("lost_counters").str.len_chars().max() > 0).alias("loses"),
        pl.col("zero_delta_reads").fill_null(0).sum(),
        pl.col("risky_ticks").fill_null(0).sum(),
        pl.col("stalled_ns").sum(),
        pl.col("pinned_capacity_share").max(),
        pl.col("fail_entry_ns").sum(),
        pl.col("recreate_cpu_ns").sum(),
    )
    return [row[0] for row in sorted(per.rows(), key=lambda r: (*r[1:], kernel[r[0]], r[0]))]


def test_compare_table_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", CAPTURE, "--topology", TOPOLOGY]) == 0
    text = capsys.readouterr().out
    assert "ranking (best first)" in text and "recommendation: deploy fixed-counters-only" in text
    assert "longest stall episodes" in text


def test_missing_inputs_say_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "t.txt"
    plain.write_text(
        "  sh-5 [001] 1.000001: sched_switch: prev_comm=sh prev_pid=5 prev_prio=120 prev_state=S ==> next_comm=a next_pid=6 next_prio=120\n"
    )
    assert main(["replay", str(plain)]) == 6
    assert "--topology FILE" in capsys.readouterr().err
    assert main(["replay", str(plain), "--pmu", "a=0-1"]) == 4
    assert "--vcpu TID=VM:INDEX" in capsys.readouterr().err
    assert main(["replay", CAPTURE, "--topology", TOPOLOGY, "--scenario", "turbo"]) == 2
    assert "default[@cpuN]" in capsys.readouterr().err


def test_inferred_topology_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "replay", CAPTURE, "--scenario", "default@cpu0", "--json")
    assert any("inferred from cpu_frequency" in n for n in out["notes"])  # type: ignore[union-attr]


def test_topology_that_misses_a_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", CAPTURE, "--pmu", "a53=0-1"]) == 6
    assert "CPUs [2, 3]" in capsys.readouterr().err


def test_profile_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "p.json"
    profile.write_text(
        json.dumps(
            {"name": "inst", "counters": [{"idx": 0, "event": "0x08"}], "rates": {"0x08": 2.0}}
        )
    )
    out = run_json(
        capsys,
        "replay",
        CAPTURE,
        "--topology",
        TOPOLOGY,
        "--scenario",
        "fixed-counters-only",
        "--profile",
        str(profile),
        "--json",
    )
    assert {r["lost_counters"] for r in out["summary"]} == {"counter0"}  # type: ignore[union-attr]
    bad = tmp_path / "bad.json"
    bad.write_text('{"counters": [{"idx": 40, "event": 8}]}')
    assert main(["replay", CAPTURE, "--topology", TOPOLOGY, "--profile", str(bad)]) == 2
    assert "outside 0..31" in capsys.readouterr().err


def test_load_work_hands_back_the_capture_without_its_tables() -> None:
    """What the commands read of the capture after prepare is its metadata: the tables,
    whose contents are in the work, are not kept through the replays' peak."""
    args = build_parser(["compare"]).parse_args(["compare", CAPTURE, "--topology", TOPOLOGY])
    capture, work = load_work(args)
    assert capture.tables == {}
    assert capture.metadata.source_path.endswith("cross-cluster-migration.txt")
    assert work.pieces.height > 0
