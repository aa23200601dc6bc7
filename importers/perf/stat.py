"""``perf stat -x,`` CSV and ``perf stat -j`` JSON lines into ``pmu_counts`` (formats.md §4.8).

CSV: ``[interval] [aggregation id] [aggregated CPUs] value,unit,event,run time,pcnt running,
[metric value],[metric unit]`` (perf-stat.txt "CSV FORMAT"); which optional leading fields a
line has depends on ``-I``/``-A``/``--per-*``, so the value is found as the first field
followed by a unit, an event name and a numeric run time (at most 4 leading fields). CSV is
parsed as whole columns; JSON lines are decoded one by one (``json``), with a string
``counter-value``; the invalid trailing-comma lines of some perf releases are repaired before
decoding. The values of both are then read as whole columns.

Values: ``<not counted>`` / ``<not supported>`` become the ``status`` with a null value.
Counters print integers; clock events print milliseconds, stored exactly as nanoseconds (unit
``ns``); any other fractional value cannot be a uint64 count and is skipped and counted.
Lines with no value (metric-only continuation lines) are counted in the metadata.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from importers.capture import Capture, CaptureMetadata
from importers.detect import ProgressFn
from importers.errors import CaptureFormatError
from importers.ftrace.lines import INVALID_UTF8
from importers.ranges import (
    OUTSIDE,
    out_of_range,
    parse_columns,
    parse_text,
    split_outside,
    ts_ns,
)
from importers.schema import conform
from importers.skips import FIRST_LOCATIONS, SkipLog


def read_perf_stat(
    path: Path,
    *,
    fmt: str = "perf-stat-csv",
    strict: bool = False,
    progress: ProgressFn | None = None,
) -> Capture:
    """Import ``perf stat -x,`` (``fmt="perf-stat-csv"``) or ``-j`` (``"perf-stat-json"``)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CaptureFormatError(f"{path}: cannot read ({exc.strerror})") from None
    lines = pl.DataFrame(
        {"line": raw.decode("utf-8", errors="replace").splitlines()},
        schema={"line": pl.Utf8},
    ).with_row_index("seq")
    lines = lines.with_columns(pl.col("seq").cast(pl.Int64), pl.col("line").str.strip_chars())
    lines = lines.filter((pl.col("line") != "") & ~pl.col("line").str.starts_with("#"))
    found: list[tuple[str, pl.Series]] = []  # (skip reason, seqs of the lines)
    parse = _json_fields if fmt == "perf-stat-json" else _csv_fields
    fields = _numbers(parse(lines, found), found)
    counters = lines.join(fields.filter(pl.col("event").is_not_null()), on="seq", how="semi")
    for reason, bad in (
        (INVALID_UTF8, counters["line"].str.contains("\ufffd", literal=True)),
        (REPEATED_LINE, ~counters["line"].is_first_distinct()),
    ):
        if bad.any():
            found.append((reason, counters["seq"].filter(bad)))
    metric_lines = fields.filter(pl.col("event").is_null()).height
    frame = _values(fields.filter(pl.col("event").is_not_null()), found)
    skips = SkipLog(str(path), strict)
    for reason, seqs in sorted(found, key=lambda item: int(item[1].min())):  # type: ignore[arg-type]
        skips.add(reason, [f"line {s + 1}" for s in seqs.head(FIRST_LOCATIONS)], seqs.len())
    if frame.is_empty():
        raise CaptureFormatError(
            f"{path}: no perf stat counter line found; expected `perf stat -x,` CSV or "
            "`perf stat -j` JSON lines"
        )
    frame = frame.with_columns(
        pl.col("event").str.extract(r"^([\w.-]+)/", 1).alias("pmu"),
        pl.lit(f"perf stat {'json' if fmt == 'perf-stat-json' else 'csv'}").alias("source"),
    )
    table = conform("pmu_counts", frame.to_arrow())
    aggregates = sorted(set(frame["aggregate"].drop_nulls().to_list()))
    meta = CaptureMetadata(
        source_path=str(path),
        source_sha256=hashlib.sha256(raw).hexdigest(),
        format=fmt,
        importer="importers.perf.stat:read_perf_stat",
        ts_resolution_ns=1,
        cpu_count=None,
        first_ts=frame["ts"].min(),  # type: ignore[arg-type]
        last_ts=frame["ts"].max(),  # type: ignore[arg-type]
        skipped=skips.to_json(),
        extra={"metric_only_lines": metric_lines, "aggregates": aggregates or None},
    )
    return Capture(metadata=meta, tables={"pmu_counts": table})


#: Columns both parsers produce: the printed fields as text (``ts`` the interval in seconds,
#: ``cpu`` its digits), read by :func:`_numbers` and :func:`_values`. A null ``event`` marks a
#: metric-only continuation line.
_FIELDS = {
    "seq": pl.Int64,
    "ts": pl.Utf8,
    "cpu": pl.Utf8,
    "aggregate": pl.Utf8,
    "value": pl.Utf8,
    "unit": pl.Utf8,
    "event": pl.Utf8,
    "time_running_ns": pl.Utf8,
}
_NUMBER = r"^-?\d+(?:\.\d+)?$"
_DIGITS = r"^\d+$"
_CPU = r"^CPU(\d+)$"
_AGGREGATE = r"^(?:S\d+(?:-D\d+)?(?:-C\d+)?|N\d+|.+-\d+)$"
_STATUS = {"<not counted>": "not counted", "<not supported>": "not supported"}
#: Leading fields a CSV line can have before the value: interval, aggregation id, aggregated
#: CPU count (perf-stat.txt "CSV FORMAT"); one spare.
_MAX_PREFIX = 4
_U64_MAX = (1 << 64) - 1
#: perf stat prints each counter once per interval, CPU or aggregate: a second copy is a repeat
REPEATED_LINE = "exact repeat of an earlier perf stat counter line (imported)"
_BAD_TS = out_of_range("interval in ns", pl.Int64(), "line skipped")
_NOT_A_TIME = "perf stat interval that is not a time (line skipped)"
_BAD_RUNTIME = out_of_range("run time in ns", pl.UInt64(), "row kept, run time unknown")


def _numbers(fields: pl.DataFrame, found: list[tuple[str, pl.Series]]) -> pl.DataFrame:
    """``ts``, ``cpu`` and ``time_running_ns`` read from their text (:mod:`importers.ranges`).

    ``"1.000417893"`` s becomes ns by digits (never through a float; digits past ns dropped). A
    line whose interval or CPU number does not fit its column is skipped; a run time past
    2^64 leaves it unknown. Both are counted.
    """
    parts = pl.col("ts").str.extract_groups(r"^(\d+)(?:\.(\d{1,9})\d*)?$")
    ts, bad_ts = ts_ns(parts.struct.field("1"), parts.struct.field("2").fill_null("0"))
    not_a_time = pl.col("ts").is_not_null() & parts.struct.field("1").is_null()
    values, outside = parse_columns({"cpu": (pl.col("cpu"), pl.Int16(), 10)}, "line skipped")
    runtime, bad_runtime = parse_text(pl.col("time_running_ns"), pl.UInt64())
    fields = fields.with_columns(
        ts.alias("ts"),
        values["cpu"],
        runtime.alias("time_running_ns"),
        pl.coalesce(
            outside,
            pl.when(bad_ts).then(pl.lit(_BAD_TS)),
            pl.when(not_a_time).then(pl.lit(_NOT_A_TIME)),
        ).alias(OUTSIDE),
        bad_runtime.alias("bad_runtime"),
    )
    unknown_runtime = fields.filter("bad_runtime")["seq"]
    if unknown_runtime.len():
        found.append((_BAD_RUNTIME, unknown_runtime))
    fields, skipped = split_outside(fields.drop("bad_runtime"))
    found.extend((reason, pl.Series(seqs, dtype=pl.Int64)) for reason, seqs in skipped.items())
    return fields


def _csv_fields(lines: pl.DataFrame, found: list[tuple[str, pl.Series]]) -> pl.DataFrame:
    """The value is the first field followed by a unit, an event name (not a number, not a
    ``<status>``) and a numeric or empty run time; the fields before it are the prefix."""
    # fields 0 .. _MAX_PREFIX + 3 (the run time after the latest possible value), stripped once
    width = _MAX_PREFIX + 4
    names = [f"f{i}" for i in range(width)]
    split = lines.with_columns(
        pl.col("line").str.split_exact(",", width - 1).struct.rename_fields(names)
    ).unnest("line")
    split = split.with_columns(pl.col(names).str.strip_chars())
    # each field's regex tests run once, as columns: every candidate start reuses them
    split = split.with_columns(
        pl.col(f"f{i}").str.contains(_NUMBER).alias(f"n{i}") for i in range(width)
    )

    def field(i: int | pl.Expr) -> pl.Expr:
        if isinstance(i, int):
            return pl.col(f"f{i}")
        return pl.coalesce(pl.when(i == k).then(pl.col(f"f{k}")) for k in range(width))

    starts = []
    for k in range(_MAX_PREFIX + 1):
        value, event, after = field(k), field(k + 2), field(k + 3)
        is_value = value.is_in(list(_STATUS)) | pl.col(f"n{k}")
        named = (event != "") & ~pl.col(f"n{k + 2}") & ~event.str.starts_with("<")
        timed = after.is_null() | (after == "") | pl.col(f"n{k + 3}")
        starts.append(pl.when((is_value & named & timed).fill_null(False)).then(pl.lit(k)))
    split = split.with_columns(pl.coalesce(starts).alias("k"))
    metric = pl.all_horizontal((field(i).fill_null("") == "") for i in range(3))
    bad = split.filter(pl.col("k").is_null() & ~metric)
    if bad.height:
        found.append(("perf stat line without a value, unit and event", bad["seq"]))
    rows = split.filter(pl.col("k").is_not_null())
    start = pl.col("k")
    first = field(0)
    has_ts = (start > 0) & pl.col("n0") & first.str.contains(".", literal=True)
    # later prefix items win, as perf prints the most specific last
    cpus, aggregates = [], []
    for i in reversed(range(_MAX_PREFIX)):
        item = field(i)
        in_prefix = (start > i) & ~((i == 0) & has_ts)
        cpus.append(pl.when(in_prefix).then(item.str.extract(_CPU, 1)))
        aggregate = in_prefix & item.str.contains(_AGGREGATE) & ~item.str.contains(_DIGITS)
        aggregates.append(pl.when(aggregate).then(item))
    run = field(start + 3)
    fields = rows.select(
        "seq",
        pl.when(has_ts).then(first).alias("ts"),
        pl.coalesce(cpus).alias("cpu"),
        pl.coalesce(aggregates).alias("aggregate"),
        field(start).alias("value"),
        field(start + 1).fill_null("").alias("unit"),
        field(start + 2).alias("event"),
        pl.when(run.str.contains(_DIGITS)).then(run).alias("time_running_ns"),
    )  # fmt: skip
    metrics = split.filter(pl.col("k").is_null() & metric).select("seq")
    return pl.concat([fields, metrics], how="diagonal_relaxed").sort("seq")


def _json_fields(lines: pl.DataFrame, found: list[tuple[str, pl.Series]]) -> pl.DataFrame:
    """One JSON object per line, decoded by ``json`` (times stay digits, never floats)."""
    rows: list[dict[str, Any]] = []
    undecodable: list[int] = []
    not_object: list[int] = []
    half: list[int] = []
    for seq, line in lines.iter_rows():
        try:
            obj = json.loads(line, parse_float=str)
        except json.JSONDecodeError:
            try:  # "pcnt-running" : 100.00, } from perf releases with a missing metric
                obj = json.loads(re.sub(r",\s*}$", "}", line), parse_float=str)
            except json.JSONDecodeError:
                undecodable.append(seq)
                continue
        if not isinstance(obj, dict):
            not_object.append(seq)
            continue
        # a metric-only line has neither; one without the other lost a key (or its value)
        if ("counter-value" in obj) != bool(obj.get("event")):
            half.append(seq)
            continue
        if "counter-value" not in obj:
            rows.append({"seq": seq})  # metric only
            continue
        aggregate = None
        for key in ("core", "die", "socket", "node", "thread"):
            if key in obj:
                aggregate = str(obj[key])
        runtime = obj.get("event-runtime")
        interval = obj.get("interval")
        rows.append(
            {
                "seq": seq,
                "ts": None if interval is None else str(interval),
                "cpu": str(obj.get("cpu", "")),
                "aggregate": aggregate,
                "value": str(obj["counter-value"]).strip(),
                "unit": str(obj.get("unit") or ""),
                "event": str(obj["event"]),
                "time_running_ns": str(runtime) if isinstance(runtime, int) else None,
            }
        )
    for reason, seqs in (
        ("perf stat JSON line that does not decode", undecodable),
        ("perf stat JSON line that is not an object", not_object),
        ("perf stat JSON line with a counter-value or an event, not both", half),
    ):
        if seqs:
            found.append((reason, pl.Series(seqs, dtype=pl.Int64)))
    frame = pl.DataFrame(rows, schema=_FIELDS)
    return frame.with_columns(pl.when(pl.col("cpu").str.contains(_DIGITS)).then(pl.col("cpu")))


def _values(rows: pl.DataFrame, found: list[tuple[str, pl.Series]]) -> pl.DataFrame:
    """Printed values into ``value``/``status``/``unit`` (see module docstring); rows whose
    value is neither a number nor a perf status are skipped, others that cannot be a uint64
    count keep a null value; both are counted."""
    text = pl.col("value")
    understood = text.is_in(list(_STATUS)) | text.str.contains(_NUMBER)
    bad = rows.filter(~understood)
    if bad.height:
        found.append(("perf stat counter value not understood", bad["seq"]))
    rows = rows.filter(understood).with_columns(
        text.replace_strict(_STATUS, default="counted").alias("status"),
        text.str.extract(r"^(-?\d+)", 1).alias("whole"),
        text.str.extract(r"\.(\d+)$", 1).fill_null("").alias("frac"),
    )
    counted = pl.col("status") == "counted"
    whole = pl.col("whole").str.to_integer(dtype=pl.UInt64, strict=False)  # null if < 0
    frac = pl.col("frac")
    integral = frac.str.strip_chars("0") == ""
    msec = ~integral & (pl.col("unit") == "msec") & (frac.str.len_bytes() <= 6)
    micro = frac.str.pad_end(6, "0").str.to_integer(dtype=pl.UInt64, strict=False)
    # ms with up to 6 decimals is exact in ns; overflow checked before multiplying
    fits_ns = whole <= (pl.lit(_U64_MAX, pl.UInt64) - micro) // 1_000_000
    rows = rows.with_columns(
        pl.when(counted & integral).then(whole)
        .when(counted & msec & fits_ns).then(whole * 1_000_000 + micro)
        .alias("value"),
        pl.when(counted & msec).then(pl.lit("ns")).otherwise(pl.col("unit")).alias("unit"),
        (counted & ~integral & ~msec).alias("fractional"),
        (counted & (integral | msec) & ~(integral & whole.is_not_null())
         & ~(msec & fits_ns.fill_null(False))).alias("out_of_range"),
    )  # fmt: skip
    for unit, part in rows.filter("fractional").group_by("unit", maintain_order=True):
        reason = f"fractional counter value in unit {unit[0] or '(none)'} (not a count)"
        found.append((reason, part["seq"]))
    outside = rows.filter("out_of_range")
    if outside.height:
        found.append(("perf stat counter value outside 0..2^64", outside["seq"]))
    return rows.select("ts", "seq", "cpu", "aggregate", "value", "status", "unit", "event",
                       "time_running_ns")  # fmt: skip
