"""Seeded mutations of real captures, and the loop that imports them.

The binary importers' robustness tests truncate files, flip bits, write huge or zero values
and splice blocks, mostly where a format keeps its sizes and counts; targeted ones write
record types no tool writes and zero a compressed CPU's chunk count. The text importers' tests
damage one line the ways real text goes wrong: a huge number, a CPU id past 65535, a NUL byte,
a garbage JSON line, a line printed twice. Every outcome must be a :class:`Capture` (damage
skipped and counted) or a :class:`PmuReplayError` naming the file: never another exception, a
hang, or memory far beyond the file's size; and a capture holds no negative or wrapped CPU or
pid, and accounts for every line of text it read (:func:`text_lines_accounted`).
"""

from __future__ import annotations

import random
import re
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from importers.capture import Capture
from importers.detect import load
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
Mutation = Callable[[bytes, random.Random], bytes]

# ---- one line of real text made wrong -----------------------------------------------------

HUGE_NUMBERS = (
    b"2147483648",
    b"4294967296",
    b"9223372036854775808",
    b"18446744073709551616",
    b"99999999999999999999999",
)
WIDE_CPUS = (b"65536", b"99999", b"4294967295", b"9223372036854775807")
#: the CPU column of an ftrace line, a perf script line, a perf stat CSV or JSON line
CPU_FIELD = re.compile(
    rb"^(.*?-\d+\s+(?:\(\s*[-\d]+\)\s+)?\[)(\d+)(\])"
    rb"|^(\S.*?\s\d+(?:/\d+)?\s+\[)(\d+)(\])"
    rb"|^(\s*(?:[\d.]+,)?CPU)(\d+)(,)"
    rb'|^(.*?"cpu" : ")(\d+)(")'
)


def _pick_line(data: bytes, rng: random.Random, pattern: re.Pattern[bytes]) -> int | None:
    lines = data.split(b"\n")
    hits = [i for i, line in enumerate(lines) if pattern.search(line)]
    return rng.choice(hits) if hits else None


def _edit_line(data: bytes, index: int, edit: Callable[[bytes], bytes]) -> bytes:
    lines = data.split(b"\n")
    lines[index] = edit(lines[index])
    return b"\n".join(lines)


def huge_number(data: bytes, rng: random.Random) -> bytes:
    """One digit run of one line replaced by a number past 2^31, 2^32, 2^63 or 2^64."""
    index = _pick_line(data, rng, re.compile(rb"\d"))
    if index is None:
        return data

    def edit(line: bytes) -> bytes:
        runs = list(re.finditer(rb"\d+", line))
        run = rng.choice(runs)
        return line[: run.start()] + rng.choice(HUGE_NUMBERS) + line[run.end() :]

    return _edit_line(data, index, edit)


def cpu_past_65535(data: bytes, rng: random.Random) -> bytes:
    """The CPU column of one line set past 65535 (where int16 columns used to wrap)."""
    index = _pick_line(data, rng, CPU_FIELD)
    if index is None:
        return data

    def edit(line: bytes) -> bytes:
        m = CPU_FIELD.search(line)
        assert m is not None
        start = next(g for g in range(1, 13, 3) if m.group(g) is not None)
        return line[: m.end(start)] + rng.choice(WIDE_CPUS) + line[m.start(start + 2) :]

    return _edit_line(data, index, edit)


def nul_byte(data: bytes, rng: random.Random) -> bytes:
    """A NUL byte inserted anywhere."""
    at = rng.randrange(len(data))
    return data[:at] + b"\x00" + data[at:]


def garbage_json(data: bytes, rng: random.Random) -> bytes:
    """A JSON-looking garbage line inserted between two lines."""
    lines = data.split(b"\n")
    garbage = rng.choice([b'{"counter-value" : "12", "garbage" : [1, 2', b'{"event": 1}', b"{}"])
    lines.insert(rng.randrange(len(lines)), garbage)
    return b"\n".join(lines)


def duplicate_line(data: bytes, rng: random.Random) -> bytes:
    """One non-empty line printed twice."""
    index = _pick_line(data, rng, re.compile(rb"\S"))
    if index is None:
        return data
    return _edit_line(data, index, lambda line: line + b"\n" + line)


TEXT_MUTATIONS: tuple[Mutation, ...] = (
    huge_number,
    cpu_past_65535,
    nul_byte,
    garbage_json,
    duplicate_line,
)


def mutated_line(original: bytes, mutated: bytes) -> int:
    """0-based number of the first line that differs (the ``seq`` of text importers)."""
    old, new = original.split(b"\n"), mutated.split(b"\n")
    return next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), len(old))


# ---- what a capture of mutated input must still satisfy -----------------------------------

#: integer columns holding a CPU number or a thread/process id
CPU_COLUMNS = ("cpu", "cpu_id", "target_cpu", "orig_cpu", "dest_cpu")
PID_COLUMNS = ("common_pid", "pid", "tid", "tgid", "prev_pid", "next_pid", "child_pid",
               "parent_pid", "vm_pid", "next_prev_pid", "next_prev_tid")  # fmt: skip
#: skip reasons whose input is still in a row (imported, or kept with a field unknown)
KEPT = re.compile(r"imported\)|kept|fractional counter value|outside 0\.\.2\^64")


def no_wrapped_ids(cap: Capture, columns: tuple[str, ...] = CPU_COLUMNS + PID_COLUMNS) -> None:
    """No CPU number below 0 and no id below -1 (perf prints -1 for "none"): a number too
    big for its column is never stored wrapped. Binary formats store the kernel's own signed
    ids (a damaged record may hold any), so their tests check the CPU columns only."""
    for name, table in cap.tables.items():
        frame = pl.from_arrow(table.select([c for c in table.column_names if c in columns]))
        assert isinstance(frame, pl.DataFrame)
        for column in frame.columns:
            low = frame[column].min()
            floor = 0 if column in CPU_COLUMNS else -1
            assert low is None or low >= floor, f"{name}.{column} holds {low}"  # type: ignore[operator]


def rows_at(cap: Capture, seq: int) -> list[str]:
    """The tables that hold a row of input line (or record) ``seq``."""
    return [
        name
        for name, table in cap.tables.items()
        if "seq" in table.column_names and seq in set(table.column("seq").to_pylist())
    ]


def dropped(cap: Capture) -> int:
    """Input counted in skips and not in any row."""
    return sum(int(r["count"]) for k, r in cap.metadata.skipped.items() if not KEPT.search(k))


def text_lines_accounted(cap: Capture, lines: int) -> None:
    """Every line of ftrace text is a row (its ``seq``), an info line or a counted skip."""
    seqs = {s for t in cap.tables.values() if "seq" in t.column_names
            for s in t.column("seq").to_pylist()}  # fmt: skip
    info = int(cap.metadata.extra["info_lines"])
    assert len(seqs) + info + dropped(cap) == lines, (len(seqs), info, cap.metadata.skipped)


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
    mutations: Sequence[Mutation] = (),
    check: Callable[[Capture, bytes, Mutation | None], None] | None = None,
    ids: bool = False,
) -> Counter[str]:
    """Import mutated copies of ``original`` written to ``target``; count the outcomes.

    Up to ``runs`` mutations (at least 10, then while ``seconds`` last); every
    ``strict_every``-th import is strict. ``mutations`` (taken in turn) replace the byte
    mutations placed by ``regions``; ``check`` sees each capture with the mutated bytes and the
    mutation. Fails on any exception other than a :class:`PmuReplayError` naming ``target``,
    on a capture with negative or wrapped CPU numbers (and thread ids with ``ids``: text, whose
    digits the importer reads itself), and on a Python allocation peak above ``peak_limit``
    bytes (a size taken on trust).
    """
    rng = random.Random(seed)
    stop_at = time.monotonic() + seconds
    seen: Counter[str] = Counter()
    tracemalloc.start()
    try:
        for i in range(runs):
            chosen = mutations[i % len(mutations)] if mutations else None
            data = chosen(original, rng) if chosen else mutate(original, regions, rng)
            target.write_bytes(data)
            tracemalloc.reset_peak()
            try:
                cap = read(target, strict=i % strict_every == strict_every - 1)
            except PmuReplayError as exc:
                assert str(target) in str(exc), str(exc)
                seen["error"] += 1
            else:
                assert isinstance(cap, Capture)
                no_wrapped_ids(cap, CPU_COLUMNS + PID_COLUMNS if ids else CPU_COLUMNS)
                if check:
                    check(cap, data, chosen)
                seen["capture"] += 1
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < peak_limit, f"mutation {i}: peak {peak} bytes"
            if i >= 10 and time.monotonic() > stop_at:
                break
    finally:
        tracemalloc.stop()
    return seen


def text_mutation_outcomes(
    original: bytes,
    target: Path,
    seed: str,
    check: Callable[[Capture, bytes, Mutation | None], None],
    *,
    seconds: float,
    peak_limit: int,
) -> Counter[str]:
    """:func:`mutation_outcomes` of :data:`TEXT_MUTATIONS` (in turn, up to 40 runs, every
    fourth strict) imported through ``load``, thread ids checked too."""
    return mutation_outcomes(
        load,
        original,
        (),
        target,
        seed,
        runs=40,
        seconds=seconds,
        strict_every=4,
        peak_limit=peak_limit,
        mutations=TEXT_MUTATIONS,
        check=check,
        ids=True,
    )
