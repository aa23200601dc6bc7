"""Mutated copies of the shared trace.dat files: every outcome is a capture or a clean error.

The mutations (:mod:`tests.importers.mutations`) land mostly in the header and metadata
region, where a length or count is most likely to be, and in the ring-buffer pages at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from importers.tracedat.read import read_tracedat
from tests.importers.mutations import mutation_outcomes

FILES = ["juno-sched-load/trace.dat", "kvm-x86-hostguest-v7/trace.dat"]
TIME_BUDGET_S = 25.0
PER_FILE = 60


@pytest.mark.slow
@pytest.mark.parametrize("rel", FILES)
def test_mutated_files_give_captures_or_clean_errors(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    original = (shared_traces / rel).read_bytes()
    read_tracedat(shared_traces / rel)  # compile the numba loops before timing and tracing
    # Headers, formats and options sit in the first part of both files; the ring-buffer
    # pages are in the last few percent.
    regions = ((0.5, 0, 1 << 16), (0.35, len(original) * 24 // 25, len(original)))
    seen = mutation_outcomes(
        read_tracedat,
        original,
        regions,
        tmp_path / "mutated.dat",
        f"tracedat-mutations-{rel}",
        runs=PER_FILE,
        seconds=TIME_BUDGET_S / len(FILES),
        strict_every=2,
        # Inflated v7 data is ~10x the file; anything far beyond is a size taken on trust.
        peak_limit=64 * len(original),
    )
    assert seen["capture"] + seen["error"] >= 10 and seen["error"] > 0, seen
