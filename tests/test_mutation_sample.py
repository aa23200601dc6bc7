"""benchmarks/mutation_sample.py: the fixed-seed sample of a module's mutants and its score's
95 % interval (benchmarks/README.md, "Mutation score")."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

_SPEC = importlib.util.spec_from_file_location(
    "mutation_sample", ROOT / "benchmarks/mutation_sample.py"
)
assert _SPEC is not None and _SPEC.loader is not None
mutation_sample = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(mutation_sample)


@pytest.mark.parametrize(
    ("detected", "n", "low", "high"),
    # Newcombe, "Two-sided confidence intervals for the single proportion", Statistics in
    # Medicine 17 (1998), table I, method 3 (score interval without continuity correction)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
     (1, 29, 0.0061, 0.1718)],
)  # fmt: skip
def test_wilson_interval_matches_the_published_values(
    detected: int, n: int, low: float, high: float
) -> None:
    got = mutation_sample.wilson(detected, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_the_sample_is_the_same_each_time_and_drawn_from_the_names() -> None:
    names = [f"m.x_f__mutmut_{i}" for i in range(1, 301)]
    first = mutation_sample.sample(names, 40)
    assert first == mutation_sample.sample(list(reversed(names)), 40)
    assert len(set(first)) == 40 and set(first) <= set(names) and first == sorted(first)
    assert mutation_sample.sample(names[:10], 40) == sorted(names[:10])


def test_score_counts_each_verdict(tmp_path: Path) -> None:
    codes = {f"replay.t.x_f__mutmut_{i}": code for i, code in enumerate([1, 1, 1, 0, 33, None, 3])}
    meta = tmp_path / "mutants/replay/t.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/mutation_sample.py"), "score", "replay.t", "0",
         "--mutants", str(tmp_path / "mutants")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # exit 1 and 3 are detected (a test failed, pytest failed), 0 survived, 33 reached by no
    # test, None not run: 4 of the 6 run detected
    assert "detected 4, no tests 1, not run 1, survived 1" in out
    low, high = mutation_sample.wilson(4, 6)
    assert f"score 66.7% (95 % interval {low:.1%} - {high:.1%})" in out
