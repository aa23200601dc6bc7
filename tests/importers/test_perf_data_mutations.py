"""Mutated copies of the shared perf.data files: every outcome is a capture or a clean error.

A seeded, bounded loop truncates files, flips bits, writes huge or zero values and splices
blocks, mostly into the header, attrs and feature sections (where sizes and counts live) and
into the record stream. The importer must return a :class:`Capture` (damage skipped and
counted) or raise a :class:`PmuReplayError` naming the file: never another exception, a hang
or memory far beyond the file's size.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from importers.capture import Capture
from importers.errors import PmuReplayError
from importers.perf_data import read_perf_data

FILES = [
    "quipper-perfdata/perf.data.hybrid_topology",
    "quipper-perfdata/perf.data.ctx_switch_namespaces-4.14",
    "quipper-perfdata/perf.data.group_desc-4.14",
    "simpleperf-android/perf_with_tracepoint_event.data",
]
TIME_BUDGET_S = 20.0
PER_FILE = 80
HUGE = (b"\xff" * 8, b"\xff\xff\xff\x7f" * 2, b"\x00\x00\x00\x80" * 2, b"\xff\xff" * 4)


def _truncate(buf: bytearray, pos: int, rng: random.Random) -> bytes:
    return bytes(buf[:pos])


def _flip(buf: bytearray, pos: int, rng: random.Random) -> bytes:
    for _ in range(rng.randint(1, 16)):
        buf[min(len(buf) - 1, pos + rng.randrange(256))] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _huge(buf: bytearray, pos: int, rng: random.Random) -> bytes:
    buf[pos : pos + 8] = rng.choice(HUGE)
    return bytes(buf)


def _zero(buf: bytearray, pos: int, rng: random.Random) -> bytes:
    end = min(len(buf), pos + rng.randint(1, 64))
    buf[pos:end] = bytes(end - pos)
    return bytes(buf)


def _splice(buf: bytearray, pos: int, rng: random.Random) -> bytes:
    src, n = rng.randrange(len(buf)), rng.randint(1, 2048)
    buf[pos : pos + n] = buf[src : src + n]
    return bytes(buf)


MUTATIONS = (_truncate, _flip, _huge, _zero, _splice)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One seeded mutation; 40% in the first KiB (header, attrs, ids), 30% in the last
    quarter (feature sections, the end of the stream), the rest anywhere."""
    where = rng.random()
    if where < 0.4:
        pos = rng.randrange(min(len(data), 1024))
    elif where < 0.7:
        pos = rng.randrange(len(data) * 3 // 4, len(data))
    else:
        pos = rng.randrange(len(data))
    return rng.choice(MUTATIONS)(bytearray(data), pos, rng)


def outcome(path: Path, strict: bool) -> str:
    """``capture`` or ``error``; any other exception fails the test."""
    try:
        cap = read_perf_data(path, strict=strict)
    except PmuReplayError as exc:
        assert str(path) in str(exc), str(exc)
        return "error"
    assert isinstance(cap, Capture)
    return "capture"


@pytest.mark.slow
@pytest.mark.parametrize("rel", FILES)
def test_mutated_files_give_captures_or_clean_errors(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    original = (shared_traces / rel).read_bytes()
    read_perf_data(shared_traces / rel)  # numba's compiled kernels load outside the measure
    rng = random.Random(f"perf-mutations-{rel}")
    stop_at = time.monotonic() + TIME_BUDGET_S / len(FILES)
    limit = 64 * len(original) + (16 << 20)
    target = tmp_path / "mutated.data"
    seen: Counter[str] = Counter()
    tracemalloc.start()
    try:
        for i in range(PER_FILE):
            target.write_bytes(mutate(original, rng))
            tracemalloc.reset_peak()
            seen[outcome(target, strict=i % 3 == 2)] += 1
            assert tracemalloc.get_traced_memory()[1] < limit, f"mutation {i} of {rel}"
            if i >= 10 and time.monotonic() > stop_at:
                break
    finally:
        tracemalloc.stop()
    assert seen["capture"] >= 3 and seen["error"] >= 1, seen
