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
import polars as pl
import pyarrow as pa

from importers.ftrace.scan import (
    line_bounds,
    repeated_lines,
    scan_event_lines,
    string_column,
    view_column,
)
from importers.ftrace.scan_bytes import VIEWED_FIELDS, Text
from importers.ranges import (
    OUTSIDE,
    out_of_range,
    outside_np,
    parse_columns,
    parse_text,
    split_outside,
    ts_ns,
)

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
        raw.cast(pa.large_string())
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
    events: pl.DataFrame
    lost: pl.DataFrame
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
        empty = pl.DataFrame(
            schema={"seq": pl.Int64, "cpu": pl.Int16, "count": pl.Int64, "kind": pl.Utf8}
        )
        repeats = _repeats(buf, whole, ends, fast, seq_base, compiled)
        return ChunkLines(data, fast, empty, repeats, 0)
    lines = pl.DataFrame(
        {
            "seq": seq[~ok],
            "line": string_column(data, starts[~ok], ends[~ok], "line", compiled),
            "end": ends[~ok],
        }
    )
    slow, lost, skipped, info_lines = _classify(lines)
    if not clean:
        column = pl.Series(string_column(data, starts, ends, "l", compiled))
        bad = column.str.contains("\ufffd", literal=True)
        skipped[INVALID_UTF8] = seq[bad.to_numpy()].tolist()
    events = pl.concat([fast, slow]).sort("seq") if slow.height else fast
    skipped.update(_repeats(buf, whole, ends, events, seq_base, compiled))
    return ChunkLines(data, events, lost, skipped, info_lines)


#: skip reason of an event line printed twice (kept: which copy is the real one is unknown)
REPEATED = "exact repeat of an event line with the same timestamp (imported)"


def _repeats(
    buf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    events: pl.DataFrame,
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


def _fast_rows(
    data: Text, seq: np.ndarray, f: np.ndarray, views: np.ndarray, ends: np.ndarray
) -> pl.DataFrame:
    """Event rows from the byte scanner's fields and string views (``scan_event_lines``)."""
    comm, flags, event = (
        view_column(data, views[v], f[first] >= 0, name)
        for v, (first, name) in enumerate(
            zip(VIEWED_FIELDS, ("common_comm", "flags_str", "event"), strict=True)
        )
    )
    return pl.DataFrame(
        {
            "seq": seq,
            "common_comm": comm,
            "common_pid": f[2].astype(np.int32),
            "tgid": pl.Series(f[3].astype(np.int32)),
            "cpu": f[4].astype(np.int16),
            "flags_str": flags,
            "ts": f[7],
            "frac_width": f[9].astype(np.int8),
            "event": event,
            "args_s": f[12],
            "args_e": ends,
        }
    ).with_columns(pl.when(pl.col("tgid") < 0).then(None).otherwise(pl.col("tgid")).alias("tgid"))


def _classify(
    lines: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, list[int]], int]:
    """Lines the scanner did not take: regex event lines, markers, info, stack, garbage."""
    line = pl.col("line").str.strip_chars()
    kinds = lines.with_columns(
        pl.when((line.str.len_bytes() == 0) | line.str.contains(_INFO))
        .then(pl.lit("info"))
        .when(line.str.contains(_LOST) | line.str.contains(_DROPPED))
        .then(pl.lit("marker"))
        .when(line.str.contains(_STACK))
        .then(pl.lit("stack"))
        .otherwise(pl.lit("other"))
        .alias("kind")
    )
    other = kinds.filter(pl.col("kind") == "other")
    regular = _regex_rows(other, EVENT_LINE)
    rest = other.join(regular.select("seq"), on="seq", how="anti")
    latency = _regex_rows(rest, LATENCY_LINE)
    malformed = rest.join(latency.select("seq"), on="seq", how="anti")
    parsed = pl.concat([regular, latency])
    skipped = {
        "malformed line": malformed["seq"].to_list(),
        "stack trace line (callchains are not imported)": kinds.filter(pl.col("kind") == "stack")[
            "seq"
        ].to_list(),
    }
    lost = _markers(kinds.filter(pl.col("kind") == "marker"), skipped)
    info = int((kinds["kind"] == "info").sum())
    events, outside = split_outside(parsed)
    for reason, seqs in outside.items():
        skipped.setdefault(reason, []).extend(seqs)
    return events, lost, {k: v for k, v in skipped.items() if v}, info


#: the context columns of an event line that are read from its digits, in the order checked
CONTEXT: dict[str, pl.DataType] = {"cpu": pl.Int16(), "common_pid": pl.Int32(), "tgid": pl.Int32()}
_SKIPPED = "line skipped"


def _regex_rows(lines: pl.DataFrame, pattern: str) -> pl.DataFrame:
    """Event rows of the lines ``pattern`` matches; ``outside`` names the skip reason of a
    line whose CPU, pid, TGID or timestamp its column cannot hold (null for the others)."""
    parsed = lines.with_columns(pl.col("line").str.extract_groups(pattern).alias("g")).unnest("g")
    parsed = parsed.filter(pl.col("pid").is_not_null())
    if "tgid" not in parsed.columns:
        parsed = parsed.with_columns(pl.lit(None, pl.Utf8).alias("tgid"))
    if "tgid_after" not in parsed.columns:
        parsed = parsed.with_columns(pl.lit(None, pl.Utf8).alias("tgid_after"))
    comm = pl.col("comm").str.strip_chars()
    tgid = pl.coalesce("tgid", "tgid_after")
    digits = {
        "cpu": pl.col("cpu"),
        "common_pid": pl.col("pid"),
        "tgid": pl.when(tgid.str.contains(r"^\d+$")).then(tgid),
    }
    values, outside = parse_columns(
        {column: (text, CONTEXT[column], 10) for column, text in digits.items()}, _SKIPPED
    )
    ts, bad_ts = ts_ns(pl.col("sec"), pl.col("frac"))
    ts_reason = pl.when(bad_ts).then(pl.lit(out_of_range("timestamp in ns", pl.Int64(), _SKIPPED)))
    width = pl.col("frac").str.len_bytes().fill_null(0).cast(pl.Int64)
    return parsed.select(
        pl.col("seq"),
        known_comm(comm).alias("common_comm"),
        values["common_pid"],
        values["tgid"],
        values["cpu"],
        pl.col("flags").alias("flags_str"),
        ts.alias("ts"),
        width.cast(pl.Int8).alias("frac_width"),
        pl.col("event"),
        (pl.col("end") - pl.col("args").str.len_bytes().cast(pl.Int64)).alias("args_s"),
        pl.col("end").alias("args_e"),
        pl.coalesce(outside, ts_reason).alias(OUTSIDE),
    )


def known_comm(comm: pl.Expr) -> pl.Expr:
    """``comm`` with the kernel's placeholders for a name it did not know (``<...>``, ``<pid>``)
    read as null."""
    return pl.when(comm.str.contains(PLACEHOLDER_COMM)).then(None).otherwise(comm)


def _markers(rest: pl.DataFrame, skipped: dict[str, list[int]]) -> pl.DataFrame:
    """``CPU:n [LOST n EVENTS]`` (kernel) and ``CPU:n [n EVENTS DROPPED]`` (trace-cmd).

    A marker whose CPU number no CPU column holds is skipped and counted; one whose count does
    not fit keeps its place with an unknown count (the loss itself is certain), also counted.
    """
    stripped = pl.col("line").str.strip_chars()
    found = rest.with_columns(
        stripped.str.extract_groups(_LOST).alias("lost"),
        stripped.str.extract_groups(_DROPPED).alias("dropped"),
    )
    parts = []
    for kind in ("lost", "dropped"):
        fields = pl.col(kind).struct
        cpu, bad_cpu = parse_text(fields.field("cpu"), pl.Int16())
        count, bad_count = parse_text(fields.field("count"), pl.Int64())
        parts.append(
            found.filter(fields.field("cpu").is_not_null()).select(
                "seq",
                cpu.alias("cpu"),
                count.alias("count"),
                pl.lit(kind).alias("kind"),
                bad_cpu.alias("bad_cpu"),
                bad_count.alias("bad_count"),
            )
        )
    markers = pl.concat(parts)
    for flag, reason in (
        ("bad_cpu", out_of_range("lost-events marker CPU", pl.Int16(), "marker skipped")),
        ("bad_count", out_of_range("lost-events count", pl.Int64(), "marker kept, count unknown")),
    ):
        seqs = markers.filter(flag)["seq"].to_list()
        if seqs:
            skipped.setdefault(reason, []).extend(seqs)
    return markers.filter(~pl.col("bad_cpu")).drop("bad_cpu", "bad_count")
