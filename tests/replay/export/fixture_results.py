"""Replay results of the hand-written fixture captures, for export tests."""

from __future__ import annotations

from functools import cache

from importers.detect import load
from importers.topology import load_topology
from importers.vcpus import discover_vcpus
from replay.compare import scenario_matrix
from replay.engine import prepare, replay
from replay.profiles import PROFILES
from replay.results import Results, assemble
from replay.scenarios import Mode, Scenario
from tests.conftest import FIXTURES

#: capture -> the guest profile its story is about (fixtures/README.md)
CAPTURES = {
    "cross-cluster-migration": "windows",
    "migration-at-overflow": "linux-perf",
    "lost-events-gap": "windows",
    "traced-pmccntr-reads": "windows",
}


@cache
def fixture_results(name: str, profile: str | None = None) -> Results:
    """Every compare scenario (plus fixed-counters-only+v8) on ``fixtures/captures/<name>.txt``.

    Cached: callers must not modify the returned tables.
    """
    cap = load(FIXTURES / "captures" / f"{name}.txt")
    cap.tables["vcpus"] = discover_vcpus(cap)
    topo = load_topology(FIXTURES / "topologies" / "two-cluster.json")
    work = prepare(cap, topo, PROFILES[profile or CAPTURES[name]])
    scenarios = [*scenario_matrix(work.host), Scenario(Mode.FIXED_COUNTERS_ONLY, kernel="v8")]
    source = {"path": str(cap.metadata.source_path), "clock": cap.metadata.clock}
    return assemble(work, [replay(work, s) for s in scenarios], "vectorized", source)
