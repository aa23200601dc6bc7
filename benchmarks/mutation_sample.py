"""A fixed-seed sample of one module's mutants, and the sample's score with its 95 % interval.

Some modules have more mutants than mutmut runs here in 30 minutes (benchmarks/README.md,
"Mutation score"); their score is measured on a random sample, the same one every time::

    python benchmarks/mutation_sample.py names replay.timeline 400 > /tmp/sample.txt
    nice -n 19 mutmut run --max-children 2 $(cat /tmp/sample.txt)
    python benchmarks/mutation_sample.py score replay.timeline 400

Mutants are read from mutmut's ``mutants/**/*.py.meta`` (written by any ``mutmut run``), sorted
by name, then drawn with ``random.Random(SEED)``. The interval is Wilson's score interval, which
stays inside [0, 1] for scores near 100 %.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import Counter
from pathlib import Path

SEED = 20
# mutmut's exit codes (mutmut/stats.py, status_by_exit_code): a test failed, pytest itself
# failed, or the CPU/wall limit fired
DETECTED = {1, 3, 24, -24, 152, 255, 36}
SURVIVED = {0}
NO_TESTS = {5, 33}


def module_results(module: str, root: Path) -> dict[str, int | None]:
    """Every mutant of ``module`` (dotted, e.g. ``replay.timeline``) -> its exit code, or None
    when not run yet."""
    meta = root / (module.replace(".", "/") + ".py.meta")
    if not meta.is_file():
        raise SystemExit(f"{meta}: no mutants for {module}; run `mutmut run` once first")
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return codes


def sample(names: list[str], size: int) -> list[str]:
    """``size`` names drawn with the fixed seed from the sorted list (all if it is shorter)."""
    ordered = sorted(names)
    return sorted(random.Random(SEED).sample(ordered, min(size, len(ordered))))


def wilson(detected: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95 % score interval for ``detected`` successes in ``n`` trials."""
    if n == 0:
        return (0.0, 1.0)
    p = detected / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["names", "score"])
    parser.add_argument("module", help="dotted module name, e.g. replay.timeline")
    parser.add_argument("size", type=int, help="sample size (0: every mutant)")
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    args = parser.parse_args()
    codes = module_results(args.module, args.mutants)
    names = sample(list(codes), args.size or len(codes))
    if args.what == "names":
        print("\n".join(names))
        return
    tally = Counter(
        "detected"
        if codes[n] in DETECTED
        else "survived"
        if codes[n] in SURVIVED
        else "no tests"
        if codes[n] in NO_TESTS
        else "not run"
        if codes[n] is None
        else f"other ({codes[n]})"
        for n in names
    )
    # a mutant no selected test reaches is not detected: it counts as run and survived
    run = len(names) - tally["not run"]
    low, high = wilson(tally["detected"], run)
    print(f"{args.module}: {len(codes)} mutants, sample {len(names)} (seed {SEED}), run {run}")
    print(", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    if run:
        score = tally["detected"] / run
        print(f"score {score:.1%} (95 % interval {low:.1%} - {high:.1%})")


if __name__ == "__main__":
    main()
