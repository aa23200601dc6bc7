"""The verdict an operator or a KVM reviewer acts on (issue 13): guest-aware ranking, the kernel
it assumes, how sure it is, machine-readable."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest

from importers.detect import load
from replay.api import open_capture, what_if
from replay.cli import main
from replay.compare import ranking_rule
from tests.conftest import FIXTURES
from tests.replay.export.fixture_results import CAPTURES, TOPOLOGY, fixture_capture

PROPOSED_V8 = "proposed (series revision v8), not in a released kernel"
VERDICT_KEYS = {"status", "scenario", "kernel", "mainline_fallback", "reasons", "text"}
JUNO = "juno-sched-load"
JUNO_VCPUS = ("2928=vm0:0", "3106=vm0:1", "3104=vm1:0")


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_linux_perf_guest_is_never_told_to_lose_its_instructions_counter(name: str) -> None:
    results = what_if(fixture_capture(name), profile="linux-perf")
    assert results.ranking is not None and results.verdict is not None
    table = results.ranking.table
    losing = table.filter(pl.col("lost_counters").str.contains("instructions"))
    # FIXED_COUNTERS_ONLY has no event counter, no-pmu no counter at all
    assert set(losing["scenario"]) == {"fixed-counters-only+v8", "no-pmu"}
    assert losing["rank"].min() > table.filter(pl.col("lost_counters") == "")["rank"].max()
    best = table.row(0, named=True)
    assert results.verdict.scenario == best["scenario"] and best["lost_counters"] == ""
    assert "instructions" not in results.verdict.text.split(".")[0]


@pytest.mark.parametrize("name", ["cross-cluster-migration", "pmu-moves", "traced-pmccntr-reads"])
def test_windows_guest_gets_the_proposed_mode_with_a_released_fallback(name: str) -> None:
    results = what_if(fixture_capture(name))
    assert results.ranking is not None and results.verdict is not None
    table = results.ranking.table
    fixed = table.filter(pl.col("scenario") == "fixed-counters-only+v8").row(0, named=True)
    assert fixed["stalled_ns"] == 0 and fixed["risky_ticks"] == 0 and fixed["fail_entries"] == 0
    verdict = results.verdict
    assert verdict.scenario == "fixed-counters-only+v8" and verdict.kernel == PROPOSED_V8
    mainline = table.filter(~pl.col("proposed"))
    assert verdict.mainline_fallback == mainline["scenario"][0]
    assert f"fixed-counters-only+v8, {PROPOSED_V8}" in verdict.text
    assert f"Best on a released kernel: {verdict.mainline_fallback}:" in verdict.text
    assert results.meta["recommendation"] == verdict.text
    assert set(results.meta["verdict"]) == VERDICT_KEYS


def test_a_mainline_winner_is_its_own_fallback() -> None:
    # no-pmu takes away the cycle counter the windows guest programs: default@cpu0 wins
    results = what_if(fixture_capture("cross-cluster-migration"), ["default@cpu0", "no-pmu"])
    assert results.verdict is not None
    assert results.verdict.kernel == "mainline"
    assert results.verdict.mainline_fallback == results.verdict.scenario


def test_prefer_capacity_ranks_pinning_before_stalls() -> None:
    cap = fixture_capture("pmu-moves")
    scenarios = ["default@cpu0", "set-pmu:armv8_cortex_a72", "no-pmu"]

    def order(prefer: str) -> list[str]:
        ranking = what_if(cap, scenarios, prefer=prefer).ranking  # type: ignore[arg-type]
        assert ranking is not None
        return ranking.table["scenario"].to_list()

    # default@cpu0 stalls 7.98 ms; set-pmu:a72 takes CPUs 0-1 (32% of capacity); no-pmu loses
    # the cycle counter the windows guest programs, so it is last either way
    assert order("counters") == ["set-pmu:armv8_cortex_a72", "default@cpu0", "no-pmu"]
    assert order("capacity") == ["default@cpu0", "set-pmu:armv8_cortex_a72", "no-pmu"]
    assert ranking_rule("capacity")[:3] == [
        "keeps every counter the guest programs",
        "less host capacity taken by pinning",
        "less guest time on the CPUs pinning forbids",
    ]


def test_a_guest_that_programs_nothing_loses_nothing_without_a_vpmu() -> None:
    results = what_if(fixture_capture("pmu-moves"), ["no-pmu", "default@cpu0"], profile="idle-pmu")
    assert results.summary["lost_counters"].to_list() == ["", ""]


def test_explain_prints_the_rule_and_json_carries_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = str(FIXTURES / "captures" / "pmu-moves.txt")
    assert main(["compare", capture, "--topology", str(TOPOLOGY), "--explain"]) == 0
    text = capsys.readouterr().out
    assert "ranking rule" in text
    for i, key in enumerate(ranking_rule(), 1):
        assert f"{i}. {key}" in text
    assert "verdict: conclusive" in text and "recommendation: deploy fixed-counters-only+v8" in text
    args = ["compare", capture, "--topology", str(TOPOLOGY), "--json", "-o", str(tmp_path)]
    assert main([*args, "--prefer", "capacity", "--recreate-cost-us", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["verdict"]) == VERDICT_KEYS and out["recommendation"] == out["verdict"]["text"]
    assert out["ranking_rule"]["prefer"] == "capacity"
    saved = json.loads((tmp_path / "replay.json").read_text())
    assert saved["verdict"] == out["verdict"]
    assert saved["costs"]["recreate_cost_us"] == 50
    fixed = next(r for r in out["ranking"] if r["scenario"] == "fixed-counters-only+v8")
    assert (fixed["event_recreations"], fixed["recreate_cpu_ns"]) == (2, 100_000)


def test_a_vcpu_without_a_row_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    cap = open_capture(
        FIXTURES / "captures" / "pmu-moves.txt",
        topology=TOPOLOGY,
        vcpus=["4001=vm:0", "4999=vm:1"],
    )
    results = what_if(cap, ["default@cpu0"])
    assert results.summary["vcpu"].unique().to_list() == [4001]
    assert results.meta["vcpus_without_rows"] == [
        {
            "vm": "vm",
            "vcpu": 4999,
            "vcpu_index": 1,
            "reason": "its thread never ran in the capture (no sched_switch or kvm event of it)",
        }
    ]
    assert results.verdict is not None
    assert any("vCPU vm/1 (thread 4999) has no row" in r for r in results.verdict.reasons)
    capture = str(FIXTURES / "captures" / "pmu-moves.txt")
    args = [capture, "--topology", str(TOPOLOGY), "--vcpu", "4001=vm:0", "--vcpu", "4999=vm:1"]
    assert main(["replay", *args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vcpus_without_rows"] == results.meta["vcpus_without_rows"]
    assert main(["replay", *args]) == 0
    assert "note: vCPU vm/1 (thread 4999) has no row: its thread never ran" in (
        capsys.readouterr().out
    )


@pytest.mark.slow
def test_truncated_trace_dat_is_inconclusive_and_says_why(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = shared_traces / JUNO / "trace.dat"
    cut = tmp_path / "trace.dat"
    with open(cut, "wb") as out:
        subprocess.run(["head", "-c", "3300000", str(whole)], stdout=out, check=True)
    # the CPUs whose records the cut removes, counted from the whole file
    counts = [load(path).frame("sched_switch").group_by("cpu").len() for path in (whole, cut)]
    short = (
        counts[0]
        .join(counts[1], on="cpu", how="left")
        .filter(pl.col("len_right").fill_null(0) < pl.col("len"))
    )
    truncated = set(short["cpu"].to_list())
    assert truncated and truncated <= {2, 3, 4, 5}
    args = ["--topology", str(shared_traces / JUNO / "plat_info.yml")]
    args += [a for v in JUNO_VCPUS for a in ("--vcpu", v)]
    assert main(["compare", str(cut), *args, "-o", str(tmp_path / "out"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    unknown = pl.read_parquet(tmp_path / "out" / "findings.parquet").filter(
        pl.col("kind") == "unknown"
    )
    on_truncated = unknown.filter(pl.col("cpu").is_in(sorted(truncated)))
    assert on_truncated["duration"].sum() > 0
    assert on_truncated["cause"].str.contains("truncated").all()
    summary = pl.read_parquet(tmp_path / "out" / "summary.parquet")
    assert (summary["unknown_ns"] > 0).all()
    verdict = out["verdict"]
    assert verdict["status"] == "inconclusive" and verdict["text"].startswith("inconclusive")
    assert any("truncated capture" in r for r in verdict["reasons"])
    assert main(["compare", str(cut), *args, "--json", "--max-unknown", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"]["status"] == "inconclusive"
    assert main(["compare", str(cut), *args, "--json", "--max-unknown", "100"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"]["status"] == "conclusive"
    # the whole file: nothing unknown, nothing skipped
    assert main(["compare", str(whole), *args, "--json", "--max-unknown", "0"]) == 0
    whole_verdict = json.loads(capsys.readouterr().out)["verdict"]
    assert whole_verdict["status"] == "conclusive" and whole_verdict["reasons"] == []
