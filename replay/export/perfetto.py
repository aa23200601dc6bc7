"""Replay results -> a Perfetto protobuf trace (``pmu-replay export``, ``--perfetto``).

What the trace shows (track layout in :mod:`replay.export.tracks`, the tracks of one export
and the order they are written in :mod:`replay.export.plan`):

* first, for ranked results, a ``verdict`` track, with one instant at the start whose name is
  the verdict's status and scenario and whose args hold the rest (kernel, mainline fallback,
  reasons, text);
* then, per scenario, a ``stalls: <scenario>`` group with one track per vCPU and counter: stall
  episodes and unknown time as slices (cause in the args), fail-entries, perf-event
  re-creations, risky zero-delta ticks and traced zero-delta ``PMCCNTR_EL0`` reads as
  instants; the group's description names the scenario's kernel and, for ranked results, its
  costs;
* one process per VM (a plain group when the VMM's pid is unknown: no made-up pid), one thread
  per vCPU, with slices for where the vCPU ran (CPU and host PMU) and, inside them, its guest,
  host and unknown time;
* under each vCPU, one counter track per scenario and guest counter with the value the guest
  would read (:func:`replay.export.events.counter_samples`);
* the host CPU frequency steps the capture measured, one counter per CPU (assumed frequencies
  are left out).

Timestamps are the replay's ns on the capture's clock (:mod:`replay.export.clocks`). The trace
is streamed: vCPUs are taken a few at a time, their events built and encoded column-wise
(:mod:`replay.export.wire`), sorted and written, so memory follows the largest group of vCPUs,
not the trace. Track uuids hash the track names and nothing depends on Python's iteration
order of sets or on the clock: the same results give a byte-identical file.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import polars as pl

from importers.errors import CaptureFormatError, UsageError
from importers.output import whole_file
from replay.export.packets import PacketWriter
from replay.export.plan import Plan
from replay.results import Results

#: Rows of observations and pieces encoded together at most (one group of vCPUs); bounds memory.
CHUNK_ROWS = 2_000_000


@dataclass(frozen=True)
class ExportStats:
    """What :func:`write_perfetto` wrote."""

    path: Path
    packets: int
    tracks: int
    bytes: int
    clock: str


def write_perfetto(
    results: Results,
    path: str | Path,
    *,
    scenarios: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ExportStats:
    """Write ``results`` as a Perfetto protobuf trace to ``path`` (gzipped if it ends in .gz).

    Parameters
    ----------
    results
        A replay's results (:func:`replay.results.assemble` or :meth:`Results.load`).
    path
        Output file, whole or absent (:func:`importers.output.whole_file`: written beside it
        and renamed into place, so a failed export leaves the previous file, or none).
    scenarios
        Export only these scenarios (default: all).
    chunk_rows
        Rows of observations and pieces handled at once; lower it to use less memory.

    Raises
    ------
    UsageError
        An unknown scenario, timestamps in raw clock units rather than ns, an output path
        whose parent is a file, or results whose observations were let go.
    CaptureFormatError
        Results without the metadata the trace needs, or with negative timestamps.
    OSError
        Naming ``path``, when it cannot be written (disk full, permission, ...).
    """
    results.require_observations("a Perfetto trace")
    _check_columns(results)
    results = _select(results, scenarios)
    plan = Plan.of(results)
    out = Path(path)
    with whole_file(out) as tmp, open(tmp, "wb") as raw:
        # mtime=0 and no file name in the gzip header: the same results, the same bytes.
        sink: IO[bytes] = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)  # type: ignore[assignment]
            if out.suffix == ".gz"
            else raw
        )
        with sink:
            writer = PacketWriter(sink)
            plan.write(writer, chunk_rows)
    return ExportStats(out, writer.packets, len(plan.ids), out.stat().st_size, plan.clock.name)


#: The columns the export reads, per table (``ticks`` only when the profile has a tick).
REQUIRED_COLUMNS = {
    "observations": ("scenario", "vm", "vcpu", "counter", "start", "end", "delta", "value"),
    "findings": ("scenario", "vm", "vcpu", "counter", "kind", "start", "end", "duration", "cpu"),
    "pieces": ("vm", "tid", "vcpu_index", "residency", "window", "cpu", "start", "end", "state"),
    "frequency": ("cpu", "ts", "khz"),
    "ticks": ("scenario", "vm", "vcpu", "tick", "guest_ns", "risky"),
    "reads": ("scenario", "vm", "vcpu", "ts", "guest_ns", "zero_delta"),
}


def _check_columns(results: Results) -> None:
    for table, columns in REQUIRED_COLUMNS.items():
        frame: pl.DataFrame = getattr(results, table)
        if table in ("ticks", "reads") and not frame.width:
            continue
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise CaptureFormatError(
                f"replay results: {table} lacks column(s) {', '.join(missing)}; the results "
                "are damaged or from another version: re-run `pmu-replay replay ... -o DIR`"
            )


def _select(results: Results, scenarios: Sequence[str] | None) -> Results:
    if not scenarios:
        return results
    known = [s["name"] for s in results.meta.get("scenarios", [])]
    unknown = [s for s in scenarios if s not in known]
    if unknown:
        raise UsageError(
            f"no scenario {', '.join(map(repr, unknown))} in these results; they have: "
            + ", ".join(known)
        )
    keep = pl.col("scenario").is_in(list(scenarios))
    meta = dict(results.meta)
    meta["scenarios"] = [s for s in meta["scenarios"] if s["name"] in scenarios]
    per_scenario = {
        name: frame.filter(keep) if "scenario" in frame.columns else frame
        for name in ("observations", "findings", "ticks", "reads", "summary")
        for frame in [getattr(results, name)]
    }
    return replace(results, meta=meta, **per_scenario)
