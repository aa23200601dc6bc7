"""The terminal report at 80 columns: every scenario identifiable, nothing cut, one legend."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from replay.cli import main
from replay.commands.console import stdout as console
from replay.commands.short_names import short_names
from tests.conftest import FIXTURES, DemoRun

CAPTURE = str(FIXTURES / "captures" / "cross-cluster-migration.txt")
TOPOLOGY = str(FIXTURES / "topologies" / "two-cluster.json")
LEGEND = "short scenario names in the tables below (--wide prints them whole):"


def legend(text: str) -> dict[str, str]:
    """short name -> scenario, from the legend the report printed."""
    lines = text.splitlines()
    start = lines.index(LEGEND) + 1
    out = {}
    for line in lines[start:]:
        parts = line.split()
        if len(parts) != 2:
            break
        out[parts[0]] = parts[1]
    return out


def table_rows(text: str, title: str) -> list[list[str]]:
    """The cells (split on runs of spaces) of the rows of the table titled ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rule = next(i for i in range(start, len(lines)) if set(lines[i].strip()) == {"─"})
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_demo_fits_80_columns_and_names_every_scenario(demo_at_80_columns: DemoRun) -> None:
    text = demo_at_80_columns.stdout
    scenarios = [
        s["name"]
        for s in json.loads((demo_at_80_columns.results / "replay.json").read_text())["scenarios"]
    ]
    assert [line for line in text.splitlines() if len(line) > 80] == []  # every line
    # the file names are printed whole, so they can be copied
    assert "  pmu-replay view results/demo.perfetto-trace" in text.splitlines()
    assert "…" not in text  # nothing cut: rich's ellipsis would hide what tells rows apart
    assert text.count(LEGEND) == 1
    names = legend(text)
    assert sorted(names.values()) == sorted(scenarios)  # every scenario, once
    assert len(set(names)) == len(names)  # short names tell them apart
    # the tables use the short names, every one of them, and only them
    per_vcpu = table_rows(text, "every KVM vPMU mode on the demo schedule")
    ranking = table_rows(text, "ranking (best first)")
    # (a row's first cell; cells that fold onto more lines leave the scenario on the first)
    assert {r[0] for r in per_vcpu if r[0] in names} == set(names)
    assert_whole_vcpus([r for r in per_vcpu if r[0] in names])
    assert not {r[0] for r in per_vcpu} & set(names.values()) - set(names)
    assert {r[1] for r in ranking if r[0].isdigit()} == set(names)
    episodes = table_rows(text, "longest stall episodes")
    # an episode's first line: scenario, vCPU, start s, ...; the cause folds onto more lines
    firsts = [r for r in episodes if len(r) > 5 and r[2].replace(".", "").isdigit()]
    assert len(firsts) == 5 and all(r[0] in names for r in firsts)


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", CAPTURE, "--topology", TOPOLOGY],
        ["compare", CAPTURE],  # clusters inferred: longer PMU names
        ["replay", CAPTURE, "--topology", TOPOLOGY, "--scenario", "set-pmu:armv8_cortex_a72"],
    ],
)
def test_compare_and_replay_fit_80_columns(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(console, "width", 80)
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert [line for line in text.splitlines() if len(line) > 80] == []
    assert "…" not in text
    # every scenario recognisable in the per-vCPU table: whole, or by the one short name the
    # legend spells out
    meta = json.loads((tmp_path / "out" / "replay.json").read_text())
    scenarios = {s["name"] for s in meta["scenarios"]}
    names = legend(text)
    assert sorted(names.values()) == sorted(scenarios) and len(set(names)) == len(names)
    title = "what-if comparison" if argv[0] == "compare" else "replay of"
    rows = [row for row in table_rows(text, title) if row[0] in names]
    assert {names[row[0]] for row in rows} == scenarios
    assert_whole_vcpus(rows)


#: The first line of a per-vCPU row, cell by cell, none folded (a cell cut in two reads as two):
#: vCPU (an index, or VM/index), guest s, stalled s, risky ticks, fail-entries, counted share,
#: cross-PMU loads, re-created events, unknown s.
WHOLE_CELLS = r"(\S+/)?\d+ \d+\.\d{3} \d+\.\d{3} (\d+/\d+|-) \d+ (\d+\.\d%|-) \d+ \d+ \d+\.\d{3}"


def assert_whole_vcpus(rows: list[list[str]]) -> None:
    """Each row's cells on its first line are whole (:data:`WHOLE_CELLS`)."""
    for row in rows:
        assert re.fullmatch(WHOLE_CELLS, " ".join(row[1:10])), row


def test_wide_keeps_whole_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(console, "width", 80)
    assert main(["compare", CAPTURE, "--topology", TOPOLOGY, "--wide"]) == 0
    text = capsys.readouterr().out
    assert LEGEND not in text
    assert "dflt@0" not in text and "default@cpu0" in text


def test_wide_terminals_keep_today_s_layout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(console, "width", 220)
    assert main(["compare", CAPTURE, "--topology", TOPOLOGY]) == 0
    text = capsys.readouterr().out
    assert LEGEND not in text
    assert "│ set-pmu:armv8_cortex_a53 │" in text


def test_short_names_come_from_the_scenario_s_parts() -> None:
    got = short_names(
        [
            "default@cpu0",
            "default@cpu4",
            "set-pmu:armv8_cortex_a53",
            "set-pmu:armv8_cortex_a72",
            "fixed-counters-only",
            "fixed-counters-only+v8",
            "fixed-counters-only+v8+kernel-overflow-arming",
            "no-pmu",
            "my-own-scenario",
        ]
    )
    assert got == {
        "default@cpu0": "dflt@0",
        "default@cpu4": "dflt@4",
        "set-pmu:armv8_cortex_a53": "set:a53",
        "set-pmu:armv8_cortex_a72": "set:a72",
        "fixed-counters-only": "fixed",
        "fixed-counters-only+v8": "fixed+v8",
        "fixed-counters-only+v8+kernel-overflow-arming": "fixed+v8+koa",
        "no-pmu": "no-pmu",
        "my-own-scenario": "my-own-scenario",  # a shape not known: kept whole
    }
    # PMU names lose what they share (prefix and suffix), keep what tells them apart
    assert short_names(["set-pmu:inferred_cluster0_pmu", "set-pmu:inferred_cluster1_pmu"]) == {
        "set-pmu:inferred_cluster0_pmu": "set:cluster0",
        "set-pmu:inferred_cluster1_pmu": "set:cluster1",
    }
    assert short_names(["set-pmu:cpu_core"]) == {"set-pmu:cpu_core": "set:core"}
    # two scenarios that would get the same short name are numbered
    assert short_names(
        ["fixed-counters-only+kernel-overflow-arming", "fixed-counters-only+koa"]
    ) == {
        "fixed-counters-only+kernel-overflow-arming": "fixed+koa",
        "fixed-counters-only+koa": "fixed+koa~2",
    }
