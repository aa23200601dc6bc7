"""The byte kernels of :mod:`importers.ftrace.scan`, compiled by numba, for large inputs (see
:mod:`importers.byte_loops`): each walks the bytes of a chunk once, line by line, without the
GIL, so the importer's threads parse chunks in parallel.

They give exactly what the numpy twins of :mod:`importers.ftrace.scan_np` and
:mod:`importers.ftrace.keys_np` give (tests/importers/ftrace/test_scan_engines.py holds them
equal).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from importers.ftrace.scan_bytes import (
    COLON,
    COMM,
    DASH,
    DOT,
    I8,
    I32,
    I64,
    INT64_MAX,
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
    TOKEN,
    U8,
    U64_TOP_DIGIT,
    VIEWED_FIELDS,
    Bools,
    Offsets,
    Views,
)
from importers.ranges import ABSENT, OVERFLOW, SIGNED, UNSIGNED

NO_SPACE = -2  # _before_spaces: no whitespace where it was required


@njit(cache=True, inline="always")
def _isspace(c: int) -> bool:
    return c == SPACE or c == TAB


@njit(cache=True, inline="always")
def _isdigit(c: int) -> bool:
    return 0x30 <= c <= 0x39


@njit(cache=True, inline="always")
def _isflag(c: int) -> bool:
    # [.a-zA-Z0-9]: the latency flag alphabet of trace_print_lat_fmt()
    return c == DOT or _isdigit(c) or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


@njit(cache=True, inline="always")
def _digit(v: int, c: int) -> int:
    """``v`` with decimal digit ``c`` appended, saturating at SATURATED."""
    return v * 10 + c - 0x30 if v < SATURATED else SATURATED


@njit(cache=True, inline="always")
def _placeholder(buf: U8, s: int, e: int) -> bool:
    """``<...>`` or ``<pid>``: the kernel did not know the comm (saved_cmdlines miss)."""
    if e - s < 3 or buf[s] != 0x3C or buf[e - 1] != 0x3E:
        return False
    if e - s == 5 and buf[s + 1] == DOT and buf[s + 2] == DOT and buf[s + 3] == DOT:
        return True
    for q in range(s + 1, e - 1):
        if not _isdigit(buf[q]):
            return False
    return True


@njit(cache=True, nogil=True)
def count_lines(buf: U8) -> int:
    """Newlines in ``buf`` (without holding the GIL, unlike ``bytes.count``)."""
    n = 0
    for i in range(buf.size):
        n += buf[i] == 0x0A
    return n


@njit(cache=True, nogil=True)
def line_bounds(buf: U8) -> tuple[I64, I64]:
    """Start and end (exclusive, without ``\\n``/``\\r``) of every line of ``buf``."""
    n = count_lines(buf)
    starts = np.empty(n, np.int64)
    ends = np.empty(n, np.int64)
    k = 0
    s = 0
    for i in range(buf.size):
        if buf[i] == 0x0A:
            e = i
            if e > s and buf[e - 1] == 0x0D:
                e -= 1
            starts[k] = s
            ends[k] = e
            k += 1
            s = i + 1
    return starts, ends


@njit(cache=True, inline="always")
def _before_spaces(buf: U8, b: int, lo: int) -> int:
    """Index of the last byte before the whitespace run ending at ``b`` (``lo - 1`` when it
    reaches ``lo``), or NO_SPACE when ``buf[b]`` is not whitespace (or ``b < lo``)."""
    if b < lo or not _isspace(buf[b]):
        return NO_SPACE
    while b >= lo and _isspace(buf[b]):
        b -= 1
    return b


@njit(cache=True, nogil=True)
def _context_end(buf: U8, s: int, e: int, out: I64) -> int:
    """Parse ``comm-pid [(tgid)] [cpu] [(tgid)] [flags] ts: [(+d)] [event:]`` of one line.

    Mirrors the EVENT_LINE regex of :mod:`importers.ftrace.lines`: the pid is the last
    ``-digits`` before the CPU column (the first ``[digits]`` that such a pid precedes). Writes
    into ``out``:
    0 comm_s (-1 for placeholders such as ``<...>``), 1 comm_e, 2 pid, 3 tgid (-1 unknown),
    4 cpu, 5 flags_s, 6 flags_e (-1: none), 7 ts, 8 frac, 9 frac_width (0: no decimal point,
    ts is then in raw clock units), 10 event_s, 11 event_e (-1: none), 12 args_s. Returns 1
    when the line is an event line, 0 otherwise.
    """
    cs = s
    while cs < e and _isspace(buf[cs]):
        cs += 1
    j = cs
    while j < e:
        if buf[j] != LBRACKET:
            j += 1
            continue
        k = j + 1
        while k < e and _isdigit(buf[k]):
            k += 1
        if k == j + 1 or k >= e or buf[k] != RBRACKET:
            j += 1
            continue
        # walk back over whitespace, an optional "(tgid)" and whitespace, to the pid digits
        b = _before_spaces(buf, j - 1, cs)
        if b == NO_SPACE:
            j += 1
            continue
        tgid = -1
        if b >= cs and buf[b] == RPAREN:
            p = b - 1
            while p >= cs and buf[p] != LPAREN:
                p -= 1
            if p < cs:
                j += 1
                continue
            q = p + 1
            while q < b and _isspace(buf[q]):
                q += 1
            if q < b and _isdigit(buf[q]):
                tgid = 0
                while q < b and _isdigit(buf[q]):
                    tgid = _digit(tgid, buf[q])
                    q += 1
            elif q < b and buf[q] == DASH:
                while q < b and buf[q] == DASH:
                    q += 1
            else:
                j += 1
                continue
            if q != b:
                j += 1
                continue
            b = _before_spaces(buf, p - 1, cs)
            if b == NO_SPACE:
                j += 1
                continue
        d = b
        while d >= cs and _isdigit(buf[d]):
            d -= 1
        if d == b or d < cs or buf[d] != DASH:
            j += 1
            continue
        pid = 0
        for q in range(d + 1, b + 1):
            pid = _digit(pid, buf[q])
        cpu = 0
        for q in range(j + 1, k):
            cpu = _digit(cpu, buf[q])
        out[0] = cs
        out[1] = d
        if _placeholder(buf, cs, d):
            out[0] = -1
        out[2] = pid
        out[3] = tgid
        out[4] = cpu
        return _after_cpu(buf, k + 1, e, out)
    return 0


@njit(cache=True, nogil=True)
def _after_cpu(buf: U8, i: int, e: int, out: I64) -> int:
    while i < e and _isspace(buf[i]):
        i += 1
    if i < e and buf[i] == LPAREN:  # TGID after the CPU column (old Android kernels)
        q = i + 1
        while q < e and _isspace(buf[q]):
            q += 1
        tg = 0
        digits = 0
        while q < e and (_isdigit(buf[q]) or buf[q] == DASH):
            if _isdigit(buf[q]):
                tg = _digit(tg, buf[q])
                digits += 1
            q += 1
        if q >= e or buf[q] != RPAREN:
            return 0
        if digits:
            out[3] = tg
        i = q + 1
        while i < e and _isspace(buf[i]):
            i += 1
    # the next token is either the flags or the timestamp
    t = i
    while t < e and not _isspace(buf[t]) and buf[t] != COLON:
        t += 1
    out[5] = -1
    out[6] = -1
    if t < e and buf[t] != COLON:  # a token followed by space: flags (3-8 chars or -0xN)
        width = t - i
        ok = 3 <= width <= 8
        if buf[i] == DASH:
            ok = width >= 4 and buf[i + 1] == 0x30 and (buf[i + 2] == 0x78 or buf[i + 2] == 0x58)
        else:
            for q in range(i, t):
                if not _isflag(buf[q]):
                    ok = False
        if not ok:
            return 0
        out[5] = i
        out[6] = t
        i = t
        while i < e and _isspace(buf[i]):
            i += 1
    sec = 0
    q = i
    while q < e and _isdigit(buf[q]):
        sec = sec * 10 + buf[q] - 0x30
        q += 1
    if q == i or q - i > 18:
        return 0
    frac = 0
    width = 0
    if q < e and buf[q] == DOT:
        q += 1
        while q < e and _isdigit(buf[q]):
            frac = frac * 10 + buf[q] - 0x30
            width += 1
            q += 1
        if width == 0 or width > 9:
            return 0
    if q + 1 >= e or buf[q] != COLON or not _isspace(buf[q + 1]):
        return 0
    if width and sec > MAX_SECONDS:
        return 0  # past int64 ns: the regex path counts it
    # "%5lu.%06lu" µs or 9-digit ns -> exact ns; no decimal point -> raw clock counts
    out[7] = sec * 1_000_000_000 + frac * 10 ** (9 - width) if width else sec
    out[8] = frac
    out[9] = width
    q += 1
    while q < e and _isspace(buf[q]):
        q += 1
    if q + 1 < e and buf[q] == LPAREN and buf[q + 1] == PLUS:  # trace-cmd --ts-diff
        r = q + 2
        while r < e and _isdigit(buf[r]):
            r += 1
        if r < e and buf[r] == RPAREN:
            q = r + 1
            while q < e and _isspace(buf[q]):
                q += 1
    ev = q
    while q < e and not _isspace(buf[q]) and buf[q] != COLON:
        q += 1
    if q < e and buf[q] == COLON and q > ev:
        out[10] = ev
        out[11] = q
        q += 1
        while q < e and _isspace(buf[q]):
            q += 1
        out[12] = q
    else:
        out[10] = -1
        out[11] = -1
        out[12] = ev
    return 1


@njit(cache=True, nogil=True)
def scan_event_lines(buf: U8, starts: I64, ends: I64) -> tuple[Bools, I64, Views]:
    """Context fields of every line; column ``i`` of the (13, n) result is ``out`` of line ``i``.

    Field-major, so that each field is one contiguous array for the columns built from it.
    Also the string_view structs of the comm, flags and event name, ``(3, n, 16)``, written
    while the line is in cache (built afterwards, each struct waited for memory).
    """
    n = starts.size
    ok = np.zeros(n, np.bool_)
    fields = np.full((13, n), -1, np.int64)
    views = np.empty((len(VIEWED_FIELDS), n, 16), np.uint8)
    for i in range(n):
        ok[i] = _context_end(buf, starts[i], ends[i], fields[:, i]) == 1
        for v in range(len(VIEWED_FIELDS)):
            first = VIEWED_FIELDS[v]
            _put_view(views[v, i], buf, fields[first, i], fields[first + 1, i])
    return ok, fields, views


@njit(cache=True, nogil=True)
def find_keys(
    buf: U8,
    starts: I64,
    ends: I64,
    keys: U8,
    key_offsets: I64,
    required: Bools,
    kind: I8,
    view_of: I8,
) -> tuple[Bools, I32, I64, I8, Views]:
    """numba kernel of :func:`importers.ftrace.scan.find_keys`: per row, one forward pass
    finds the keys and reads each value's integer as its key is found, so each byte is read
    about once; then each value is cut and turned into a string_view struct while the line is
    in cache.

    The integers are parsed inline, not by a helper: numba counts references to an array
    passed to a function, and its pruning pass cannot drop the count across the helper's
    loops, so a helper reading ``buf`` cost two atomic operations per value (~50 ns a
    sched_switch row).
    """
    n = starts.size
    m = key_offsets.size - 1
    # Uninitialised outputs, every cell written below: filling ~50 MB of fresh pages first
    # costs a third of the kernel's time. Offsets are int32 (chunks are far below 2 GiB).
    vs = np.empty((m, n), np.int32)
    ints = np.empty((m, n), np.int64)
    int_how = np.empty((m, n), np.int8)
    ok = np.empty(n, np.bool_)
    views = np.empty((max(int(view_of.max()) + 1, 0), n, 16), np.uint8)
    value_end = np.empty(m, np.int64)  # where each value of the row ends, blanks included
    for i in range(n):
        s, e = starts[i], ends[i]
        pos = s  # where the search for the next key starts
        open_value = -1  # the key whose value runs to the next key found
        good = True
        for k in range(m):
            a = key_offsets[k]
            klen = key_offsets[k + 1] - a
            found = -1
            if k == 0:
                if e - s >= klen:
                    match = True
                    for t in range(klen):
                        if buf[s + t] != keys[a + t]:
                            match = False
                            break
                    if match:
                        found = s
            else:
                p = pos
                while p + klen < e:
                    if buf[p] == SPACE:
                        match = True
                        for t in range(klen):
                            if buf[p + 1 + t] != keys[a + t]:
                                match = False
                                break
                        if match:
                            found = p + 1
                            break
                    p += 1
            if found < 0:
                vs[k, i] = -1
                if required[k]:
                    good = False
                    break
                continue
            if open_value >= 0:  # a value runs to the space before the next key found
                value_end[open_value] = found - 1
            v0 = found + klen
            vs[k, i] = v0
            # The integer at the start of the value: optional sign, then 0x hex or decimal,
            # stopping at the first blank (target_cpu=001 state=W); anything else after the
            # digits makes it ABSENT. The row's end bounds it, not the value's (not known
            # yet): a value ends before a blank or at the row's end, where the digits stop
            # either way. UNSIGNED: 2^63 to 2^64 - 1, kept as the bit pattern (the kernel's
            # u64 fields print in hex); OVERFLOW: 64 bits do not hold it, the digits are never
            # wrapped into a value (0 unless SIGNED or UNSIGNED).
            q = v0
            how = ABSENT
            value = np.int64(0)
            if q < e:
                neg = buf[q] == DASH
                if neg:
                    q += 1
                is_hex = False
                if q + 1 < e and buf[q] == 0x30 and (buf[q + 1] | 0x20) == 0x78:
                    is_hex = True
                    q += 2
                v = np.uint64(0)
                over = False
                p = q
                if is_hex:
                    while p < e:
                        c = buf[p] | 0x20  # lower-case letters; digits are unchanged
                        if 0x30 <= c <= 0x39:
                            d = c - 0x30
                        elif 0x61 <= c <= 0x66:
                            d = c - 0x57
                        else:
                            break
                        if v >> np.uint64(60) != np.uint64(0):
                            over = True
                        v = (v << np.uint64(4)) | np.uint64(d)
                        p += 1
                else:
                    while p < e and _isdigit(buf[p]):
                        d = buf[p] - 0x30
                        if v > U64_TOP_DIGIT or (v == U64_TOP_DIGIT and d > 5):
                            over = True
                        v = v * np.uint64(10) + np.uint64(d)
                        p += 1
                if p == q or (p < e and not _isspace(buf[p])):
                    how = ABSENT
                elif over or (neg and v > INT64_MAX + np.uint64(1)):
                    how = OVERFLOW
                elif neg:
                    how = SIGNED
                    value = -np.int64(v - np.uint64(1)) - 1  # -2^63 without overflowing
                else:
                    how = SIGNED if v <= INT64_MAX else UNSIGNED
                    value = np.int64(v)  # the bit pattern when v >= 2^63
                q = p
            int_how[k, i] = how
            ints[k, i] = value
            pos = q  # no space before: the next key is searched from here
            open_value = k
            if kind[k] == TOKEN:  # stops at the first blank, whatever follows
                while pos < e and not _isspace(buf[pos]):
                    pos += 1
                value_end[k] = pos
                open_value = -1
        if open_value >= 0:
            value_end[open_value] = e
        ok[i] = good
        for k in range(m):
            v0 = vs[k, i]
            if not good or v0 < 0:  # no half-cut values: a start without an end is no range
                vs[k, i] = -1
                ints[k, i] = 0
                int_how[k, i] = ABSENT
                if view_of[k] >= 0:
                    views[view_of[k], i, :] = 0  # a null string_view
                continue
            end = value_end[k]
            while end > v0 and _isspace(buf[end - 1]):
                end -= 1
            if kind[k] == COMM and _placeholder(buf, v0, end):
                vs[k, i] = -1
            if view_of[k] >= 0:
                _put_view(views[view_of[k], i], buf, vs[k, i], end)
    return ok, vs, ints, int_how, views


@njit(cache=True, inline="always")
def _put_view(view: U8, buf: U8, s: int, e: int) -> None:
    """The Arrow string_view struct of ``buf[s:e]`` into the 16 bytes of ``view``.

    Length, then the string itself when it fits in 12 bytes, else its 4-byte prefix, buffer
    index 0 and offset. ``s < 0`` (a null) writes zeros.
    """
    for b in range(16):
        view[b] = 0
    if s < 0:
        return
    length = e - s
    for b in range(4):
        view[b] = (length >> (8 * b)) & 0xFF
    if length <= 12:
        for t in range(length):
            view[4 + t] = buf[s + t]
    else:
        for t in range(4):
            view[4 + t] = buf[s + t]
        for b in range(4):  # buffer index 0, then the offset
            view[12 + b] = (s >> (8 * b)) & 0xFF


@njit(cache=True, nogil=True)
def views(buf: U8, starts: Offsets, ends: Offsets) -> Views:
    """The string_view struct of every range, one row of 16 bytes each."""
    n = starts.size
    out = np.empty((n, 16), np.uint8)
    for i in range(n):
        _put_view(out[i], buf, starts[i], ends[i])
    return out


@njit(cache=True, nogil=True)
def repeated_lines(buf: U8, starts: Offsets, ends: Offsets, ts: I64) -> Bools:
    """numba kernel of :func:`importers.ftrace.scan.repeated_lines`."""
    n = starts.size
    out = np.zeros(n, np.bool_)
    for i in range(1, n):
        width = ends[i] - starts[i]
        j = i - 1
        while j >= 0 and i - j <= REPEAT_WINDOW and ts[j] == ts[i]:
            if ends[j] - starts[j] == width:
                same = True
                for t in range(width):
                    if buf[starts[i] + t] != buf[starts[j] + t]:
                        same = False
                        break
                if same:
                    out[i] = True
                    break
            j -= 1
    return out
