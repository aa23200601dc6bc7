"""A replay that lets each scenario's observations go (``what_if(keep_observations=False)``:
compare and replay without output files, fleet members) makes every other table the same, and
refuses to save or export what it no longer has."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from importers.errors import UsageError
from replay.api import prepare_replay, what_if
from replay.compare import scenario_matrix
from replay.engine import Path_
from replay.export.perfetto import write_perfetto
from replay.export.report import render_report
from replay.pmu_reads import read_checks
from replay.refused import UNSEEN_GUEST
from replay.scenarios import Mode, Scenario
from replay.work import ScenarioResult, Work
from tests.replay.export.fixture_results import CAPTURES, fixture_capture

#: each fixture and what it makes of the observations besides the detectors' tables
EXERCISED = {
    "traced-pmccntr-reads": "reads",
    "refused-entries": "let_in",
    "cross-cluster-migration": "findings",
}


@pytest.mark.parametrize("name", list(EXERCISED))
def test_every_table_but_the_observations_is_the_same(name: str, tmp_path: Path) -> None:
    cap = fixture_capture(name)
    work = prepare_replay(cap, CAPTURES[name])
    # v4 as well: the scenario that lets in entries the capture's kernel refused
    scenarios = [*scenario_matrix(work.host), Scenario(Mode.FIXED_COUNTERS_ONLY, kernel="v4")]
    kept = what_if(cap, scenarios, work=work)
    let_go = what_if(cap, scenarios, work=work, keep_observations=False)

    exercised = EXERCISED[name]
    if exercised == "reads":
        assert kept.reads.height > 0
    elif exercised == "let_in":  # its off-CPU time goes into the costs (replay.costs)
        assert kept.observations.filter(pl.col("reason") == UNSEEN_GUEST).height > 0
    else:
        assert kept.findings.height > 0
    assert kept.observations.height > 0 and kept.observations_kept
    assert let_go.observations.is_empty() and not let_go.observations_kept
    assert let_go.observations.schema == kept.observations.schema
    # each scenario's read checks put together are those of one call on all observations
    assert_frame_equal(kept.reads, read_checks(kept.observations, work.accesses))
    for table in ("findings", "ticks", "reads", "summary", "pieces", "frequency"):
        assert_frame_equal(getattr(let_go, table), getattr(kept, table))
    assert let_go.meta == kept.meta
    assert let_go.verdict == kept.verdict

    with pytest.raises(UsageError, match="let them go"):
        let_go.save(tmp_path / "results")
    assert not (tmp_path / "results").exists()
    with pytest.raises(UsageError, match="Perfetto trace"):
        write_perfetto(let_go, tmp_path / "trace.perfetto-trace")
    assert not (tmp_path / "trace.perfetto-trace").exists()
    with pytest.raises(UsageError, match="HTML report"):
        render_report(let_go)


def test_a_failing_detection_or_replay_surfaces_from_what_if(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The detectors run on threads beside the replays (replay.results.Detections): an error
    in either comes out of what_if as itself, after the threads are done."""
    import replay.api
    import replay.results

    cap = fixture_capture("cross-cluster-migration")
    work = prepare_replay(cap, CAPTURES["cross-cluster-migration"])
    scenarios = scenario_matrix(work.host)
    detect, replay_one = replay.results.detect, replay.api.replay

    def failing_detect(w: object, result: ScenarioResult) -> object:
        if result.scenario == scenarios[1]:
            raise RuntimeError("detector failed")
        return detect(w, result)  # type: ignore[arg-type]

    monkeypatch.setattr(replay.results, "detect", failing_detect)
    with pytest.raises(RuntimeError, match="detector failed"):
        what_if(cap, scenarios, work=work)
    monkeypatch.setattr(replay.results, "detect", detect)

    def failing_replay(w: Work, scenario: Scenario, path: Path_ = "vectorized") -> ScenarioResult:
        if scenario == scenarios[-1]:
            raise RuntimeError("replay failed")
        return replay_one(w, scenario, path)

    monkeypatch.setattr(replay.api, "replay", failing_replay)
    with pytest.raises(RuntimeError, match="replay failed"):
        what_if(cap, scenarios, work=work)
    assert not [t for t in threading.enumerate() if t.name.startswith("detect")]
