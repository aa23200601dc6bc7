"""mutmut's fork server may import what ``tests/mutmut_preload.txt`` names (benchmarks/README.md,
"Mutation score"): a child forked after importing it still runs polars queries. A module that
ran a query at import would start polars' thread pool in the server, and every mutant's child
would hang at its first query, using no CPU, so mutmut's CPU-time limit would never end it.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

_PROBE = """
import importlib, os, signal, sys
for line in open(sys.argv[1]):
    if line.strip() and not line.startswith("#"):
        importlib.import_module(line.strip())
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a hung query ends the child with SIGALRM
    import polars as pl
    total = pl.DataFrame({"x": list(range(100_000))}).lazy().select(pl.col("x").sum()).collect()
    os._exit(0 if total.item() == 4_999_950_000 else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_child_forked_after_the_preload_runs_polars_queries() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT / "tests/mutmut_preload.txt")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
