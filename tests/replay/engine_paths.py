"""The engine's two paths on one prepared replay: they must agree exactly."""

from __future__ import annotations

from polars.testing import assert_frame_equal

from replay.compare import scenario_matrix
from replay.engine import replay
from replay.scenarios import Mode, Scenario
from replay.work import Work


def assert_paths_agree(work: Work) -> None:
    """Reference and vectorized paths give identical observations and lost counters under
    every compare scenario and fixed-counters-only+v8."""
    for scenario in [*scenario_matrix(work.host), Scenario(Mode.FIXED_COUNTERS_ONLY, kernel="v8")]:
        ref = replay(work, scenario, "reference")
        vec = replay(work, scenario, "vectorized")
        assert_frame_equal(ref.observations, vec.observations)
        assert ref.lost_counters == vec.lost_counters, scenario.name
