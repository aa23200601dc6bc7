"""Byte-level scanners of the ftrace text importer, and zero-copy string columns.

Capture-group regexes cost about a microsecond per line in any engine, which caps a regex-only
importer near 300,000 lines/s per core. These scanners find the same fields by scanning bytes
once, and return *offsets*; strings become Arrow ``string_view`` columns that point into the
chunk buffer, so no text is copied. Every line the scanners do not accept falls back to the
regex grammar of :mod:`importers.ftrace.lines` (the reference; a test checks both agree).

Each scanner has two engines that give identical results (:mod:`importers.byte_loops`): numba
kernels (:mod:`importers.ftrace.scan_jit`, ``nogil``, so the importer's threads parse chunks in
parallel) for large captures, and numpy (:mod:`importers.ftrace.scan_np`,
:mod:`importers.ftrace.keys_np`) for small ones, which therefore never load numba. Callers pass
``compiled``, decided once per capture from its size (:attr:`TextChunk.compiled
<importers.ftrace.source.TextChunk>`), so every chunk of a capture takes the same engine.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from importers.arrow_compute import cast
from importers.ftrace.scan_bytes import I8, I32, I64, U8, Bools, Offsets, Text, Views


def count_lines(buf: U8, compiled: bool) -> int:
    """Newlines in ``buf`` (the numba kernel without holding the GIL, unlike ``bytes.count``)."""
    if compiled:
        from importers.ftrace import scan_jit

        return int(scan_jit.count_lines(buf))
    return int(np.count_nonzero(buf == 0x0A))


def line_bounds(buf: U8, compiled: bool) -> tuple[I64, I64]:
    """Start and end (exclusive, without ``\\n``/``\\r``) of every line of ``buf``."""
    if compiled:
        from importers.ftrace.scan_jit import line_bounds as kernel

        return kernel(buf)
    from importers.ftrace.scan_np import line_bounds as twin

    return twin(buf)


def scan_event_lines(buf: U8, starts: I64, ends: I64, compiled: bool) -> tuple[Bools, I64, Views]:
    """Context fields of every line: ``comm-pid [(tgid)] [cpu] [(tgid)] [flags] ts: [(+d)]
    [event:]``, as the EVENT_LINE regex of :mod:`importers.ftrace.lines` reads them.

    Returns whether each line is an event line, the (13, n) fields (column ``i`` for line
    ``i``: 0 comm_s (-1 for placeholders such as ``<...>``), 1 comm_e, 2 pid, 3 tgid (-1
    unknown), 4 cpu, 5 flags_s, 6 flags_e (-1: none), 7 ts, 8 frac, 9 frac_width (0: no decimal
    point, ts is then in raw clock units), 10 event_s, 11 event_e (-1: none), 12 args_s), and
    the string_view structs of the comm, flags and event name, ``(3, n, 16)``. Fields and views
    of lines that are not event lines are unspecified.
    """
    if compiled:
        from importers.ftrace.scan_jit import scan_event_lines as kernel

        return kernel(buf, starts, ends)
    from importers.ftrace.scan_np import scan_event_lines as twin

    return twin(buf, starts, ends)


def find_keys(
    buf: U8,
    starts: I64,
    ends: I64,
    keys: U8,
    key_offsets: I64,
    required: Bools,
    kind: I8,
    view_of: I8,
    compiled: bool,
) -> tuple[Bools, I32, I64, I8, Views]:
    """Cut ``key=value`` payloads, keys searched in order, and read each value as an integer.

    The first key must start the payload; each later key is searched as `` key=`` after the
    previous one (optional keys may be missing). A value runs to the space before the next key
    found, the last one to the end of the payload, so values may contain spaces
    (``prev_comm=CPU 0/KVM prev_pid=...``). ``kind`` per key: VALUE, TOKEN (stops at the
    first space: ``prev_state=S ==> next_comm=``) or COMM (placeholders such as ``<...>`` read
    as missing). Returns ok (all required keys found), value starts (-1 when missing) and
    integer values and how each was read (``importers.ranges``: ABSENT, SIGNED, UNSIGNED for
    2^63 to 2^64 - 1 as a bit pattern, OVERFLOW; 0 unless SIGNED or UNSIGNED), each of shape
    (keys, rows), and for each key with ``view_of[k] = j >= 0`` the string_view structs
    ``views[j]`` (rows, 16).
    """
    args = (buf, starts, ends, keys, key_offsets, required, kind, view_of)
    if compiled:
        from importers.ftrace.scan_jit import find_keys as kernel

        return kernel(*args)
    from importers.ftrace.keys_np import find_keys as twin

    return twin(*args)


def repeated_lines(buf: U8, starts: Offsets, ends: Offsets, ts: I64, compiled: bool) -> Bools:
    """Which lines repeat, byte for byte, one of the REPEAT_WINDOW lines before them that
    have the same timestamp (``ts``; the rows are event lines in file order).

    Text is merged by time, so an event printed twice sits among the lines of its own
    timestamp; the window bounds the work when very many lines share one.
    """
    if compiled:
        from importers.ftrace.scan_jit import repeated_lines as kernel

        return kernel(buf, starts, ends, ts)
    from importers.ftrace.scan_np import repeated_lines as twin

    return twin(buf, starts, ends, ts)


def view_column(data: Text, views: Views, valid: Bools) -> pa.StringArray:
    """A string array from string_view structs into ``data`` (null where not ``valid``).

    The views cost no copy, but few Arrow compute kernels take them: the strings are copied
    out once, in C++, into a plain string array (which also frees the chunk buffer)."""
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    arr = pa.Array.from_buffers(
        pa.string_view(),
        valid.size,
        [validity, pa.py_buffer(np.ascontiguousarray(views)), pa.py_buffer(data)],
    )
    return cast(arr, pa.string())


def string_column(data: Text, starts: Offsets, ends: Offsets, compiled: bool) -> pa.StringArray:
    """A string array of ``data[starts[i]:ends[i]]`` (null where ``starts[i] < 0``).

    ``data`` must be valid UTF-8 and the ranges must start and end on character boundaries
    (the importer only cuts at ASCII delimiters). Offsets must fit in 31 bits (chunks are
    far smaller).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if compiled:  # every line of a perf script chunk: the kernel is ~5x faster per string
        from importers.ftrace.scan_jit import views as kernel

        return view_column(data, kernel(buf, starts, ends), starts >= 0)
    from importers.ftrace.scan_np import views as twin

    return view_column(data, twin(buf, starts, ends), starts >= 0)
