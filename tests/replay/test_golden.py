"""Golden tests: hand-written captures + scenario matrix -> expected findings and summary.

The captures in fixtures/captures/ tell small stories (fixtures/README.md); their expected
findings and per-vCPU summaries under fixtures/golden/ were checked by hand against those
stories. They change only with ``pytest --update-golden``, and such a change must be reviewed.
"""

from __future__ import annotations

import polars as pl
import pytest

from replay.api import prepare_replay, what_if
from replay.engine import replay
from replay.scenarios import Mode, Scenario
from tests.conftest import FIXTURES
from tests.replay.engine_paths import assert_paths_agree
from tests.replay.export.fixture_results import CAPTURES, fixture_capture, fixture_results


def _csv(frame: pl.DataFrame) -> str:
    return frame.write_csv(float_precision=6)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_golden_findings_and_summary(name: str, update_golden: bool) -> None:
    results = fixture_results(name)
    golden = FIXTURES / "golden" / name
    outputs = {"findings.csv": _csv(results.findings), "summary.csv": _csv(results.summary)}
    if update_golden:
        golden.mkdir(parents=True, exist_ok=True)
        for file, text in outputs.items():
            (golden / file).write_text(text)
    for file, text in outputs.items():
        assert text == (golden / file).read_text(), f"{name}/{file} differs (see --update-golden)"


def test_event_counter_wraps_at_2_32_and_freezes_after_the_migration() -> None:
    work = prepare_replay(fixture_capture("migration-at-overflow"), "linux-perf")
    for path in ("reference", "vectorized"):
        obs = replay(work, Scenario(Mode.DEFAULT, init_cpu=2), path).observations
        instructions = obs.filter(pl.col("counter") == 0).sort("start")
        # 2^32 + 704 instructions on the big core: PMEVCNTR0 (32-bit, PMUv3p1) wraps to 704...
        assert instructions["delta"].to_list() == [(1 << 32) + 704 - (1 << 32), 0]
        assert instructions["value"].to_list() == [704, 704]  # ...and stays there on CPU 0
        assert instructions["counting"].to_list() == [True, False]
        cycles = obs.filter(pl.col("counter") == 31).sort("start")
        assert cycles["value"].to_list() == [(1 << 32) + 704] * 2  # PMCCNTR is 64-bit


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_fixture_paths_agree(name: str) -> None:
    cap = fixture_capture(name)
    for profile in ("windows", "linux-perf"):
        assert_paths_agree(prepare_replay(cap, profile))


def test_traced_pmccntr_reads_are_checked_for_zero_deltas() -> None:
    cap = fixture_capture("traced-pmccntr-reads")
    work = prepare_replay(cap, "windows")
    assert any("5 guest PMU register accesses traced" in n for n in work.notes)
    scenarios = [
        Scenario(Mode.DEFAULT, init_cpu=0),
        Scenario(Mode.DEFAULT, init_cpu=2),
        Scenario(Mode.FIXED_COUNTERS_ONLY),
    ]
    results = what_if(cap, scenarios, work=work)
    zero = {
        name: part.filter(pl.col("zero_delta"))["ts"].to_list()
        for (name,), part in results.reads.group_by("scenario")
    }
    t = 1_000_000_000
    # the reads after the guest ran only on the big cluster see PMCCNTR frozen under default@cpu0
    assert zero["default@cpu0"] == [t + 17_001_000, t + 22_001_000]
    assert zero["default@cpu2"] == [t + 10_001_000, t + 30_001_000]
    assert zero["fixed-counters-only+v8"] == []
    summary = (
        results.summary.select("scenario", "pmccntr_reads", "zero_delta_reads")
        .sort("scenario")
        .rows()
    )
    assert summary == [
        ("default@cpu0", 4, 2),
        ("default@cpu2", 4, 2),
        ("fixed-counters-only+v8", 4, 0),
    ]
