"""Seeded byte mutations of real captures, and the loop that imports them.

The binary importers' robustness tests truncate files, flip bits, write huge or zero values
and splice blocks, mostly where a format keeps its sizes and counts. Every outcome must be a
:class:`Capture` (damage skipped and counted) or a :class:`PmuReplayError` naming the file:
never another exception, a hang, or memory far beyond the file's size.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from importers.capture import Capture
from importers.errors import PmuReplayError

HUGE = (b"\xff" * 8, b"\xff\xff\xff\x7f" * 2, b"\x00\x00\x00\x80" * 2, b"\xff\xff" * 4)
#: (probability, start, end): where a mutation lands, the rest of the time anywhere
Regions = tuple[tuple[float, int, int], ...]


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
    src, n = rng.randrange(len(buf)), rng.randint(1, 4096)
    buf[pos : pos + n] = buf[src : src + n]
    return bytes(buf)


MUTATIONS = (_truncate, _flip, _huge, _zero, _splice)


def mutate(data: bytes, regions: Regions, rng: random.Random) -> bytes:
    """One seeded mutation of ``data``, placed by ``regions``."""
    pick = rng.random()
    start, end = 0, len(data)
    for probability, lo, hi in regions:
        if pick < probability:
            start, end = lo, min(hi, len(data))
            break
        pick -= probability
    return rng.choice(MUTATIONS)(bytearray(data), rng.randrange(start, end), rng)


def mutation_outcomes(
    read: Callable[..., Capture],
    original: bytes,
    regions: Regions,
    target: Path,
    seed: str,
    *,
    runs: int,
    seconds: float,
    strict_every: int,
    peak_limit: int,
) -> Counter[str]:
    """Import mutated copies of ``original`` written to ``target``; count the outcomes.

    Up to ``runs`` mutations (at least 10, then while ``seconds`` last); every
    ``strict_every``-th import is strict. Fails on any exception other than a
    :class:`PmuReplayError` naming ``target``, and on a Python allocation peak above
    ``peak_limit`` bytes (a size taken on trust).
    """
    rng = random.Random(seed)
    stop_at = time.monotonic() + seconds
    seen: Counter[str] = Counter()
    tracemalloc.start()
    try:
        for i in range(runs):
            target.write_bytes(mutate(original, regions, rng))
            tracemalloc.reset_peak()
            try:
                cap = read(target, strict=i % strict_every == strict_every - 1)
            except PmuReplayError as exc:
                assert str(target) in str(exc), str(exc)
                seen["error"] += 1
            else:
                assert isinstance(cap, Capture)
                seen["capture"] += 1
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < peak_limit, f"mutation {i}: peak {peak} bytes"
            if i >= 10 and time.monotonic() > stop_at:
                break
    finally:
        tracemalloc.stop()
    return seen
