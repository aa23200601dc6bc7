"""Raw clock counts -> nanoseconds, for captures whose clock does not convert by itself.

A capture's ``ts`` is in ns whenever its clock converts: ftrace's ns clocks, perf, or a raw
counter with a recorded conversion (trace.dat ``TSC2NSEC``, applied by the importer). A
``trace_clock`` of ``x86-tsc`` or ``counter`` without one leaves raw counts
(``CaptureMetadata.ts_unit`` is then not ``"ns"``), and only the user can say how fast that
clock ticks: :func:`to_nanoseconds` applies a stated frequency (``--tsc-khz``) to every time
column, exactly (integer arithmetic, floored to the ns below).
"""

from __future__ import annotations

import pyarrow as pa

from importers.capture import Capture
from importers.errors import UsageError

#: Columns that hold a time on the capture's clock (durations such as perf's
#: ``time_enabled_ns`` are ns already).
TIME_COLUMNS = ("ts", "first_ts", "last_ts")
NS_PER_MS = 1_000_000


def cycles_to_ns(counts: int, khz: int) -> int:
    """``counts`` ticks of a ``khz`` kHz clock in ns, floored (the same rule as the columns)."""
    return counts // khz * NS_PER_MS + counts % khz * NS_PER_MS // khz


def _column_to_ns(column: pa.ChunkedArray, khz: int) -> pa.ChunkedArray:
    import pyarrow.compute as pc  # only with --tsc-khz: ~35 ms of every import's start-up

    # whole milliseconds, then the rest: no intermediate product overflows int64
    whole = pc.divide(column, khz)
    rest = pc.subtract(column, pc.multiply(whole, khz))
    return pc.add_checked(
        pc.multiply_checked(whole, NS_PER_MS), pc.divide(pc.multiply_checked(rest, NS_PER_MS), khz)
    )


def to_nanoseconds(capture: Capture, khz: int) -> None:
    """Convert ``capture`` (in place) from raw ticks of a ``khz`` kHz clock to ns.

    Raises
    ------
    UsageError
        For a capture whose timestamps are ns already, or a frequency that is not positive.
    """
    meta = capture.metadata
    if khz <= 0:
        raise UsageError(f"--tsc-khz {khz}: the clock frequency must be a positive number of kHz")
    if meta.ts_unit == "ns":
        raise UsageError(
            f"--tsc-khz: {meta.source_path} has timestamps in ns already (clock "
            f"{meta.clock or 'unknown'}); drop --tsc-khz"
        )
    if any(ts is not None and ts < 0 for ts in (meta.first_ts, meta.last_ts)):
        raise UsageError(f"{meta.source_path}: negative raw clock counts cannot be converted")
    for name, table in capture.tables.items():
        for column in TIME_COLUMNS:
            if column in table.column_names:
                i = table.column_names.index(column)
                table = table.set_column(i, column, _column_to_ns(table[column], khz))
        capture.tables[name] = table
    meta.first_ts = None if meta.first_ts is None else cycles_to_ns(meta.first_ts, khz)
    meta.last_ts = None if meta.last_ts is None else cycles_to_ns(meta.last_ts, khz)
    meta.extra["ts_from"] = {"unit": meta.ts_unit, "khz": khz, "by": "--tsc-khz"}
    meta.ts_unit = "ns"


def require_nanoseconds(capture: Capture) -> None:
    """Refuse a capture whose times are not ns: they would be printed as seconds.

    Raises
    ------
    UsageError
        Naming ``--tsc-khz``, the way to state the clock's frequency.
    """
    meta = capture.metadata
    if meta.ts_unit != "ns":
        raise UsageError(
            f"{meta.source_path}: timestamps are raw {meta.clock or 'clock'} counts "
            f"({meta.ts_unit}), not ns, and the capture records no conversion; give the clock's "
            "frequency with --tsc-khz N (e.g. --tsc-khz 2000000 for a 2 GHz TSC; on x86 see "
            "'tsc: Refined TSC clocksource calibration' in dmesg)"
        )
