"""Mutated copies of the shared trace.dat files: every outcome is a capture or a clean error.

A seeded mutation loop (bounded in count and time) truncates files, flips bytes, and writes
huge or zero values into the header and metadata region, where a length or count is most
likely to land. The importer must return a :class:`Capture` (damage skipped and counted) or
raise a :class:`PmuReplayError` whose message names the file — never another exception, a hang
or a memory blow-up.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from pathlib import Path

import pytest

from importers.capture import Capture
from importers.errors import PmuReplayError
from importers.tracedat import read_tracedat

FILES = ["juno-sched-load/trace.dat", "kvm-x86-hostguest-v7/trace.dat"]
TIME_BUDGET_S = 25.0
PER_FILE = 60


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rng.choice(["truncate", "flip", "huge", "zero", "splice"])
    # Headers, formats and options sit in the first part of both files; the ring-buffer pages
    # are in the last few percent.
    region = rng.random()
    hot = region < 0.5
    if hot:
        pos = rng.randrange(0, min(len(buf), 1 << 16))
    elif region < 0.85:
        pos = rng.randrange(len(buf) * 24 // 25, len(buf))
    else:
        pos = rng.randrange(0, len(buf))
    if kind == "truncate":
        return bytes(buf[:pos])
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(0, len(buf)) if not hot else rng.randrange(0, min(len(buf), 4096))
            buf[i] ^= 1 << rng.randrange(8)
    elif kind == "huge":
        buf[pos : pos + 8] = rng.choice(
            [b"\xff" * 8, b"\xff\xff\xff\x7f" * 2, b"\x00\x00\x00\x80" * 2]
        )
    elif kind == "zero":
        buf[pos : pos + rng.randint(1, 64)] = bytes(min(64, len(buf) - pos))[: rng.randint(1, 64)]
    else:  # splice a block of the file onto another place (page-like garbage)
        src = rng.randrange(0, len(buf))
        n = rng.randint(1, 4096)
        buf[pos : pos + n] = buf[src : src + n]
    return bytes(buf)


@pytest.mark.slow
@pytest.mark.parametrize("rel", FILES)
def test_mutated_files_give_captures_or_clean_errors(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    original = (shared_traces / rel).read_bytes()
    read_tracedat(shared_traces / rel)  # compile the numba loops before timing and tracing
    rng = random.Random(f"tracedat-mutations-{rel}")
    deadline = time.monotonic() + TIME_BUDGET_S / len(FILES)
    outcomes = {"capture": 0, "error": 0}
    target = tmp_path / "mutated.dat"
    tracemalloc.start()
    try:
        for i in range(PER_FILE):
            if time.monotonic() > deadline:
                break
            target.write_bytes(mutate(original, rng))
            tracemalloc.reset_peak()
            try:
                cap = read_tracedat(target, strict=i % 2 == 1)
            except PmuReplayError as exc:
                assert str(target) in str(exc)
                outcomes["error"] += 1
            else:
                assert isinstance(cap, Capture)
                outcomes["capture"] += 1
            _, peak = tracemalloc.get_traced_memory()
            # Inflated v7 data is ~10x the file; anything far beyond is a size taken on trust.
            assert peak < 64 * len(original), f"mutation {i}: peak {peak} bytes"
    finally:
        tracemalloc.stop()
    assert outcomes["capture"] + outcomes["error"] >= 10
    assert outcomes["error"] > 0
