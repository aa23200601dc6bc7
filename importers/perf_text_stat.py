"""``perf stat -x,`` CSV and ``perf stat -j`` JSON lines into ``pmu_counts`` (formats.md §4.8).

CSV: ``[interval] [aggregation id] [aggregated CPUs] value,unit,event,run time,pcnt running,
[metric value],[metric unit]`` (perf-stat.txt "CSV FORMAT"); which optional leading fields a
line has depends on ``-I``/``-A``/``--per-*``, so the value is found as the first field
followed by a unit, an event name and a numeric run time. JSON: one object per line, with a
string ``counter-value``; the invalid trailing-comma lines of some perf releases are repaired
before decoding.

Values: ``<not counted>`` / ``<not supported>`` become the ``status`` with a null value.
Counters print integers; clock events print milliseconds, stored exactly as nanoseconds (unit
``ns``); any other fractional value cannot be a uint64 count and is skipped and counted.
Lines with no value (metric-only continuation lines) are counted in the metadata.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from importers.capture import Capture, CaptureMetadata, sha256_of
from importers.detect import ProgressFn
from importers.errors import CaptureFormatError
from importers.schema import conform
from importers.skips import SkipLog

_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_CPU = re.compile(r"^CPU(\d+)$")
_AGGREGATE = re.compile(r"^(?:S\d+(?:-D\d+)?(?:-C\d+)?|N\d+|.+-\d+)$")
_STATUS = {"<not counted>": "not counted", "<not supported>": "not supported"}
_CSV_KEYS = ("ts", "cpu", "aggregate", "value", "status", "unit", "event", "time_running_ns")


def read_perf_stat(
    path: Path,
    *,
    fmt: str = "perf-stat-csv",
    strict: bool = False,
    progress: ProgressFn | None = None,
) -> Capture:
    """Import ``perf stat -x,`` (``fmt="perf-stat-csv"``) or ``-j`` (``"perf-stat-json"``)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CaptureFormatError(f"{path}: cannot read ({exc.strerror})") from None
    skips = SkipLog(str(path), strict)
    parse = _json_row if fmt == "perf-stat-json" else _csv_row
    rows: list[dict[str, Any]] = []
    metric_lines = 0
    for number, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        row = parse(stripped, skips, number)
        if row is None:
            continue
        if row.get("event") is None:
            metric_lines += 1
            continue
        row["seq"] = number
        if _value(row, skips, number):
            rows.append(row)
    if not rows:
        raise CaptureFormatError(
            f"{path}: no perf stat counter line found; expected `perf stat -x,` CSV or "
            "`perf stat -j` JSON lines"
        )
    frame = pl.DataFrame(rows, schema=_SCHEMA).with_columns(
        pl.col("event").str.extract(r"^([\w.-]+)/", 1).alias("pmu"),
        pl.lit(f"perf stat {'json' if fmt == 'perf-stat-json' else 'csv'}").alias("source"),
    )
    table = conform("pmu_counts", frame.to_arrow())
    aggregates = sorted(set(frame["aggregate"].drop_nulls().to_list()))
    meta = CaptureMetadata(
        source_path=str(path),
        source_sha256=sha256_of(path),
        format=fmt,
        importer="importers.perf_text:read_perf_stat",
        ts_resolution_ns=1,
        cpu_count=None,
        first_ts=frame["ts"].min(),  # type: ignore[arg-type]
        last_ts=frame["ts"].max(),  # type: ignore[arg-type]
        skipped=skips.to_json(),
        extra={"metric_only_lines": metric_lines, "aggregates": aggregates or None},
    )
    return Capture(metadata=meta, tables={"pmu_counts": table})


_SCHEMA = {
    "ts": pl.Int64,
    "seq": pl.Int64,
    "cpu": pl.Int16,
    "aggregate": pl.Utf8,
    "value": pl.UInt64,
    "status": pl.Utf8,
    "unit": pl.Utf8,
    "event": pl.Utf8,
    "time_running_ns": pl.UInt64,
}


def _seconds_to_ns(text: str) -> int | None:
    """``"1.000417893"`` s -> ns, by digits (never through a float)."""
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,9})\d*)?", text.strip())
    if not m:
        return None
    return int(m[1]) * 1_000_000_000 + int((m[2] or "").ljust(9, "0"))


def _csv_row(line: str, skips: SkipLog, number: int) -> dict[str, Any] | None:
    f = line.split(",")
    for k in range(len(f) - 2):
        value, event = f[k].strip(), f[k + 2].strip()
        after = f[k + 3].strip() if k + 3 < len(f) else ""
        if (
            (value in _STATUS or _NUMBER.match(value))
            and event
            and not _NUMBER.match(event)
            and not event.startswith("<")
            and (after == "" or _NUMBER.match(after))
        ):
            return _csv_fields(f, k)
    if all(not x.strip() for x in f[:3]):
        return {"event": None}  # metric-only continuation line
    skips.add("perf stat line without a value, unit and event", [f"line {number + 1}"])
    return None


def _csv_fields(f: list[str], k: int) -> dict[str, Any]:
    prefix = [x.strip() for x in f[:k]]
    row: dict[str, Any] = dict.fromkeys(_CSV_KEYS)
    if prefix and _NUMBER.match(prefix[0]) and "." in prefix[0]:
        row["ts"] = _seconds_to_ns(prefix.pop(0))
    for item in prefix:
        cpu = _CPU.match(item)
        if cpu:
            row["cpu"] = int(cpu[1])
        elif _AGGREGATE.match(item) and not item.isdigit():
            row["aggregate"] = item
    row["value"], row["unit"], row["event"] = f[k].strip(), f[k + 1].strip(), f[k + 2].strip()
    run = f[k + 3].strip() if k + 3 < len(f) else ""
    row["time_running_ns"] = int(run) if run.isdigit() else None
    return row


def _json_row(line: str, skips: SkipLog, number: int) -> dict[str, Any] | None:
    try:
        obj = json.loads(line, parse_float=str)  # times stay digits, never floats
    except json.JSONDecodeError:
        try:  # "pcnt-running" : 100.00, } from perf releases with a missing metric
            obj = json.loads(re.sub(r",\s*}$", "}", line), parse_float=str)
        except json.JSONDecodeError:
            skips.add("perf stat JSON line that does not decode", [f"line {number + 1}"])
            return None
    if not isinstance(obj, dict):
        skips.add("perf stat JSON line that is not an object", [f"line {number + 1}"])
        return None
    row: dict[str, Any] = dict.fromkeys(_CSV_KEYS)
    if "counter-value" not in obj:
        return {"event": None}
    interval = obj.get("interval")
    row["ts"] = _seconds_to_ns(str(interval)) if interval is not None else None
    cpu = str(obj.get("cpu", ""))
    row["cpu"] = int(cpu) if cpu.isdigit() else None
    for key in ("core", "die", "socket", "node", "thread"):
        if key in obj:
            row["aggregate"] = str(obj[key])
    row["value"] = str(obj["counter-value"]).strip()
    row["unit"] = str(obj.get("unit") or "")
    row["event"] = str(obj.get("event") or "") or None
    runtime = obj.get("event-runtime")
    row["time_running_ns"] = int(runtime) if isinstance(runtime, int) and runtime >= 0 else None
    return row


def _value(row: dict[str, Any], skips: SkipLog, number: int) -> bool:
    """Turn the printed value into ``value``/``status``/``unit`` (see module docstring);
    False (skipped and counted) when it is neither a number nor a perf status."""
    text = row["value"]
    if text not in _STATUS and not _NUMBER.match(text):
        skips.add("perf stat counter value not understood", [f"line {number + 1}"])
        return False
    row["status"] = _STATUS.get(text, "counted")
    row["value"] = None
    if row["status"] != "counted":
        return True
    whole, _, frac = text.partition(".")
    if not frac.strip("0"):
        row["value"] = int(whole)
    elif row["unit"] == "msec" and len(frac) <= 6:
        row["value"] = int(whole) * 1_000_000 + int(frac.ljust(6, "0"))
        row["unit"] = "ns"
    else:
        skips.add(
            f"fractional counter value in unit {row['unit'] or '(none)'} (not a count)",
            [f"line {number + 1}"],
        )
    if row["value"] is not None and not 0 <= row["value"] < 1 << 64:
        skips.add("perf stat counter value outside 0..2^64", [f"line {number + 1}"])
        row["value"] = None
    if row["time_running_ns"] is not None and row["time_running_ns"] >= 1 << 64:
        row["time_running_ns"] = None
    return True
