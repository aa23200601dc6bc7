"""The engine's two paths on one prepared replay: they must agree exactly."""

from __future__ import annotations

from polars.testing import assert_frame_equal

from replay.compare import scenario_matrix
from replay.engine import replay
from replay.scenarios import Mode, Scenario
from replay.work import Work


def assert_paths_agree(work: Work) -> None:
    """Reference and vectorized paths give identical observations, perf-event re-creations and
    lost counters under every compare scenario and the v4 series (fixed-counters-only+v4, and
    default+v4, whose reloads re-create the default PMU's events)."""
    extra = [
        Scenario(Mode.FIXED_COUNTERS_ONLY, kernel="v4"),
        *(Scenario(Mode.DEFAULT, kernel="v4", init_cpu=min(p.cpus)) for p in work.host.registered),
    ]
    for scenario in [*scenario_matrix(work.host), *extra]:
        ref = replay(work, scenario, "reference")
        vec = replay(work, scenario, "vectorized")
        assert_frame_equal(ref.observations, vec.observations)
        assert_frame_equal(ref.recreations, vec.recreations)
        assert ref.lost_counters == vec.lost_counters, scenario.name
        assert ref.supported_cpus == vec.supported_cpus, scenario.name
