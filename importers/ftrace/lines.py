"""Tokenizer of ftrace text lines (kernel ``trace``/``trace_pipe`` and ``trace-cmd report``).

Every event line is split into its context — comm, pid, TGID, CPU, flags, timestamp, event
name — and the byte range of its payload, following ``trace_print_context()``
(kernel/trace/trace_output.c) and trace-cmd's ``trace_show_data()`` (tracecmd/trace-read.c); see
``formats.md`` §1.3-§1.6. The byte scanner of :mod:`importers.ftrace.scan` handles the common
shapes; the few lines it does not accept go through the regex grammar below, which is the
reference for every variant (TGID before or after the CPU, 0-8 flag characters, ``-0x1`` raw
flags, µs / ns / raw-counter timestamps, ``--ts-diff``, ``-l`` latency lines), and then through
the classification of non-event lines (lost-event markers, headers, stack traces, garbage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from importers.arrow_compute import (
    binary_length,
    cast,
    cast_table,
    coalesce,
    fill_null,
    filter_rows,
    if_else,
    is_valid,
    match_substring,
    match_substring_regex,
    sort_indices,
    take,
    utf8_trim_whitespace,
)
from importers.ftrace.groups import groups
from importers.ftrace.scan import (
    line_bounds,
    repeated_lines,
    scan_event_lines,
    string_column,
    view_column,
)
from importers.ftrace.scan_bytes import VIEWED_FIELDS, Bools, Text
from importers.ranges import out_of_range, outside_np, read_text, read_ts

# One pattern for every event-line variant. The lazy comm makes the *last* "-digits" before
# the CPU column the pid, so comms such as "foo-12" and "CPU 0/KVM" survive.
EVENT_LINE = (
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>\d+|-+)\)\s+)?\[(?P<cpu>\d+)\]\s*"
    r"(?:\(\s*(?P<tgid_after>\d+|-+)\)\s+)?(?:(?P<flags>-0x[0-9a-fA-F]+|[.a-zA-Z0-9]{3,8})\s+)?"
    r"(?P<sec>\d{1,18})(?:\.(?P<frac>\d{1,9}))?:\s+(?:\(\+\d+\)\s+)?(?:(?P<event>[^:\s]+):)?"
    r"\s*(?P<args>.*)$"
)
# `trace-cmd report -l` / latency-format lines: 8-char comm, CPU without brackets, flags glued
# to the CPU ("<idle>-0       0d.h1. 106467.859747: function: ...") [trace-read.c time_format].
LATENCY_LINE = (
    r"^\s*(?P<comm>.{1,8}?)-(?P<pid>\d+)\s+(?P<cpu>\d+)(?P<flags>-0x[0-9a-fA-F]+|[.a-zA-Z0-9]{0,8})"
    r"\s+(?P<sec>\d{1,18})(?:\.(?P<frac>\d{1,9}))?:\s+(?:(?P<event>[^:\s]+):)?\s*(?P<args>.*)$"
)
_LOST = r"^CPU:(?P<cpu>\d+) \[LOST (?P<count>\d+) EVENTS\]"
_DROPPED = r"^CPU:(?P<cpu>\d+) \[(?:(?P<count>\d+) )?EVENTS DROPPED\]"
_INFO = (
    r"^(?:#|cpus=\d+$|version = |CPU:\d+ \[SUBBUFFER START\]|CPU \d+ is empty"
    r"|##### CPU \d+ buffer started)"
)
_STACK = r"^\s*(?:=>|<stack trace>|<user stack trace>)"
#: skip reason of a line whose invalid UTF-8 bytes were replaced (U+FFFD) and then imported
INVALID_UTF8 = "invalid UTF-8 replaced (line imported)"
PLACEHOLDER_COMM = r"^<(?:\.\.\.|\d+)>$"


@dataclass
class Preamble:
    """Facts from the header/preamble lines at the top of a text capture."""

    cpus: int | None = None
    version: str | None = None
    tracer: str | None = None
    entries: int | None = None
    written: int | None = None
    instances: list[str] = field(default_factory=list)


_PREAMBLE_CPUS = re.compile(rb"^(?:(?P<inst>\S.*?): |\s*)cpus=(?P<n>\d+)\s*$")
_PREAMBLE_VERSION = re.compile(rb"^version = (?P<v>\S+)")
_HEADER_TRACER = re.compile(rb"^# tracer: (?P<t>\S+)")
_HEADER_ENTRIES = re.compile(rb"^# entries-in-buffer/entries-written: (\d+)/(\d+)\s+#P:(\d+)")


def scan_preamble(head: bytes) -> Preamble:
    """Read the preamble of the first lines: ``cpus=``, ``version =``, ``# tracer:``, ``#P:``.

    Named buffer instances of ``trace-cmd report`` announce themselves as ``inst: cpus=N``
    before any event (trace-read.c prints the ``cpus=`` line per handle).
    """
    pre = Preamble()
    for line in head.split(b"\n")[:400]:
        line = line.rstrip(b"\r")
        if m := _PREAMBLE_CPUS.match(line):
            pre.cpus = max(pre.cpus or 0, int(m.group("n")))
            inst = m.group("inst")
            if inst and inst.decode("utf-8", "replace") not in pre.instances:
                pre.instances.append(inst.decode("utf-8", "replace"))
        elif m := _PREAMBLE_VERSION.match(line):
            pre.version = m.group("v").decode("utf-8", "replace")
        elif m := _HEADER_TRACER.match(line):
            pre.tracer = m.group("t").decode("utf-8", "replace")
        elif m := _HEADER_ENTRIES.match(line):
            pre.entries, pre.written, pre.cpus = (int(g) for g in m.groups())
    return pre


def valid_utf8(data: Text) -> tuple[Text, bool]:
    """``data`` if it is valid UTF-8, else a copy with invalid bytes replaced (and False)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    raw = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        cast(raw, pa.large_string())
    except pa.ArrowInvalid:
        return bytes(data).decode("utf-8", "replace").encode("utf-8"), False
    return data, True


@dataclass
class ChunkLines:
    """The lines of one chunk, tokenized.

    ``data`` is the chunk text (valid UTF-8) that ``args_s``/``args_e`` point into.
    ``events``: one row per event line — ``seq, common_comm, common_pid, tgid, cpu,
    flags_str, ts, frac_width, event, args_s, args_e``.
    ``lost``: lost/dropped markers — ``seq, cpu, count, kind``.
    ``skipped``: reason -> seqs of lines that could not be used.
    """

    data: Text
    events: pa.Table
    lost: pa.Table
    skipped: dict[str, list[int]]
    info_lines: int


def tokenize(
    data: bytes | memoryview,
    seq_base: int,
    instances: list[str],
    *,
    scanner: bool = True,
    compiled: bool = False,
) -> ChunkLines:
    """Tokenize one chunk whose first line has sequence number ``seq_base``.

    ``scanner=False`` sends every line through the regex grammar, the reference the byte
    scanner must agree with; ``compiled`` runs the scanner's numba kernels instead of numpy
    (:mod:`importers.ftrace.scan`).
    """
    data, clean = valid_utf8(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = line_bounds(buf, compiled)
    whole = starts  # repeats compare whole lines, instance prefix included
    for prefix in instances:  # "inst: " prefixes of multi-buffer trace-cmd report
        starts = _strip_prefix(buf, starts, ends, (prefix + ": ").encode())
    ok, f, views = scan_event_lines(buf, starts, ends, compiled)
    # numbers the context columns cannot hold go to the regex path, which counts them
    ok &= ~(
        outside_np(f[4], CONTEXT["cpu"])
        | outside_np(f[2], CONTEXT["common_pid"])
        | outside_np(f[3], CONTEXT["tgid"])
    )
    if not scanner:
        ok[:] = False
    seq = np.arange(seq_base, seq_base + starts.size, dtype=np.int64)
    every = bool(ok.all())  # the usual chunk: every line an event the scanner took
    if every:
        fast = _fast_rows(data, seq, f, views, ends)
    else:
        fast = _fast_rows(data, seq[ok], f[:, ok], views[:, ok], ends[ok])

    if clean and every:
        repeats = _repeats(buf, whole, ends, fast, seq_base, compiled)
        return ChunkLines(data, fast, NO_MARKERS, repeats, 0)
    line = string_column(data, starts[~ok], ends[~ok], compiled)
    slow, lost, skipped, info_lines = _classify(seq[~ok], line, ends[~ok])
    if not clean:
        column = string_column(data, starts, ends, compiled)
        bad = match_substring(column, "\ufffd").to_numpy(zero_copy_only=False)
        skipped[INVALID_UTF8] = seq[bad].tolist()
    events = fast
    if slow.num_rows:
        events = pa.concat_tables([fast, slow])
        events = take(events, sort_indices(events["seq"])).combine_chunks()
    skipped.update(_repeats(buf, whole, ends, events, seq_base, compiled))
    return ChunkLines(data, events, lost, skipped, info_lines)


#: skip reason of an event line printed twice (kept: which copy is the real one is unknown)
REPEATED = "exact repeat of an event line with the same timestamp (imported)"


def _repeats(
    buf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    events: pa.Table,
    seq_base: int,
    compiled: bool,
) -> dict[str, list[int]]:
    """``{REPEATED: seqs}`` of the event lines that repeat an earlier one (or nothing)."""
    seq = events["seq"].to_numpy()
    rows = seq - seq_base
    again = repeated_lines(buf, starts[rows], ends[rows], events["ts"].to_numpy(), compiled)
    return {REPEATED: seq[again].tolist()} if again.any() else {}


def _strip_prefix(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, prefix: bytes
) -> np.ndarray:
    want = np.frombuffer(prefix, dtype=np.uint8)
    room = (ends - starts) >= want.size
    idx = np.minimum(starts[:, None] + np.arange(want.size)[None, :], buf.size - 1)
    hit = room & (buf[idx] == want[None, :]).all(axis=1)
    return np.where(hit, starts + want.size, starts)


#: the lost-events markers of a chunk that has none
NO_MARKERS = pa.schema(
    [("seq", pa.int64()), ("cpu", pa.int16()), ("count", pa.int64()), ("kind", pa.string())]
).empty_table()


def _fast_rows(
    data: Text, seq: np.ndarray, f: np.ndarray, views: np.ndarray, ends: np.ndarray
) -> pa.Table:
    """Event rows from the byte scanner's fields and string views (``scan_event_lines``)."""
    comm, flags, event = (
        view_column(data, views[v], f[first] >= 0) for v, first in enumerate(VIEWED_FIELDS)
    )
    tgid = f[3].astype(np.int32)
    return pa.table(
        {
            "seq": seq,
            "common_comm": comm,
            "common_pid": f[2].astype(np.int32),
            "tgid": pa.array(tgid, mask=tgid < 0),
            "cpu": f[4].astype(np.int16),
            "flags_str": flags,
            "ts": f[7],
            "frac_width": f[9].astype(np.int8),
            "event": event,
            "args_s": f[12],
            "args_e": ends,
        }
    )


def _classify(
    seq: np.ndarray, line: pa.StringArray, end: np.ndarray
) -> tuple[pa.Table, pa.Table, dict[str, list[int]], int]:
    """Lines the scanner did not take: regex event lines, markers, info, stack, garbage."""
    stripped = utf8_trim_whitespace(line)

    def matches(regex: str) -> Bools:
        found: Bools = match_substring_regex(stripped, regex).to_numpy(zero_copy_only=False)
        return found

    info = (binary_length(stripped).to_numpy() == 0) | matches(_INFO)
    marker = ~info & (matches(_LOST) | matches(_DROPPED))
    stack = ~info & ~marker & matches(_STACK)
    other = np.flatnonzero(~info & ~marker & ~stack)
    regular, hit, outside = _regex_rows(seq[other], take(line, other), end[other], EVENT_LINE)
    rest = other[~hit]
    latency, hit, late_outside = _regex_rows(seq[rest], take(line, rest), end[rest], LATENCY_LINE)
    skipped = {
        "malformed line": seq[rest[~hit]].tolist(),
        "stack trace line (callchains are not imported)": seq[stack].tolist(),
    }
    marked = np.flatnonzero(marker)
    lost = _markers(seq[marked], take(stripped, marked), skipped)
    for reason, seqs in [*outside.items(), *late_outside.items()]:
        skipped.setdefault(reason, []).extend(seqs)
    events = pa.concat_tables([regular, latency])
    return events, lost, {k: v for k, v in skipped.items() if v}, int(info.sum())


#: the context columns of an event line that are read from its digits, in the order checked
CONTEXT: dict[str, pa.DataType] = {"cpu": pa.int16(), "common_pid": pa.int32(), "tgid": pa.int32()}
_SKIPPED = "line skipped"
_BAD_TS = out_of_range("timestamp in ns", pa.int64(), _SKIPPED)


def _regex_rows(
    seq: np.ndarray, line: pa.StringArray, end: np.ndarray, pattern: str
) -> tuple[pa.Table, np.ndarray, dict[str, list[int]]]:
    """Event rows of the lines ``pattern`` matches, which lines it matched, and per skip reason
    the seqs of matched lines whose CPU, pid, TGID or timestamp its column cannot hold (the
    first such field names the reason; those lines are not rows)."""
    g = groups(line, pattern)
    hit = is_valid(g["pid"]).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(hit)
    g = {name: take(column, rows) for name, column in g.items()}
    seq, end = seq[rows], end[rows]
    tgid = g.get("tgid", pa.nulls(rows.size, pa.string()))
    if "tgid_after" in g:
        tgid = coalesce(tgid, g["tgid_after"])
    digits = {
        "cpu": g["cpu"],
        "common_pid": g["pid"],
        "tgid": if_else(match_substring_regex(tgid, r"^\d+$"), tgid, None),
    }
    reasons = [out_of_range(column, CONTEXT[column], _SKIPPED) for column in digits]
    reasons.append(_BAD_TS)
    reason = np.full(rows.size, -1)  # the first field out of range, as an index of reasons
    values = {}
    for i, (column, text) in enumerate(digits.items()):
        values[column], bad = read_text(text, CONTEXT[column])
        reason[bad & (reason < 0)] = i
    ts, bad_ts = read_ts(g["sec"], g["frac"])
    reason[bad_ts & (reason < 0)] = len(digits)
    width = cast(fill_null(binary_length(g["frac"]), 0), pa.int8())
    args_s = end - binary_length(g["args"]).to_numpy(zero_copy_only=False).astype(np.int64)
    table = pa.table(
        {
            "seq": seq,
            "common_comm": known_comm(utf8_trim_whitespace(g["comm"])),
            "common_pid": values["common_pid"],
            "tgid": values["tgid"],
            "cpu": values["cpu"],
            "flags_str": g["flags"],
            "ts": ts,
            "frac_width": width,
            "event": g["event"],
            "args_s": args_s,
            "args_e": end,
        }
    )
    outside: dict[str, list[int]] = {}
    for row in np.flatnonzero(reason >= 0):  # in line order: reasons in order of first use
        outside.setdefault(reasons[reason[row]], []).append(int(seq[row]))
    return filter_rows(table, pa.array(reason < 0)), hit, outside


def known_comm(comm: pa.Array) -> pa.Array:
    """``comm`` with the kernel's placeholders for a name it did not know (``<...>``, ``<pid>``)
    read as null."""
    return if_else(match_substring_regex(comm, PLACEHOLDER_COMM), None, comm)


def _markers(seq: np.ndarray, stripped: pa.StringArray, skipped: dict[str, list[int]]) -> pa.Table:
    """``CPU:n [LOST n EVENTS]`` (kernel) and ``CPU:n [n EVENTS DROPPED]`` (trace-cmd).

    A marker whose CPU number no CPU column holds is skipped and counted; one whose count does
    not fit keeps its place with an unknown count (the loss itself is certain), also counted.
    """
    parts, bad_cpus, bad_counts = [], [], []
    for kind, regex in (("lost", _LOST), ("dropped", _DROPPED)):
        g = groups(stripped, regex)
        rows = np.flatnonzero(is_valid(g["cpu"]).to_numpy(zero_copy_only=False))
        cpu, bad_cpu = read_text(take(g["cpu"], rows), pa.int16())
        count, bad_count = read_text(take(g["count"], rows), pa.int64())
        bad_cpus.append(seq[rows][bad_cpu])
        bad_counts.append(seq[rows][bad_count])
        kinds = pa.array([kind] * rows.size, pa.string())
        table = pa.table({"seq": seq[rows], "cpu": cpu, "count": count, "kind": kinds})
        parts.append(filter_rows(table, pa.array(~bad_cpu)))
    for seqs, reason in (
        (bad_cpus, out_of_range("lost-events marker CPU", pa.int16(), "marker skipped")),
        (bad_counts, out_of_range("lost-events count", pa.int64(), "marker kept, count unknown")),
    ):
        found = np.concatenate(seqs).tolist()
        if found:
            skipped.setdefault(reason, []).extend(found)
    return cast_table(pa.concat_tables(parts), NO_MARKERS.schema)
