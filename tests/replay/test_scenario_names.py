"""Scenarios are told apart by name in every result table (replay/api.py, replay/results.py).

The detectors run one scenario at a time and their tables are put together in name order;
that must equal one run over every scenario's observations at once, and a scenario named
twice must count once.
"""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from importers.errors import UsageError
from replay.api import what_if
from replay.detectors import findings, tick_table
from replay.pmu import EventFilter, FilterAction
from replay.scenarios import Mode, Scenario
from replay.work import RECREATION_SCHEMA
from tests.replay.export.fixture_results import CAPTURES, fixture_capture, fixture_results

# the fixtures with stalls, failed entries, unknown time, re-creations and risky ticks
STORIES = ["cross-cluster-migration", "lost-events-gap", "pmu-moves", "refused-entries"]


@pytest.mark.parametrize("name", STORIES)
def test_detectors_one_scenario_at_a_time_equal_one_run_over_all(name: str) -> None:
    results = fixture_results(name)
    meta = results.meta
    primary, tick_ns = meta["primary_counter"], meta["profile"]["tick_ns"]
    # the observations in an order no scenario-by-scenario run sees: scenarios reversed
    scenarios = [s["name"] for s in meta["scenarios"]]
    assert scenarios != sorted(scenarios)  # the matrix is not in name order by itself
    reordered = pl.concat(
        results.observations.filter(pl.col("scenario") == s) for s in reversed(scenarios)
    )
    recreations = results.findings.filter(pl.col("kind") == "recreation")
    if name == "pmu-moves":
        assert recreations.height  # this story re-creates perf events
    as_replayed = recreations.rename({"start": "ts"}).select(list(RECREATION_SCHEMA))
    at_once = findings(reordered, primary, as_replayed)
    assert_frame_equal(results.findings, at_once)
    assert_frame_equal(results.ticks, tick_table(reordered, primary, meta["start"], tick_ns))


def test_a_scenario_named_twice_counts_once() -> None:
    cap = fixture_capture("cross-cluster-migration")
    profile = CAPTURES["cross-cluster-migration"]
    once = what_if(cap, ["default@cpu0", "no-pmu"], profile=profile)
    twice = what_if(cap, ["default@cpu0", "no-pmu", "default@cpu0"], profile=profile)
    assert once.findings.filter(pl.col("kind") == "stall").height > 0
    assert once.summary["risky_ticks"].sum() > 0
    for table in ("observations", "findings", "ticks", "summary"):
        assert_frame_equal(getattr(twice, table), getattr(once, table))
    assert [s["name"] for s in twice.meta["scenarios"]] == ["default@cpu0", "no-pmu"]


def test_two_different_scenarios_of_one_name_are_refused() -> None:
    cap = fixture_capture("cross-cluster-migration")
    allow = Scenario(Mode.DEFAULT, event_filters=(EventFilter(0x11, 1, FilterAction.ALLOW),))
    deny = Scenario(Mode.DEFAULT, event_filters=(EventFilter(0x11, 1, FilterAction.DENY),))
    assert allow.name == deny.name
    with pytest.raises(UsageError, match="both named 'default@cpu0\\+filter'"):
        what_if(cap, [allow, deny])
