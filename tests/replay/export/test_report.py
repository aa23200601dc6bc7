"""The HTML report: self-contained, deterministic, and drawn from whatever replay.json holds.

Rendering in a real browser (nothing fetched, charts drawn, light and dark) is checked in
tests/perfetto/test_report_page.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from html import escape, unescape
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from importers.errors import UsageError
from replay.cli import EXIT_OS_ERROR, main
from replay.export.report import render_report, write_report
from replay.host_report import host_lines
from replay.results import Results
from tests.conftest import FIXTURES, ROOT
from tests.replay.export.fixture_results import fixture_results

NAME = "cross-cluster-migration"
CAPTURE = str(FIXTURES / "captures" / f"{NAME}.txt")
TOPOLOGY = str(FIXTURES / "topologies" / "two-cluster.json")


def _with_meta(results: Results, **changes: Any) -> Results:
    return replace(results, meta={**results.meta, **changes})


def _section(html: str, key: str) -> str:
    found = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
    assert found, f"no {key} section"
    return found.group(1)


def _chart(html: str, key: str) -> str:
    found = re.search(rf'<figure class="chart" data-chart="{key}">(.*?)</figure>', html, re.S)
    assert found, f"no {key} chart"
    return found.group(1)


def _texts(svg: str) -> list[str]:
    """The text a chart shows (matplotlib writes each text element whole: svg.fonttype none)."""
    return [unescape(t).strip() for t in re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)]


@pytest.fixture(scope="module")
def html() -> str:
    """The report of the cross-cluster-migration fixture (rendered once: a render takes ~1 s)."""
    return render_report(fixture_results(NAME))


@pytest.mark.slow
def test_same_results_same_bytes(html: str, tmp_path: Path) -> None:
    assert render_report(fixture_results.__wrapped__(NAME)) == html  # recomputed from the capture
    fixture_results(NAME).save(tmp_path / "res")
    assert render_report(Results.load(tmp_path / "res")) == html  # read back from the directory
    # ...and in another interpreter with another string hash seed
    code = (
        "import sys; from tests.replay.export.fixture_results import fixture_results; "
        "from replay.export.report import write_report; "
        f"write_report(fixture_results({NAME!r}), sys.argv[1])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    out = tmp_path / "other.html"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=ROOT, env=env)
    assert out.read_text(encoding="utf-8") == html


def test_compare_html_equals_report_of_the_results_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    direct, later = tmp_path / "direct.html", tmp_path / "later.html"
    args = ["compare", CAPTURE, "--topology", TOPOLOGY, "-o", str(tmp_path / "res")]
    assert main([*args, "--html", str(direct), "--json"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("{") and f"wrote {direct}" in err  # --json keeps stdout clean
    assert main(["report", str(tmp_path / "res"), "-o", str(later)]) == 0
    assert later.read_bytes() == direct.read_bytes()
    assert main(["report", str(tmp_path / "res")]) == 0  # default: inside the directory
    assert (tmp_path / "res" / "report.html").read_bytes() == direct.read_bytes()
    assert main(["report", str(tmp_path)]) == 3
    assert "not a replay results directory" in capsys.readouterr().err


def test_self_contained(html: str) -> None:
    assert "default-src 'none'" in html  # a browser that honours it fetches nothing
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", html)
    assert not re.search(r"\bsrc=", html)
    # references stay inside the file: clip paths and markers of the SVG charts
    assert set(re.findall(r'(?:href|url)\(?="?([^"#)]{0,8})', html)) <= {""}
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= namespaces


def test_chart_colours_follow_the_page_s_scheme(html: str) -> None:
    svgs = "".join(re.findall(r"<svg\b.*?</svg>", html, re.S))
    # no colour baked into a chart: each is a CSS variable, light or dark by the page's scheme
    assert not re.findall(r"#[0-9a-fA-F]{6}\b", svgs)
    painted = set(re.findall(r"(?:fill|stroke): ([^;\"]+)", svgs)) - {"none"}
    assert painted and all(re.fullmatch(r"var\(--[a-z0-9]+\)", p) for p in painted), painted
    defined = set(re.findall(r"--([a-z0-9]+):", html))
    assert {p[6:-1] for p in painted} <= defined


def test_verdict_falls_back_to_the_recommendation(html: str) -> None:
    results = fixture_results(NAME)
    verdict = _section(html, "verdict")
    text = re.search(r'id="verdict-text">(.*?)</p>', verdict, re.S)
    assert text and unescape(text.group(1)) == results.meta["recommendation"]


def test_verdict_block_when_present() -> None:
    verdict = {
        "status": "inconclusive",
        "scenario": "fixed-counters-only+v8",
        "kernel": "proposed FIXED_COUNTERS_ONLY series v8",
        "mainline_fallback": "set-pmu:armv8_cortex_a53",
        "reasons": ["vCPU 0: 12% of its time unknown <lost events>"],
        "text": "deploy fixed-counters-only+v8 (proposed) & pin on mainline",
    }
    html = render_report(_with_meta(fixture_results(NAME), verdict=verdict))
    section = _section(html, "verdict")
    assert 'class="verdict inconclusive"' in section
    assert unescape(re.search(r'id="verdict-text">(.*?)</p>', section).group(1)) == verdict["text"]  # type: ignore[union-attr]
    for value in ("proposed FIXED_COUNTERS_ONLY series v8", "set-pmu:armv8_cortex_a53"):
        assert value in section
    assert "12% of its time unknown &lt;lost events&gt;" in section  # escaped
    assert fixture_results(NAME).meta["recommendation"] not in unescape(section)


def test_unranked_results_say_so() -> None:
    results = fixture_results(NAME)
    ranked = ("ranking", "ranking_rule", "recommendation", "verdict")
    meta = {k: v for k, v in results.meta.items() if k not in ranked}
    html = render_report(replace(results, meta=meta))
    assert "Not ranked" in _section(html, "verdict")
    assert '<section id="ranking">' not in html


def test_host_from_the_topology_or_the_host_block(html: str) -> None:
    results = fixture_results(NAME)
    host = _section(html, "host")
    for p in results.meta["host"]["pmus"]:
        assert f"<td>{p['name']}</td><td>{p['cpus']}</td><td>{p['core']}</td>" in host
        for source in p["source"].values():
            assert escape(source) in host
    # PMU versions in the Arm ARM's words, as the terminal prints them (PMUv3p1, not 3.1)
    guest = host_lines(results.meta["host"])[0].split(" guest ", 1)[1].split(",")[0]
    assert guest.startswith("PMUv3") and f"KVM offers the guest {guest} with" in host
    assert not re.search(r"<td>\d\.\d</td>|PMUv\d\.", host)
    # results written before the host block: the topology the replay used
    older = {k: v for k, v in results.meta.items() if k != "host"}
    host = _section(render_report(replace(results, meta=older)), "host")
    assert "<td>armv8_cortex_a53</td><td>0-1</td><td>8</td>" in host
    assert "<td>armv8_cortex_a72</td><td>2-3</td><td>9</td>" in host
    why = "CPUs 0-1 implement PMUv3, CPUs 2-3 PMUv3p1 <mixed>"
    block = {**results.meta["host"], "vpmu_offered": False, "why_not": why}
    host = _section(render_report(_with_meta(results, host=block)), "host")
    assert "offers no vPMU" in host and escape(why) in host


def test_cost_columns_show_when_the_results_have_them() -> None:
    results = fixture_results(NAME)
    costs = ("event_recreations", "recreate_cpu_ns", "pinned_capacity_share")
    # results written before these costs existed: their panels and columns stay out
    older = results.summary.drop(costs)
    unranked = [{k: v for k, v in r.items() if k not in costs} for r in results.meta["ranking"]]
    html = render_report(
        replace(results, summary=older, meta={**results.meta, "ranking": unranked})
    )
    shown = _texts(_chart(html, "costs"))
    assert "re-creations" not in shown and "host capacity" not in shown
    assert "re-creations" not in _section(html, "ranking")
    fixed, pinned = (
        pl.col("scenario") == "fixed-counters-only+v8",
        pl.col("scenario") == "set-pmu:armv8_cortex_a72",
    )
    summary = results.summary.with_columns(
        event_recreations=pl.when(fixed).then(7).otherwise(0),
        # a per-VM figure, on each vCPU's row: shown once, not summed
        pinned_capacity_share=pl.when(pinned).then(0.25).otherwise(0.0),
    )
    ranking = [
        {
            **{k: v for k, v in r.items() if k != "verdict"},
            "assessment": f"costs of {r['scenario']}",
            "event_recreations": 14 if r["scenario"] == "fixed-counters-only+v8" else 0,
        }
        for r in results.meta["ranking"]
    ]
    rule = {"prefer": "counters", "keys": ["risky ticks", "stalled time"]}
    meta = {**results.meta, "ranking": ranking, "ranking_rule": rule}
    more = render_report(replace(results, summary=summary, meta=meta))
    table = _section(more, "ranking")
    assert "<th>event re-creations</th>" in table and "<th>what it costs</th>" in table
    assert "costs of set-pmu:armv8_cortex_a53" in table
    assert "ranked by risky ticks, then stalled time" in table
    texts = _texts(_chart(more, "costs"))
    assert "re-creations" in texts and "14" in texts  # 7 on each of the two vCPUs
    assert "host capacity" in texts and "25.0%" in texts and "50.0%" not in texts


def test_ramp_names_every_scenario_once(html: str) -> None:
    results = fixture_results(NAME)
    texts = _texts(_chart(html, "ramp"))
    legend = [t for t in texts if t and not t.replace(".", "").replace("−", "").isdigit()]
    worst = results.summary.sort("stalled_ns", descending=True)["vcpu"][0]
    counting = results.observations.filter(
        (pl.col("vcpu") == worst) & (pl.col("state") == "guest") & (pl.col("counter") == 31)
    )["scenario"].unique()
    shown = [name for label in legend for name in label.split(" = ")]
    for scenario in counting:
        assert shown.count(scenario) == 1, (scenario, legend)  # one line each, none hidden


def test_charts_show_the_clusters_and_one_row_per_stalling_scenario(html: str) -> None:
    results = fixture_results(NAME)
    placement = _texts(_chart(html, "placement"))
    assert "armv8_cortex_a53 (CPUs 0-1)" in placement and "armv8_cortex_a72 (CPUs 2-3)" in placement
    stalling = results.findings.filter(pl.col("kind") == "stall")["scenario"].unique()
    episodes = _chart(html, "episodes")
    assert len(re.findall(r'id="episodes-axes_\d+"', episodes)) == stalling.len()
    titles = [t.split(":")[0] for t in _texts(episodes) if "episodes, median" in t]
    assert sorted(titles) == sorted(stalling.to_list())


def test_names_from_the_input_are_escaped() -> None:
    results = fixture_results(NAME)
    renamed = {
        name: getattr(results, name).with_columns(pl.col("vm").replace("qemu:4000", "vm<b>&"))
        for name in ("observations", "findings", "summary", "pieces")
    }
    escaped = render_report(replace(results, **renamed))
    assert "vm<b>&" not in escaped
    assert "vm&lt;b&gt;&amp;" in escaped


def test_write_errors_are_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(UsageError, match="is a file, not a directory"):
        write_report(fixture_results(NAME), tmp_path / "file" / "r.html")
    # an I/O failure names the output and exits as every other unwritable output does
    fixture_results(NAME).save(tmp_path / "res")
    assert main(["report", str(tmp_path / "res"), "-o", "/proc/r.html"]) == EXIT_OS_ERROR
    assert "/proc/r.html: cannot write it" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.partial"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(UsageError, match="pip install"):
        write_report(fixture_results(NAME), tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_placement_cells_take_the_cluster_with_the_most_time() -> None:
    from replay.export.timeline_charts import _dominant_cells

    # CPU 0-1: cluster 0, CPU 2-3: cluster 1; cells of 10 ns from t = 100
    pieces = pl.DataFrame(
        {
            "tid": [7, 7, 7, 7, 8],
            "cpu": [0, 2, 2, 1, 3],
            "start": [100, 104, 110, 141, 100],
            "end": [104, 110, 135, 150, 130],
            "state": ["guest", "host", "guest", "unknown", "guest"],
        },
        schema_overrides={"cpu": pl.Int16},
    )
    cells = _dominant_cells(pieces, {0: 0, 1: 0, 2: 1, 3: 1}, 2, 100, 10.0)
    got = {(tid, cell): cat for tid, cell, cat in cells.rows()}
    assert got == {
        (7, 0): 1,  # 4 ns on cluster 0, 6 ns on cluster 1 (host time counts: the CPU ran it)
        (7, 1): 1,
        (7, 2): 1,
        (7, 3): 1,  # 5 ns of a piece spanning three cells
        (7, 4): -1,  # unknown time
        (8, 0): 1,
        (8, 1): 1,
        (8, 2): 1,
    }


def test_identical_counter_ramps_share_one_line(html: str) -> None:
    results = fixture_results(NAME)
    worst = results.summary.sort("stalled_ns", descending=True)["vcpu"][0]
    obs = results.observations.filter(
        (pl.col("vcpu") == worst) & (pl.col("state") == "guest") & (pl.col("counter") == 31)
    )
    ends = sorted(set(obs["end"].to_list()))
    # each scenario's counter as a step function, evaluated at every piece end
    steps: dict[tuple[int, ...], set[str]] = {}
    for (scenario,), part in obs.group_by("scenario"):
        counted = tuple(int(part.filter(pl.col("end") <= t)["delta"].sum()) for t in ends)
        steps.setdefault(counted, set()).add(str(scenario))
    labels = [
        t for t in _texts(_chart(html, "ramp")) if any(s in t for s in results.summary["scenario"])
    ]
    assert sorted(sorted(label.split(" = ")) for label in labels) == sorted(
        sorted(group) for group in steps.values()
    )
    assert any(len(group) > 1 for group in steps.values())  # the story has such a pair


def test_cost_chart_shows_each_scenario_s_stall_share(html: str) -> None:
    texts = _texts(_chart(html, "costs"))
    for row in fixture_results(NAME).meta["ranking"]:
        assert f"{row['stalled_share'] * 100:.1f}%" in texts
        assert f"{row['risky_ticks']:,}" in texts
