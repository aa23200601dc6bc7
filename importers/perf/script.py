"""``perf script`` text into canonical tables (formats.md §4.7); perf stat is in
:mod:`importers.perf.stat`.

A sample line is ``[comm] [pid/]tid [cpu] time: [period] event: rest``
(``perf_sample__fprintf_start``): comm is right-aligned and may hold spaces, so a line is
anchored on the numbers around the timestamp instead of split on whitespace. Tracepoint lines
(``system:event: fields``) of the modelled events go through the ftrace payload grammars
(:func:`importers.ftrace.payloads.parse_payloads`) into the typed tables; other tracepoints go
to ``events``; hardware/software samples go to ``pmu_samples`` (``ip`` is the first hex word of
the rest). Callchain lines (indented addresses under a sample) and ``perf script`` side-band
lines are counted in the metadata; ``SWITCH`` lines become ``perf_switches`` rows.

``seq`` is the 0-based line number; times are integers (µs or ns digits, never floats).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from importers.capture import Capture, CaptureMetadata
from importers.detect import ProgressFn
from importers.errors import CaptureFormatError
from importers.ftrace.lines import INVALID_UTF8, PLACEHOLDER_COMM, REPEATED, valid_utf8
from importers.ftrace.payloads import parse_payloads
from importers.ftrace.scan import line_bounds, repeated_lines, string_column
from importers.ftrace.scan_bytes import Text
from importers.ftrace.source import TextChunk, open_text
from importers.ranges import OUTSIDE, out_of_range, parse_columns, split_outside, ts_ns
from importers.schema import TYPED_TABLES, conform
from importers.skips import FIRST_LOCATIONS, SkipLog
from importers.tasks import name_spans, sightings, typed_sightings

_SAMPLE = (
    r"^(?P<comm>.*?)\s*(?:(?P<tgid>-?\d+)/)?(?P<pid>-?\d+)\s+(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?P<sec>\d+)\.(?P<frac>\d+):\s+(?P<body>.*)$"
)
_EVENT = r"^(?:(?P<period>\d+)\s+)?(?P<event>\S+?):(?:\s+(?P<args>.*))?$"
_SWITCH = (
    r"^PERF_RECORD_SWITCH(?:_CPU_WIDE)? (?P<dir>IN|OUT)\s*(?P<preempt>preempt)?\s*"
    r"(?:(?:next|prev) pid/tid:\s*(?P<np>-?\d+)/(?P<nt>-?\d+))?"
)
_TRACEPOINT = r"^\w+:\w+$"
# perf event modifiers (cycles:u, cycles:ppp): not tracepoint names
_MODIFIERS = r":[ukhHGIpPSDeW]+$"
_CALLCHAIN = r"^\s+[0-9a-fA-F]+\s"
_HEADER = re.compile(r"^#\s*(?P<key>[^:]+?)\s*:\s*(?P<value>.*)$")


def read_perf_script(
    path: Path,
    *,
    fmt: str = "perf-script",
    strict: bool = False,
    progress: ProgressFn | None = None,
) -> Capture:
    """Import ``perf script`` text (default fields or common ``-F`` lists, with or without the
    ``# ========`` header, callchains skipped and counted).

    Raises :class:`CaptureFormatError` when no sample line is found.
    """
    source = open_text(path, "ftrace-text", progress)
    skips = SkipLog(str(path), strict)
    header: dict[str, Any] = {}
    parts: dict[str, list[pl.DataFrame]] = {}
    counts = {"samples": 0, "callchain_lines": 0, "side_band_lines": 0}
    for chunk in source.chunks:
        if not header:
            header = _header(bytes(chunk.data[: 1 << 16]))
        _chunk(chunk, parts, counts, skips)
        chunk.release()
    if counts["samples"] == 0:
        raise CaptureFormatError(
            f"{path}: no perf script sample line found (expected 'comm pid/tid [cpu] time: "
            "event: ...'); is this `perf script` output?"
        )
    seen = parts.pop("_sightings", [])
    frames = {name: pl.concat(chunks, how="diagonal_relaxed") for name, chunks in parts.items()}
    tables = {name: conform(name, frame.to_arrow()) for name, frame in frames.items()}
    typed = {name: frame for name, frame in frames.items() if name in TYPED_TABLES}
    tasks = name_spans(
        [
            *typed_sightings(typed),
            *(sightings(f, "pid", "comm", "perf script", tgid="tgid") for f in seen),
        ]
    )
    if tasks.num_rows:
        tables["tasks"] = conform("tasks", tasks)
    tables = {name: t for name, t in tables.items() if t.num_rows}
    meta = _metadata(path, source.sha256(), tables, header, counts, skips)
    return Capture(metadata=meta, tables=tables)


def _chunk(
    chunk: TextChunk,
    parts: dict[str, list[pl.DataFrame]],
    counts: dict[str, int],
    skips: SkipLog,
) -> None:
    data, clean = valid_utf8(chunk.data)
    buf = np.frombuffer(data, np.uint8)
    starts, ends = line_bounds(buf, chunk.compiled)
    lines = pl.DataFrame(
        {
            "seq": np.arange(len(starts), dtype=np.int64) + chunk.seq_base,
            "line": string_column(data, starts, ends, chunk.compiled),
            "end": ends,
        }
    )
    if not clean:
        replaced = lines.filter(pl.col("line").str.contains("\ufffd", literal=True))["seq"]
        skips.add(
            INVALID_UTF8, [chunk.line_of(s) for s in replaced.head(FIRST_LOCATIONS)], replaced.len()
        )
    ts, bad_ts = ts_ns(pl.col("sec"), pl.col("frac"))
    parsed = (
        lines.with_columns(pl.col("line").str.extract_groups(_SAMPLE).alias("g"))
        .unnest("g")
        .with_columns(pl.col("body").str.extract_groups(_EVENT).alias("e"))
        .unnest("e")
        .with_columns(ts.alias("ts"), pl.when(bad_ts).then(pl.lit(_BAD_TS)).alias(OUTSIDE))
    )
    side = parsed["body"].str.starts_with("PERF_RECORD_").fill_null(False)
    samples = parsed.filter(pl.col("event").is_not_null() & ~side)
    counts["samples"] += samples.height
    counts["side_band_lines"] += int(side.sum())
    rows = samples["seq"].to_numpy() - chunk.seq_base
    times = samples["ts"].fill_null(-1).to_numpy()
    again = repeated_lines(buf, starts[rows], ends[rows], times, chunk.compiled)
    if again.any():
        seqs = samples["seq"].filter(again)
        skips.add(REPEATED, [chunk.line_of(q) for q in seqs.head(FIRST_LOCATIONS)], seqs.len())
    blank = lines["line"].str.strip_chars() == ""
    comment = lines["line"].str.starts_with("#")
    chain = lines["line"].str.contains(_CALLCHAIN) & parsed["sec"].is_null()
    counts["callchain_lines"] += int(chain.sum())
    bad = lines.filter(~blank & ~comment & ~chain & parsed["sec"].is_null())
    if bad.height:
        skips.add(
            "line that is neither a perf script sample, a callchain nor a header",
            [chunk.line_of(s) for s in bad["seq"].head(FIRST_LOCATIONS).to_list()],
            count=bad.height,
        )
    if samples.is_empty() and not side.any():
        return
    base = _fitted(_context(samples), skips, chunk)
    tp = base["event"].str.contains(_TRACEPOINT) & ~base["event"].str.contains(_MODIFIERS)
    _tracepoints(data, base.filter(tp), parts, skips, chunk)
    _pmu_samples(base.filter(~tp), parts, skips, chunk)
    _switches(parsed.filter(side), parts, skips, chunk)
    parts.setdefault("_sightings", []).append(base.select("pid", "tgid", "comm", "ts"))


_SKIPPED = "line skipped"
_BAD_TS = out_of_range("timestamp in ns", pl.Int64(), _SKIPPED)


def _fitted(rows: pl.DataFrame, skips: SkipLog, chunk: TextChunk) -> pl.DataFrame:
    """``rows`` without the lines whose numbers their columns cannot hold, which are counted
    (:mod:`importers.ranges`)."""
    rows, outside = split_outside(rows)
    for reason, seqs in outside.items():
        skips.add(reason, [chunk.line_of(q) for q in seqs[:FIRST_LOCATIONS]], len(seqs))
    return rows


def _context(samples: pl.DataFrame) -> pl.DataFrame:
    comm = pl.col("comm").str.strip_chars()
    values, outside = parse_columns(
        {
            "cpu": (pl.col("cpu"), pl.Int16(), 10),
            "pid": (pl.col("pid"), pl.Int32(), 10),
            "tgid": (pl.col("tgid"), pl.Int32(), 10),
            "period": (pl.col("period"), pl.UInt64(), 10),
        },
        _SKIPPED,
    )
    return samples.select(
        "seq",
        "ts",
        values["cpu"],
        values["pid"],
        values["tgid"],
        # the kernel's placeholders for a name it did not know (<...>, <pid>) read as null
        pl.when((comm != "") & ~comm.str.contains(PLACEHOLDER_COMM)).then(comm).alias("comm"),
        values["period"],
        "event",
        pl.col("args").fill_null(""),
        "end",
        pl.coalesce(OUTSIDE, outside).alias(OUTSIDE),
    )


def _tracepoints(
    data: Text,
    rows: pl.DataFrame,
    parts: dict[str, list[pl.DataFrame]],
    skips: SkipLog,
    chunk: TextChunk,
) -> None:
    if rows.is_empty():
        return
    split = rows["event"].str.split_exact(":", 1).struct.rename_fields(["system", "name"])
    rows = rows.with_columns(split.struct.field("system"), split.struct.field("name"))
    events = rows.select(
        "seq",
        pl.col("name").alias("event"),
        "ts",
        "cpu",
        pl.col("pid").alias("common_pid"),
        (pl.col("end") - pl.col("args").str.len_bytes().cast(pl.Int64)).alias("args_s"),
        pl.col("end").alias("args_e"),
    )
    # the payload grammars work on Arrow (large strings: few kernels take polars' views)
    arrow = events.to_arrow(compat_level=pl.CompatLevel.oldest())
    payloads = parse_payloads(data, arrow, compiled=chunk.compiled)
    for name, table in payloads.typed.items():
        parts.setdefault(name, []).append(_frame(table))
    reasons = {
        f"{e} payload not understood (kept in events)": q for e, q in payloads.unparsed.items()
    }
    for reason, seqs in {**reasons, **payloads.counted}.items():
        skips.add(reason, [chunk.line_of(s) for s in seqs[:FIRST_LOCATIONS]], count=len(seqs))
    rest = rows.join(_frame(payloads.rest.select(["seq"])), on="seq", how="semi")
    parts.setdefault("events", []).append(
        rest.select(
            "ts",
            "seq",
            "cpu",
            pl.col("pid").alias("common_pid"),
            "tgid",
            "comm",
            pl.col("name").alias("event"),
            "system",
            pl.col("args").str.strip_chars_end(),
        )
    )


def _frame(table: pa.Table) -> pl.DataFrame:
    """A table of the payload grammars as a polars frame, for the frames of this importer."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _pmu_samples(
    rows: pl.DataFrame, parts: dict[str, list[pl.DataFrame]], skips: SkipLog, chunk: TextChunk
) -> None:
    if rows.is_empty():
        return
    ip, outside = parse_columns(
        {"ip": (pl.col("args").str.extract(r"^\s*([0-9a-fA-F]+)\b", 1), pl.UInt64(), 16)},
        _SKIPPED,
    )
    samples = rows.select(
        "ts",
        "seq",
        "cpu",
        "pid",
        "tgid",
        "event",
        "period",
        pl.col("event").str.extract(r"^([\w.-]+)/", 1).alias("pmu"),
        ip["ip"],
        outside,
    )
    parts.setdefault("pmu_samples", []).append(_fitted(samples, skips, chunk))


def _switches(
    rows: pl.DataFrame, parts: dict[str, list[pl.DataFrame]], skips: SkipLog, chunk: TextChunk
) -> None:
    sw = rows.with_columns(pl.col("body").str.extract_groups(_SWITCH).alias("s")).unnest("s")
    sw = sw.filter(pl.col("dir").is_not_null())
    if sw.is_empty():
        return
    values, outside = parse_columns(
        {
            "cpu": (pl.col("cpu"), pl.Int16(), 10),
            "pid": (pl.col("tgid"), pl.Int32(), 10),
            "tid": (pl.col("pid"), pl.Int32(), 10),
            "next_prev_pid": (pl.col("np"), pl.Int32(), 10),
            "next_prev_tid": (pl.col("nt"), pl.Int32(), 10),
        },
        _SKIPPED,
    )
    switches = sw.select(
        "ts",
        "seq",
        values["cpu"],
        values["pid"],
        values["tid"],
        (pl.col("dir") == "OUT").alias("out"),
        pl.col("preempt").is_not_null().alias("preempt"),
        values["next_prev_pid"],
        values["next_prev_tid"],
        pl.coalesce(OUTSIDE, outside).alias(OUTSIDE),
    )
    parts.setdefault("perf_switches", []).append(_fitted(switches, skips, chunk))


def _header(head: bytes) -> dict[str, Any]:
    """``# key : value`` lines of the ``# ========`` block (perf report --header / simpleperf)."""
    out: dict[str, Any] = {}
    events: list[str] = []
    for raw in head.decode("utf-8", "replace").splitlines():
        if not raw.startswith("#"):
            if raw.strip():
                break
            continue
        m = _HEADER.match(raw)
        if not m:
            continue
        key, value = m["key"].strip(), m["value"].strip()
        if key == "event":
            events.append(value)
        else:
            out.setdefault(key, value)
    if events:
        out["event"] = events
    return out


def _metadata(
    path: Path,
    sha256: str,
    tables: dict[str, pa.Table],
    header: dict[str, Any],
    counts: dict[str, int],
    skips: SkipLog,
) -> CaptureMetadata:
    ts = [t.column("ts") for t in tables.values() if "ts" in t.column_names and t.num_rows]
    first = min(int(pa.compute.min(c).as_py()) for c in ts) if ts else None
    last = max(int(pa.compute.max(c).as_py()) for c in ts) if ts else None
    cpus = header.get("nrcpus avail")
    return CaptureMetadata(
        source_path=str(path),
        source_sha256=sha256,
        format="perf-script",
        importer="importers.perf.script:read_perf_script",
        clock="perf",
        ts_unit="ns",
        ts_resolution_ns=1000,
        cpu_count=int(cpus) if isinstance(cpus, str) and cpus.isdigit() else None,
        first_ts=first,
        last_ts=last,
        skipped=skips.to_json(),
        extra={"perf_header": header, **counts},
    )
