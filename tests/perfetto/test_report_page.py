"""HTML reports opened from disk in headless Chromium, light and dark: nothing fetched, every
chart drawn, the verdict as replay.json says; screenshots of the demo's report are kept in
benchmarks/out/ (not committed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from replay.export.report import write_report
from replay.results import Results
from tests.conftest import ROOT, DemoRun
from tests.perfetto.conftest import CHROMIUM, HERE, browser_missing
from tests.replay.export.fixture_results import CAPTURES, fixture_results

SCREENSHOTS = ROOT / "benchmarks" / "out"
CHARTS = {"costs", "episodes", "placement", "ramp"}


@pytest.fixture(scope="module")
def pages(
    demo_at_80_columns: DemoRun, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Report name -> (its replay.json, what Chromium showed), for the demo and the fixtures."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("reports")
    reports = {"demo": (demo_at_80_columns.results / "report.html", demo_at_80_columns.results)}
    for name in sorted(CAPTURES):
        results = tmp / name
        fixture_results(name).save(results)
        write_report(Results.load(results), tmp / f"{name}.html")
        reports[name] = (tmp / f"{name}.html", results)
    done = subprocess.run(
        ["node", str(HERE / "report_page.js"), str(tmp), *(str(p) for p, _ in reports.values())],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(done.stdout)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        shutil.copyfile(tmp / f"report-{scheme}.png", SCREENSHOTS / f"report-demo-{scheme}.png")
    return {
        name: (json.loads((results / "replay.json").read_text()), shown[str(html)])
        for name, (html, results) in reports.items()
    }


NAMES = ["demo", *sorted(CAPTURES)]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_nothing_leaves_the_file(
    pages: dict[str, tuple[dict[str, Any], dict[str, Any]]], name: str
) -> None:
    _, shown = pages[name]
    own = {r for r in shown["requests"] if r.startswith("file://") and r.endswith(".html")}
    assert len(own) == 1, shown["requests"]
    assert set(shown["requests"]) == own  # the page itself, and nothing else
    assert shown["blocked"] == []  # nor anything the page's policy had to stop


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_chart_has_drawn(
    pages: dict[str, tuple[dict[str, Any], dict[str, Any]]], name: str
) -> None:
    _, shown = pages[name]
    for scheme in ("light", "dark"):
        charts = shown["schemes"][scheme]["charts"]
        # every fixture and the demo have stall episodes, so every chart is there
        assert {c["key"] for c in charts} == CHARTS
        for chart in charts:
            assert chart["width"] > 500 and chart["height"] > 100, chart
            assert chart["axes"] >= 1 and chart["marks"] > 20, chart
            assert any(t.strip() for t in chart["ticks"]), chart  # labelled axes


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_the_verdict_is_replay_json_s(
    pages: dict[str, tuple[dict[str, Any], dict[str, Any]]], name: str
) -> None:
    meta, shown = pages[name]
    verdict = meta.get("verdict")
    want = verdict["text"] if isinstance(verdict, dict) else meta["recommendation"]
    for scheme in ("light", "dark"):
        assert shown["schemes"][scheme]["verdict"] == want


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_light_and_dark_schemes(
    pages: dict[str, tuple[dict[str, Any], dict[str, Any]]], name: str
) -> None:
    _, shown = pages[name]
    light, dark = shown["schemes"]["light"]["colours"], shown["schemes"]["dark"]["colours"]
    assert light["background"] != dark["background"] and light["text"] != dark["text"]
    # the charts' text follows the page's scheme, not a colour baked into the SVG
    assert light["tick"] == light["text"] and dark["tick"] == dark["text"]


@pytest.mark.slow
def test_demo_screenshots_are_kept(pages: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> None:
    for scheme in ("light", "dark"):
        png = (SCREENSHOTS / f"report-demo-{scheme}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width == 1200 and height > 2000  # the whole page, every section
