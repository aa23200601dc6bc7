"""Mutated copies of the shared perf.data files: every outcome is a capture or a clean error.

The mutations (:mod:`tests.importers.mutations`) land mostly in the header, attrs and
feature sections (where sizes and counts live) and in the record stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from importers.perf.data import read_perf_data
from tests.importers.mutations import mutation_outcomes

FILES = [
    "quipper-perfdata/perf.data.hybrid_topology",
    "quipper-perfdata/perf.data.ctx_switch_namespaces-4.14",
    "quipper-perfdata/perf.data.group_desc-4.14",
    "simpleperf-android/perf_with_tracepoint_event.data",
]
TIME_BUDGET_S = 20.0
PER_FILE = 80


@pytest.mark.slow
@pytest.mark.parametrize("rel", FILES)
def test_mutated_files_give_captures_or_clean_errors(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    original = (shared_traces / rel).read_bytes()
    read_perf_data(shared_traces / rel)  # numba's compiled kernels load outside the measure
    # 40% in the first KiB (header, attrs, ids), 30% in the last quarter (feature sections,
    # the end of the stream), the rest anywhere
    regions = ((0.4, 0, 1024), (0.3, len(original) * 3 // 4, len(original)))
    seen = mutation_outcomes(
        read_perf_data,
        original,
        regions,
        tmp_path / "mutated.data",
        f"perf-mutations-{rel}",
        runs=PER_FILE,
        seconds=TIME_BUDGET_S / len(FILES),
        strict_every=3,
        peak_limit=64 * len(original) + (16 << 20),
    )
    assert seen["capture"] >= 3 and seen["error"] >= 1, seen
