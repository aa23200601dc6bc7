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


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rng.choice(["truncate", "flip", "huge", "zero", "splice"])
    region = rng.random()
    if region < 0.4:
        pos = rng.randrange(0, min(len(buf), 1024))  # header, attrs, ids
    elif region < 0.7:
        pos = rng.randrange(len(buf) * 3 // 4, len(buf))  # feature sections, stream tail
    else:
        pos = rng.randrange(0, len(buf))
    if kind == "truncate":
        return bytes(buf[:pos])
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            i = min(len(buf) - 1, pos + rng.randrange(0, 256))
            buf[i] ^= 1 << rng.randrange(8)
    elif kind == "huge":
        buf[pos : pos + 8] = rng.choice(
            [b"\xff" * 8, b"\xff\xff\xff\x7f" * 2, b"\x00\x00\x00\x80" * 2, b"\xff\xff" * 4]
        )
    elif kind == "zero":
        n = rng.randint(1, 64)
        buf[pos : pos + n] = bytes(len(buf[pos : pos + n]))
    else:
        src = rng.randrange(0, len(buf))
        n = rng.randint(1, 2048)
        buf[pos : pos + n] = buf[src : src + n]
    return bytes(buf)


@pytest.mark.slow
@pytest.mark.parametrize("rel", FILES)
def test_mutated_files_give_captures_or_clean_errors(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    original = (shared_traces / rel).read_bytes()
    rng = random.Random(f"perf-mutations-{rel}")
    deadline = time.monotonic() + TIME_BUDGET_S / len(FILES)
    outcomes = {"capture": 0, "error": 0}
    target = tmp_path / "mutated.data"
    read_perf_data(shared_traces / rel)  # load numba's compiled kernels outside the measure
    tracemalloc.start()
    try:
        for i in range(PER_FILE):
            if time.monotonic() > deadline and i >= 10:
                break
            target.write_bytes(mutate(original, rng))
            tracemalloc.reset_peak()
            try:
                cap = read_perf_data(target, strict=i % 3 == 2)
            except PmuReplayError as exc:
                assert str(target) in str(exc), str(exc)
                outcomes["error"] += 1
            else:
                assert isinstance(cap, Capture)
                outcomes["capture"] += 1
            _, peak = tracemalloc.get_traced_memory()
            assert peak < 64 * len(original) + (16 << 20), f"mutation {i}: peak {peak} bytes"
    finally:
        tracemalloc.stop()
    assert outcomes["capture"] >= 3
    assert outcomes["error"] >= 1
