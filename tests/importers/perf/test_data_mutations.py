"""Mutated copies of the shared perf.data files: every outcome is a capture or a clean error.

The mutations (:mod:`tests.importers.mutations`) land mostly in the header, attrs and
feature sections (where sizes and counts live) and in the record stream; targeted ones give
records a type no tool writes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from importers.capture import Capture
from importers.perf.data import read_perf_data
from importers.perf.file import open_perf
from importers.perf.records import read_stream
from importers.skips import SkipLog
from tests.importers.mutations import Mutation, mutation_outcomes

FILES = [
    "quipper-perfdata/perf.data.hybrid_topology",
    "quipper-perfdata/perf.data.ctx_switch_namespaces-4.14",
    "quipper-perfdata/perf.data.group_desc-4.14",
    "simpleperf-android/perf_with_tracepoint_event.data",
]
TIME_BUDGET_S = 20.0
PER_FILE = 80
UNKNOWN_TYPES = (0, 0x8000, 0xFFFFFFFF)


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


@pytest.mark.slow
@pytest.mark.parametrize("rel", FILES)
def test_records_of_unknown_type_are_counted(shared_traces: Path, tmp_path: Path, rel: str) -> None:
    # perf.data records of a type no tool writes (0, 0x8000, 0xFFFFFFFF) were ignored without
    # a count: a sample disappeared with "skipped {}"
    path = shared_traces / rel
    original = path.read_bytes()
    pf = open_perf(path)
    stream = read_stream(pf, SkipLog(str(path)), None)
    big = pf.big_endian
    offsets = [
        int(o) for o, packed in zip(stream.offset, stream.inflated, strict=True) if not packed
    ]

    def unknown_type(data: bytes, rng: random.Random) -> bytes:
        at = rng.choice(offsets)
        rtype = rng.choice(UNKNOWN_TYPES)
        return data[:at] + rtype.to_bytes(4, "big" if big else "little") + data[at + 4 :]

    def check(cap: Capture, data: bytes, mutation: Mutation | None) -> None:
        counted = [k for k in cap.metadata.skipped if k.startswith("record of unknown type")]
        assert counted, cap.metadata.skipped

    seen = mutation_outcomes(
        read_perf_data,
        original,
        (),
        tmp_path / "typed.data",
        f"perf-unknown-types-{rel}",
        runs=12,
        seconds=4.0,
        strict_every=3,
        peak_limit=64 * len(original) + (16 << 20),
        mutations=[unknown_type],
        check=check,
    )
    assert seen["capture"] >= 4 and seen["error"] >= 1, seen
