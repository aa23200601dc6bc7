"""Where a Perfetto trace lost ftrace data: ``lost_events`` rows.

Three signals place a loss on a CPU, each as a marker just before the first row of a bundle
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

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from importers.perfetto.bundles import RANK_BITS, BundleIndex
from importers.perfetto.sequences import Sequences
from importers.perfetto.wire import I64
from importers.schema import conform


@dataclass
class Losses:
    """The loss markers of the groups of bundles seen so far (groups arrive in trace order);
    ``last_raw`` carries each CPU's last event time in its own clock."""

    cpus: list[int]
    last_raw: dict[int, int] = field(default_factory=dict)
    markers: list[pl.DataFrame] = field(default_factory=list)

    def add(self, b: BundleIndex, seqs: Sequences, chosen: I64, last_raw: I64) -> pl.DataFrame:
        """``cpu, bundle, seq, kind`` of the losses of bundles ``chosen`` (see module
        docstring), ``seq`` just before the bundle's first row; ``last_raw``: each chosen
        bundle's last event time in its own clock (-1 when it has none)."""
        bundles = pl.DataFrame(
            {
                "cpu": b.cpu[chosen],
                "bundle": chosen,
                "lost": b.lost[chosen],
                "has_end": b.has_previous_end[chosen],
                "previous_end": b.previous_end[chosen],
                "last_raw": last_raw,
                "dropped": seqs.loss_before[b.packet[chosen]],
            }
        )
        carried = pl.DataFrame(
            {"cpu": list(self.last_raw), "carried": list(self.last_raw.values())},
            schema={"cpu": pl.Int16, "carried": pl.Int64},
        )
        # the last event of the CPU's previous bundle with events, in this group or before
        expected = (
            pl.when(pl.col("last_raw") >= 0)
            .then("last_raw")
            .shift(1)
            .forward_fill()
            .over("cpu")
            .fill_null(pl.col("carried"))
            .fill_null(0)
        )
        flagged = bundles.filter("lost").select("cpu", "bundle", pl.lit("lost").alias("kind"))
        missing = (
            bundles.join(carried, on="cpu", how="left", maintain_order="left")
            .with_columns(expected.alias("expected"))
            .filter(pl.col("has_end") & (pl.col("previous_end") != pl.col("expected")))
            .select("cpu", "bundle", pl.lit("missing bundle").alias("kind"))
        )
        dropped = (
            bundles.filter(pl.col("dropped") & ~pl.col("has_end"))
            .select("bundle")
            .join(pl.DataFrame({"cpu": self.cpus}, schema={"cpu": pl.Int16}), how="cross")
            .select("cpu", "bundle", pl.lit("dropped packets").alias("kind"))
        )
        for cpu, raw in zip(b.cpu[chosen].tolist(), last_raw.tolist(), strict=True):
            if raw >= 0:
                self.last_raw[cpu] = raw
        found = (
            pl.concat([flagged, missing, dropped])
            .unique(["cpu", "bundle"], keep="first", maintain_order=True)
            .sort("bundle", "cpu")
            .with_columns((pl.col("bundle").cast(pl.Int64) * (1 << RANK_BITS) - 1).alias("seq"))
        )
        self.markers.append(found)
        return found


def lost_events_table(markers: pl.DataFrame, b: BundleIndex, first_ts: I64) -> pa.Table:
    """The ``lost_events`` table: each marker with the time of its CPU's next event (the
    earliest of the first bundle at or after it that has events)."""
    events = pl.DataFrame({"cpu": b.cpu, "bundle": np.arange(b.count), "ts": first_ts})
    found = markers.join_asof(
        events.filter(pl.col("ts") >= 0),
        on="bundle",
        by="cpu",
        strategy="forward",
        check_sortedness=False,
    )
    table = found.select(
        "ts", "seq", pl.col("cpu").cast(pl.Int16), pl.lit(None, pl.Int64).alias("count"), "kind"
    ).to_arrow()
    return conform(
        "lost_events", table.set_column(4, "kind", table.column("kind").dictionary_encode())
    )
