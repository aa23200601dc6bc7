"""The numpy twins of the line kernels of :mod:`importers.ftrace.scan_jit`, for small inputs.

The compiled kernels walk each line byte by byte. Here every ``while`` over a byte class
(spaces, digits, ...) becomes one lookup in the runs of that class (:class:`Runs`), so each step
of the walk is a handful of array operations over all lines at once, and no step costs more
than its lines whatever their length. Results are those of the kernels, byte for byte
(tests/importers/ftrace/test_scan_engines.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from importers.binary_views import binary_views
from importers.ftrace.scan_bytes import (
    COLON,
    DASH,
    DOT,
    I64,
    LBRACKET,
    LPAREN,
    MAX_SECONDS,
    PLUS,
    RBRACKET,
    REPEAT_WINDOW,
    RPAREN,
    SATURATED,
    SPACE,
    TAB,
    U8,
    VIEWED_FIELDS,
    Bools,
    Offsets,
    Views,
)


class Runs:
    """The maximal runs of the bytes of ``buf`` that are in a class, as their starts and ends
    (not a flag per byte: that was the chunk's size again for each of the seven classes a
    scan uses, a quarter of a small text import's work memory)."""

    def __init__(self, member: Bools) -> None:
        edges = np.flatnonzero(np.diff(member.view(np.int8), prepend=0, append=0))
        # an empty run where there is none: lookups index it, and find no byte in it
        none = np.zeros(1, np.int64)
        self.starts, self.ends = (edges[0::2], edges[1::2]) if edges.size else (none, none)

    def _run(self, i: I64) -> tuple[I64, Bools]:
        """The run at or before each ``i`` (the first when there is none), and whether ``i``
        is in it."""
        run = np.searchsorted(self.starts, i, side="right") - 1
        at = np.maximum(run, 0)
        return at, (run >= 0) & (i < self.ends[at])

    def contains(self, i: I64) -> Bools:
        """Whether each byte ``i`` is in the class (False outside the chunk)."""
        return self._run(i)[1]

    def next_out(self, i: I64, cap: I64 | int) -> I64:
        """The first position ``>= i`` not in the class, at most ``cap`` (``i <= cap``)."""
        run, inside = self._run(i)
        return np.minimum(np.where(inside, self.ends[run], i), cap)

    def prev_out(self, i: I64, floor: I64) -> I64:
        """The last position ``<= i`` not in the class, at least ``floor - 1``."""
        run, inside = self._run(i)
        return np.maximum(np.where(inside, self.starts[run] - 1, i), floor - 1)


class Bytes:
    """A chunk and the byte-class runs its scans look up, each built on first use."""

    def __init__(self, buf: U8) -> None:
        self.buf = buf
        self._runs: dict[str, Runs] = {}

    def at(self, i: I64) -> I64:
        """The byte at each ``i``, or -1 outside the chunk."""
        byte = self.buf.take(i, mode="clip").astype(np.int64) if self.buf.size else -np.ones_like(i)
        byte[(i < 0) | (i >= self.buf.size)] = -1
        return byte

    def runs(self, name: str) -> Runs:
        if name not in self._runs:
            self._runs[name] = Runs(_CLASSES[name](self.buf))
        return self._runs[name]

    def skip(self, name: str, i: I64, cap: I64 | int) -> I64:
        """``while i < cap and buf[i] in name: i += 1``, for every ``i`` at once."""
        return np.where(i < cap, self.runs(name).next_out(np.minimum(i, cap), cap), i)


def _digit(b: U8) -> Bools:
    return (b >= 0x30) & (b <= 0x39)


def _between(b: npt.NDArray[np.integer], lo: int, hi: int) -> Bools:
    return (b >= lo) & (b <= hi)


#: the byte classes that scans skip over, by name
_CLASSES: dict[str, Callable[[U8], Bools]] = {
    "space": lambda b: (b == SPACE) | (b == TAB),
    "digit": _digit,
    "dash": lambda b: b == DASH,
    "zero": lambda b: b == 0x30,
    "zero-dash": lambda b: (b == 0x30) | (b == DASH),
    "digit-dash": lambda b: _digit(b) | (b == DASH),
    # [.a-zA-Z0-9]: the latency flag alphabet of trace_print_lat_fmt()
    "flag": lambda b: (b == DOT) | _digit(b) | _between(b | 0x20, 0x61, 0x7A),
    "text": lambda b: (b != SPACE) & (b != TAB),
    "token": lambda b: (b != SPACE) & (b != TAB) & (b != COLON),
    # what the kernels' hex parse takes for a digit: the byte with bit 5 set in 0-9 or a-f
    "hex": lambda b: _between(b | 0x20, 0x30, 0x39) | _between(b | 0x20, 0x61, 0x66),
    "hex-zero": lambda b: (b | 0x20) == 0x30,
}


def line_bounds(buf: U8) -> tuple[I64, I64]:
    """Start and end (exclusive, without ``\\n``/``\\r``) of every line of ``buf``."""
    ends = np.flatnonzero(buf == 0x0A)
    starts = np.concatenate([[0], ends + 1])[:-1].astype(np.int64)
    cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 0x0D)
    return starts, ends - cr


def decimal(b: Bytes, s: I64, e: I64, dashes: bool = False) -> I64:
    """The number the kernels' ``_digit`` accumulates from the digits of ``buf[s:e]`` (all
    digits, or with ``dashes`` digits and dashes, the dashes ignored): exact up to
    SATURATED, which it saturates at."""
    lead = "zero-dash" if dashes else "zero"
    q = b.skip(lead, s, e)  # leading zeros add nothing
    v = np.zeros(s.shape, np.int64)
    # 14 significant digits reach 10**13 > SATURATED: every further digit saturates
    for _ in range(min(int((e - q).max(initial=0)), 14)):
        if dashes:
            q = b.skip("dash", q, e)
        live = q < e
        d = b.at(q) - 0x30
        v = np.where(live, np.where(v < SATURATED, v * 10 + d, SATURATED), v)
        q = q + live
    more = (b.skip("dash", q, e) if dashes else q) < e
    return np.where(more, SATURATED, v)


def exact(b: Bytes, s: I64, e: I64, most: int) -> I64:
    """The value of the at most ``most`` decimal digits ``buf[s:e]``, exactly."""
    v = np.zeros(s.shape, np.int64)
    for t in range(min(int((e - s).max(initial=0)), most)):
        live = s + t < e
        v = np.where(live, v * 10 + b.at(s + t) - 0x30, v)
    return v


def placeholder(b: Bytes, s: I64, e: I64) -> Bools:
    """``<...>`` or ``<pid>``: the kernel did not know the comm (saved_cmdlines miss)."""
    framed = (e - s >= 3) & (b.at(s) == 0x3C) & (b.at(e - 1) == 0x3E)
    dots = (e - s == 5) & (b.at(s + 1) == DOT) & (b.at(s + 2) == DOT) & (b.at(s + 3) == DOT)
    digits = b.skip("digit", s + 1, e - 1) == e - 1
    known: Bools = framed & (dots | digits)
    return known


def before_spaces(b: Bytes, i: I64, lo: I64) -> tuple[Bools, I64]:
    """Whether ``buf[i]`` is whitespace at or after ``lo``, and the last byte before the
    whitespace run that ends there (``lo - 1`` when the run reaches ``lo``)."""
    space = (i >= lo) & b.runs("space").contains(i)
    return space, b.runs("space").prev_out(i, lo)


def scan_event_lines(buf: U8, starts: I64, ends: I64) -> tuple[Bools, I64, Views]:
    """numpy twin of :func:`importers.ftrace.scan.scan_event_lines`."""
    b = Bytes(buf)
    n = starts.size
    fields = np.full((13, n), -1, np.int64)
    cs = b.skip("space", starts, ends)
    line, j, k = _cpu_columns(b, starts, cs, ends)
    ok = np.zeros(n, np.bool_)
    found, k = _context(b, fields, line, j, k, cs[line], ends[line])
    ok[found] = _after_cpu(b, fields, found, k + 1, ends[found])
    views = np.stack([view_structs(b, fields[first], fields[first + 1]) for first in VIEWED_FIELDS])
    return ok, fields, views


def _cpu_columns(b: Bytes, starts: I64, cs: I64, ends: I64) -> tuple[I64, I64, I64]:
    """Every ``[digits]`` of every line at or after its first non-blank byte: the line, the
    ``[`` and the ``]``, in line order then position."""
    j = np.flatnonzero(b.buf == LBRACKET)
    line = np.searchsorted(starts, j, side="right") - 1
    j, line = j[line >= 0], line[line >= 0]
    e = ends[line]
    k = b.skip("digit", j + 1, e)
    good = (j >= cs[line]) & (k > j + 1) & (k < e) & (b.at(k) == RBRACKET)
    return line[good], j[good], k[good]


def _context(b: Bytes, out: I64, line: I64, j: I64, k: I64, cs: I64, e: I64) -> tuple[I64, I64]:
    """``comm-pid [(tgid)]`` before each CPU column ``buf[j:k+1]``; the lines whose first
    such column has it, and the ``]`` of that column, with their comm, pid, TGID and CPU in
    ``out``. Mirrors the pid rule of
    EVENT_LINE: the last ``-digits`` before the CPU column."""
    fail = np.zeros(j.shape, np.bool_)
    space, bb = before_spaces(b, j - 1, cs)
    fail |= ~space
    tgid = np.full(j.shape, -1, np.int64)
    paren = ~fail & (bb >= cs) & (b.at(bb) == RPAREN)
    opens = np.flatnonzero(b.buf == LPAREN)
    at = np.searchsorted(opens, bb - 1, side="right") - 1
    p = np.where(at >= 0, opens[np.maximum(at, 0)] if opens.size else -1, -1)
    fail |= paren & (p < cs)
    q = b.skip("space", p + 1, bb)
    number = (q < bb) & b.runs("digit").contains(q)
    dashes = (q < bb) & (b.at(q) == DASH)
    fail |= paren & ~number & ~dashes
    digits_end = b.skip("digit", q, bb)
    tgid = np.where(paren & number, decimal(b, q, digits_end), tgid)
    q = np.where(number, digits_end, b.skip("dash", q, bb))
    fail |= paren & (q != bb)
    space, before = before_spaces(b, p - 1, cs)
    fail |= paren & ~space
    bb = np.where(paren, before, bb)
    d = b.runs("digit").prev_out(bb, cs)
    fail |= (d == bb) | (d < cs) | (b.at(d) != DASH)
    # the first CPU column that has a pid before it decides the line
    line, first = np.unique(line[~fail], return_index=True)
    pick = np.flatnonzero(~fail)[first]
    cs, d, bb, j, k = cs[pick], d[pick], bb[pick], j[pick], k[pick]
    out[0, line] = np.where(placeholder(b, cs, d), -1, cs)
    out[1, line] = d
    out[2, line] = decimal(b, d + 1, bb + 1)
    out[3, line] = tgid[pick]
    out[4, line] = decimal(b, j + 1, k)
    return line, k


def _after_cpu(b: Bytes, out: I64, line: I64, i: I64, e: I64) -> Bools:
    """The rest of the context after the CPU column (``_after_cpu`` of the kernel): TGID of
    old Android kernels, flags, timestamp, ``--ts-diff`` delta, event name."""
    ok = np.ones(line.shape, np.bool_)
    i = b.skip("space", i, e)
    tg_open = (i < e) & (b.at(i) == LPAREN)  # TGID after the CPU column (old Android kernels)
    q = b.skip("space", i + 1, e)
    close = b.skip("digit-dash", q, e)
    ok &= ~tg_open | ((close < e) & (b.at(close) == RPAREN))
    has_digits = b.skip("dash", q, close) < close
    set_tg = tg_open & ok & has_digits
    out[3, line[set_tg]] = decimal(b, q[set_tg], close[set_tg], dashes=True)
    i = np.where(tg_open, b.skip("space", close + 1, e), i)
    # the next token is either the flags or the timestamp
    t = b.skip("token", i, e)
    flags = (t < e) & (b.at(t) != COLON)
    size = t - i
    raw = (b.at(i) == DASH) & (size >= 4) & (b.at(i + 1) == 0x30) & ((b.at(i + 2) | 0x20) == 0x78)
    letters = (b.at(i) != DASH) & (size >= 3) & (size <= 8) & (b.skip("flag", i, t) == t)
    ok &= ~flags | raw | letters
    out[5, line] = np.where(flags, i, -1)
    out[6, line] = np.where(flags, t, -1)
    i = np.where(flags, b.skip("space", t, e), i)
    q = b.skip("digit", i, e)
    ok &= (q > i) & (q - i <= 18)
    sec = exact(b, i, np.where(ok, q, i), 18)
    dot = (q < e) & (b.at(q) == DOT)
    frac_end = np.where(dot, b.skip("digit", q + 1, e), q)
    width = np.where(dot, frac_end - q - 1, 0)
    ok &= ~dot | ((width > 0) & (width <= 9))
    frac = exact(b, q + 1, np.where(ok, frac_end, q + 1), 9)
    q = frac_end
    ok &= (q + 1 < e) & (b.at(q) == COLON) & ((b.at(q + 1) == SPACE) | (b.at(q + 1) == TAB))
    ok &= (width == 0) | (sec <= MAX_SECONDS)  # past int64 ns: the regex path counts it
    # "%5lu.%06lu" µs or 9-digit ns -> exact ns; no decimal point -> raw clock counts
    scale = 10 ** (9 - np.where(ok, width, 9))
    out[7, line] = np.where(width > 0, sec * 1_000_000_000 + frac * scale, sec)
    out[8, line] = frac
    out[9, line] = width
    q = b.skip("space", q + 1, e)
    diff = (q + 1 < e) & (b.at(q) == LPAREN) & (b.at(q + 1) == PLUS)  # trace-cmd --ts-diff
    r = b.skip("digit", q + 2, e)
    diff &= (r < e) & (b.at(r) == RPAREN)
    q = np.where(diff, b.skip("space", r + 1, e), q)
    end = b.skip("token", q, e)
    named = (end < e) & (b.at(end) == COLON) & (end > q)
    out[10, line] = np.where(named, q, -1)
    out[11, line] = np.where(named, end, -1)
    out[12, line] = np.where(named, b.skip("space", end + 1, e), q)
    return ok


def view_structs(b: Bytes, s: Offsets, e: Offsets) -> Views:
    """The Arrow string_view struct of every ``buf[s:e]`` (:mod:`importers.binary_views`);
    zeros where ``s < 0`` (a null)."""
    s, e = s.astype(np.int64), e.astype(np.int64)
    null = s < 0
    start, length = np.where(null, 0, s), np.where(null, 0, e - s)
    structs: Views = binary_views(b.buf, start, length).view(np.uint8)
    return structs


def views(buf: U8, starts: Offsets, ends: Offsets) -> Views:
    """The string_view struct of every range ``buf[starts[i]:ends[i]]``, 16 bytes each."""
    return view_structs(Bytes(buf), starts, ends)


def repeated_lines(buf: U8, starts: Offsets, ends: Offsets, ts: I64) -> Bools:
    """numpy twin of :func:`importers.ftrace.scan.repeated_lines`: each line against the
    line ``lag`` rows before it, for every lag within its run of equal timestamps."""
    n = starts.size
    out = np.zeros(n, np.bool_)
    if n < 2:
        return out
    new_run = np.concatenate([[True], ts[1:] != ts[:-1]])
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(n), 0))
    width = ends - starts
    for lag in range(1, min(REPEAT_WINDOW, int((np.arange(n) - run_start).max())) + 1):
        i = np.flatnonzero((np.arange(n) - run_start >= lag) & ~out)
        j = i - lag
        i, j = i[width[i] == width[j]], j[width[i] == width[j]]
        out[i[_same_bytes(buf, starts[i], starts[j], width[i])]] = True
    return out


#: bytes compared per block by :func:`_same_bytes` (its index arrays take 16 bytes per byte)
COMPARE_BLOCK = 1 << 20


def _same_bytes(buf: U8, a: Offsets, b: Offsets, width: Offsets) -> Bools:
    """Whether ``buf[a:a+width] == buf[b:b+width]``, pair by pair, a block of pairs of about
    COMPARE_BLOCK bytes at a time."""
    same = np.ones(a.size, np.bool_)
    done = np.cumsum(width)  # bytes compared once each pair is
    lo = 0
    while lo < a.size:
        limit = done[lo] - width[lo] + COMPARE_BLOCK
        hi = max(lo + 1, int(np.searchsorted(done, limit, side="right")))
        w = width[lo:hi]
        row = np.repeat(np.arange(lo, hi), w)
        first = np.repeat(np.cumsum(w, dtype=np.int64) - w, w)
        offset = np.arange(row.size, dtype=np.int64) - first
        same[row[buf[a[row] + offset] != buf[b[row] + offset]]] = False
        lo = hi
    return same
