"""Where a Perfetto trace lost ftrace data: ``lost_events`` rows.

Three signals place a loss on a CPU, each as a marker at the first row of a bundle
(``ts``: the CPU's next event at or after it, as for the other formats):

* the bundle's ``lost_events`` flag: the kernel overwrote events of that CPU since the last
  read (kind ``lost``);
* ``previous_bundle_end_timestamp`` (Perfetto v47+) that is not the last event of the CPU's
  previous bundle in the trace, or not 0 on its first: bundles of that CPU are missing, for
  example overwritten in a ring-buffer trace (kind ``missing bundle``);
* ``previous_packet_dropped`` on the bundle's sequence, for bundles without the field above:
  the service lost packets of unknown CPUs, so every CPU gets a marker (kind
  ``dropped packets``).

[protos/perfetto/trace/ftrace/ftrace_event_bundle.proto; trace_packet.proto]
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from importers.perfetto.bundles import BundleIndex
from importers.perfetto.sequences import Sequences
from importers.perfetto.wire import I64
from importers.schema import conform


def loss_markers(b: BundleIndex, seqs: Sequences, first_seq: I64, last_raw: I64) -> pl.DataFrame:
    """``cpu, seq, kind`` of every loss (see module docstring); ``last_raw`` is each
    bundle's last event time in its own clock (-1 when it has none)."""
    bundles = pl.DataFrame(
        {
            "cpu": b.cpu,
            "seq": first_seq,
            "lost": b.lost,
            "has_end": b.has_previous_end,
            "previous_end": b.previous_end,
            "last_raw": last_raw,
            "dropped": seqs.loss_before[b.packet],
        }
    )
    expected = (
        pl.when(pl.col("last_raw") >= 0)
        .then("last_raw")
        .shift(1)
        .forward_fill()
        .over("cpu")
        .fill_null(0)
    )
    cpus = bundles.select(pl.col("cpu").unique().sort())
    flagged = bundles.filter("lost").select("cpu", "seq", pl.lit("lost").alias("kind"))
    missing = (
        bundles.with_columns(expected.alias("expected"))
        .filter(pl.col("has_end") & (pl.col("previous_end") != pl.col("expected")))
        .select("cpu", "seq", pl.lit("missing bundle").alias("kind"))
    )
    dropped = (
        bundles.filter(pl.col("dropped") & ~pl.col("has_end"))
        .select("seq")
        .join(cpus, how="cross")
        .select("cpu", "seq", pl.lit("dropped packets").alias("kind"))
    )
    return (
        pl.concat([flagged, missing, dropped])
        .unique(["cpu", "seq"], keep="first", maintain_order=True)
        .sort("seq", "cpu")
    )


def lost_events_table(
    markers: pl.DataFrame, b: BundleIndex, first_seq: I64, first_ts: I64
) -> pa.Table:
    """The ``lost_events`` table: each marker with the time of its CPU's next event."""
    events = pl.DataFrame({"cpu": b.cpu, "seq": first_seq, "ts": first_ts}).filter(
        pl.col("ts") >= 0
    )
    found = markers.sort("seq").join_asof(
        events.sort("seq"), on="seq", by="cpu", strategy="forward", check_sortedness=False
    )
    table = found.select(
        "ts", "seq", pl.col("cpu").cast(pl.Int16), pl.lit(None, pl.Int64).alias("count"), "kind"
    ).to_arrow()
    return conform(
        "lost_events", table.set_column(4, "kind", table.column("kind").dictionary_encode())
    )
