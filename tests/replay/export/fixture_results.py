"""Replay results of the hand-written fixture captures, for export and golden tests."""

from __future__ import annotations

from functools import cache

from importers.capture import Capture
from replay.api import open_capture, prepare_replay, what_if
from replay.compare import scenario_matrix
from replay.results import Results
from replay.scenarios import Mode, Scenario
from tests.conftest import FIXTURES

#: capture -> the guest profile its story is about (fixtures/README.md)
CAPTURES = {
    "cross-cluster-migration": "windows",
    "migration-at-overflow": "linux-perf",
    "lost-events-gap": "windows",
    "traced-pmccntr-reads": "windows",
    "pmu-moves": "windows",
    "refused-entries": "windows",
}
#: the host every fixture capture is replayed on
TOPOLOGY = FIXTURES / "topologies" / "two-cluster.json"


def fixture_capture(name: str) -> Capture:
    """``fixtures/captures/<name>.txt`` on the two-cluster host."""
    return open_capture(FIXTURES / "captures" / f"{name}.txt", topology=TOPOLOGY)


@cache
def fixture_results(name: str, profile: str | None = None) -> Results:
    """Every compare scenario (plus fixed-counters-only+v4) on ``fixtures/captures/<name>.txt``.

    Cached: callers must not modify the returned tables.
    """
    cap = fixture_capture(name)
    work = prepare_replay(cap, profile or CAPTURES[name])
    scenarios = [*scenario_matrix(work.host), Scenario(Mode.FIXED_COUNTERS_ONLY, kernel="v4")]
    return what_if(cap, scenarios, work=work)
