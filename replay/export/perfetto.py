"""Replay results -> a Perfetto protobuf trace (``pmu-replay export``, ``--perfetto``).

What the trace shows (track layout in :mod:`replay.export.tracks`):

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl

from importers.errors import CaptureFormatError, UsageError
from importers.output import whole_file
from replay.export import events
from replay.export.clocks import TraceClock, clock_packets, trace_clock
from replay.export.packets import Batch, Interner, PacketWriter, descriptor_packet
from replay.export.tracks import (
    ROOT_NAME,
    TrackIds,
    counter_track,
    group_track,
    process_track,
    register_name,
    thread_track,
    vcpu_label,
    vm_pid,
)
from replay.host_report import host_lines
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
        An unknown scenario, timestamps in raw clock units rather than ns, or an output path
        whose parent is a file.
    CaptureFormatError
        Results without the metadata the trace needs, or with negative timestamps.
    OSError
        Naming ``path``, when it cannot be written (disk full, permission, ...).
    """
    _check_columns(results)
    results = _select(results, scenarios)
    plan = _Plan.of(results)
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


def _meta(results: Results, key: str) -> Any:
    try:
        return results.meta[key]
    except KeyError:
        raise CaptureFormatError(
            f"replay results lack {key!r} in replay.json; re-run `pmu-replay replay ... -o DIR`"
        ) from None


@dataclass
class _Plan:
    """Tracks, names and order of one export."""

    results: Results
    clock: TraceClock
    t0: int
    ids: TrackIds
    vcpus: pl.DataFrame  # vm, vcpu, vcpu_index, pieces, pid, uuid, label, order; export order
    scenario_rank: dict[str, int]
    counter_names: dict[int, str]
    primary: int
    zero: pl.DataFrame  # events.zero_deltas of the results
    pmus: pl.DataFrame  # cpu -> host_pmu of the topology

    @classmethod
    def of(cls, results: Results) -> _Plan:
        capture = results.meta.get("capture") or {}
        if capture.get("ts_unit", "ns") != "ns":
            raise UsageError(
                "the capture's timestamps are raw clock units, not ns; Perfetto needs ns: "
                "re-import it with a clock that converts to ns"
            )
        t0 = int(_meta(results, "start"))
        first = min([t0, *(_first_start(f) for f in _timed(results))])
        if first < 0:
            raise CaptureFormatError(
                f"replay timestamps start at {first} ns, before 0: a Perfetto trace cannot "
                "hold negative timestamps"
            )
        ids = TrackIds()
        # Sorted, not in dict order: results reloaded from replay.json (sorted keys) and fresh
        # ones must give the same file.
        vms = sorted(_meta(results, "vms"))
        # Every vCPU with observations has pieces. numpy's unique sorts the tids in place of a
        # hash table (a polars group_by over millions of rows costs several hundred MB here).
        _, first_rows, pieces = np.unique(
            results.pieces["tid"].to_numpy(), return_index=True, return_counts=True
        )
        vcpus = (
            results.pieces[first_rows]
            .select("vm", pl.col("tid").alias("vcpu"), "vcpu_index")
            .with_columns(
                pl.Series("pieces", pieces, pl.Int64),
                pl.col("vm")
                .replace_strict(
                    {vm: i for i, vm in enumerate(vms)}, default=len(vms), return_dtype=pl.Int64
                )
                .alias("vm_order"),
            )
            .sort("vm_order", "vm", "vcpu_index", "vcpu", nulls_last=True)
        )
        pids = {vm: vm_pid(vm) for vm in dict.fromkeys([*vms, *vcpus["vm"]])}
        rows = vcpus.select("vm", "vcpu", "vcpu_index").rows()
        vcpus = vcpus.with_columns(
            pl.Series("pid", [pids[vm] for vm, _, _ in rows], pl.Int64),
            pl.Series("uuid", [ids("vcpu", vm, tid) for vm, tid, _ in rows], pl.UInt64),
            pl.Series("label", [vcpu_label(vm, i, tid) for vm, tid, i in rows], pl.Utf8),
            pl.int_range(pl.len(), dtype=pl.Int64).alias("order"),
        )
        profile = _meta(results, "profile")
        return cls(
            results=results,
            clock=trace_clock(capture.get("clock")),
            t0=t0,
            ids=ids,
            vcpus=vcpus,
            scenario_rank={s["name"]: i for i, s in enumerate(_meta(results, "scenarios"))},
            counter_names={c["idx"]: c["name"] for c in profile.get("counters", [])},
            primary=int(_meta(results, "primary_counter")),
            zero=events.zero_deltas(results.ticks, results.reads, t0, profile.get("tick_ns")),
            pmus=_pmus(results),
        )

    def counter_label(self, counter: int) -> str:
        return self.counter_names.get(counter, register_name(counter))

    def write(self, w: PacketWriter, chunk_rows: int) -> None:
        r = self.results
        w.raw(clock_packets(self.clock, self.t0), 2)
        self._write_static_tracks(w)
        self._host_tracks(w)
        interner = Interner()
        w.events(self._span(), interner)
        # One filter per table and group rather than one sort by group and a gather per group:
        # polars tests a few million vCPU ids in about a millisecond, and the sort-and-gather
        # variant measured slower and 0.6-0.8 GB heavier at peak (bench_export.py, 3M events).
        for tids in self._chunks(chunk_rows):
            in_chunk = pl.col("vcpu").is_in(tids)
            obs = r.observations.filter(in_chunk)
            found = r.findings.filter(in_chunk)
            zero = self.zero.filter(in_chunk)
            vcpus = self.vcpus.filter(in_chunk)
            counters = self._counter_tracks(w, vcpus, obs)
            stalls = self._stall_tracks(w, vcpus, found, zero)
            pieces = r.pieces.filter(pl.col("tid").is_in(tids))
            threads = vcpus.select("vm", pl.col("vcpu").alias("tid"), "uuid")
            slices = [
                *events.placement(pieces, threads, self.pmus),
                *events.findings_events(found, zero, stalls, self.primary),
            ]
            w.events(slices, interner)
            # Counter tracks hold nothing else, so their packets need no merging with slices.
            w.events([events.counter_samples(obs, counters)], interner)
        w.events(self._frequency(w), interner)
        w.events(self._verdict(w), interner)

    def _verdict(self, w: PacketWriter) -> list[Batch]:
        """The verdict track and its one instant (ranked results only)."""
        verdict = self.results.meta.get("verdict")
        if not verdict:
            return []
        uuid = self.ids("verdict")
        about = "which configuration to deploy, on which kernel, and how sure the replay is"
        desc = group_track(uuid, "verdict", self.ids("root"), rank=-2, description=about)
        w.raw(descriptor_packet(desc), 1)
        return [events.verdict_instant(verdict, self.t0, uuid)]

    def _write_static_tracks(self, w: PacketWriter) -> None:
        """The top-level group with the scenarios' stall groups first, VM processes (or groups,
        without a known pid) and their vCPU threads (or tracks)."""
        root = self.ids("root")
        about = "the verdict and the stall episodes per scenario first, then VMs whose VMM pid "
        about += "is unknown, then the host CPU frequencies the capture measured"
        w.raw(descriptor_packet(group_track(root, ROOT_NAME, description=about)), 1)
        r = self.results
        with_findings = {*r.findings["scenario"].to_list(), *self.zero["scenario"].to_list()}
        kernels = {
            s["name"]: f"proposed, series revision {s['kernel']}" if s["proposed"] else "mainline"
            for s in _meta(r, "scenarios")
            if "kernel" in s
        }
        costs = {row["scenario"]: row["assessment"] for row in r.meta.get("ranking", [])}
        for scenario, rank in self.scenario_rank.items():
            if scenario in with_findings:
                uuid = self.ids("stalls", scenario)
                about = f"under {scenario} (kernel: {kernels.get(scenario) or 'unknown'}): "
                about += "stall episodes and unknown time (slices), failed guest entries, "
                about += "perf-event re-creations, risky ticks and zero-delta reads (instants)"
                if scenario in costs:
                    about += f". Costs: {costs[scenario]}"
                desc = group_track(
                    uuid, f"stalls: {scenario}", parent=root, rank=rank, description=about
                )
                w.raw(descriptor_packet(desc), 1)
        vms = self.vcpus.group_by("vm", "pid", maintain_order=True).agg().rows()
        for rank, (vm, pid) in enumerate(vms, start=len(self.scenario_rank)):
            if pid is not None:
                w.raw(descriptor_packet(process_track(self.ids("vm", vm), pid, vm)), 1)
                continue
            about = f"{vm}: the capture does not say which process runs this VM"
            desc = group_track(self.ids("vm", vm), f"{vm} (VMM process unknown)", root, rank, about)
            w.raw(descriptor_packet(desc), 1)
        for vm, tid, index, pid, uuid in self.vcpus.select(
            "vm", "vcpu", "vcpu_index", "pid", "uuid"
        ).rows():
            name = f"vCPU {index}" if index is not None else f"vCPU tid {tid}"
            if pid is not None:
                desc = thread_track(uuid, pid, tid, name)
            else:
                rank = index if index is not None else tid
                desc = group_track(uuid, f"{name} (tid {tid})", self.ids("vm", vm), rank)
            w.raw(descriptor_packet(desc), 1)

    def _span(self) -> list[Batch]:
        """The replayed stretch of the capture, one slice on the top-level group: the trace
        spans the capture, whether or not anything happens at its edges."""
        end = int(self.results.meta.get("end") or self.t0)
        span = pl.DataFrame(
            {"start": [self.t0], "end": [end], "uuid": [self.ids("root")], "depth": [0]},
            schema={"start": pl.Int64, "end": pl.Int64, "uuid": pl.UInt64, "depth": pl.Int64},
        ).with_columns(name=pl.lit("replayed capture"))
        return events.slices(span)

    def _host_tracks(self, w: PacketWriter) -> None:
        """The host the replay assumed, as track names: a group headed by whether KVM offers a
        vPMU, with one track per host PMU (its facts) and per host counter reservation."""
        block = self.results.meta.get("host")
        if not block:  # results saved before the host block existed
            return
        head, *rest = host_lines(block)
        group = self.ids("host")
        # under the top-level group, between the verdict and the stall groups
        w.raw(descriptor_packet(group_track(group, head, self.ids("root"), rank=-1)), 1)
        for rank, line in enumerate(rest):
            desc = group_track(self.ids("host", rank), line.strip(), parent=group, rank=rank)
            w.raw(descriptor_packet(desc), 1)

    def _chunks(self, chunk_rows: int) -> Iterator[list[int]]:
        """vCPU thread ids in export order, grouped so each group has about ``chunk_rows`` rows."""
        tids, counts = np.unique(self.results.observations["vcpu"].to_numpy(), return_counts=True)
        observed = dict(zip(tids.tolist(), counts.tolist(), strict=True))
        group: list[int] = []
        rows = 0
        for tid, pieces in self.vcpus.select("vcpu", "pieces").rows():
            size = pieces + observed.get(tid, 0)
            if group and rows + size > chunk_rows:
                yield group
                group, rows = [], 0
            group.append(tid)
            rows += size
        if group:
            yield group

    def _counter_tracks(
        self, w: PacketWriter, vcpus: pl.DataFrame, obs: pl.DataFrame
    ) -> pl.DataFrame:
        """One counter track per vCPU, scenario and counter with values; their descriptors."""
        keys = (
            obs.filter(pl.col("value").is_not_null())
            .select(events.COUNTER_KEY)
            .unique()
            .join(vcpus.select("vm", "vcpu", pl.col("uuid").alias("parent")), on=events.VCPU_KEY)
        )
        return self._declare(w, keys, "counter", self._counter_descriptor)

    def _counter_descriptor(self, row: dict[str, Any], uuid: int) -> bytes:
        scenario, counter = row["scenario"], row["counter"]
        name = f"{scenario} {self.counter_label(counter)}"
        rank = self.scenario_rank[scenario] * 64 + self._counter_rank(counter)
        about = f"{register_name(counter)} as the guest reads it under {scenario}"
        return descriptor_packet(counter_track(uuid, name, row["parent"], rank, description=about))

    def _stall_tracks(
        self, w: PacketWriter, vcpus: pl.DataFrame, found: pl.DataFrame, zero: pl.DataFrame
    ) -> pl.DataFrame:
        """One track per scenario, vCPU and counter with findings; their descriptors."""
        counter = pl.col("counter").fill_null(self.primary).cast(pl.Int8)
        primary = pl.lit(self.primary, pl.Int8).alias("counter")
        parts = [
            found.select("scenario", "vm", "vcpu", counter),
            zero.select("scenario", "vm", "vcpu", primary),
        ]
        keys = (
            pl.concat(parts)
            .unique()
            .join(vcpus.select("vm", "vcpu", "label", "order"), on=events.VCPU_KEY)
        )
        return self._declare(w, keys, "stalls", self._stall_descriptor)

    def _stall_descriptor(self, row: dict[str, Any], uuid: int) -> bytes:
        name = f"{row['label']} {self.counter_label(row['counter'])}"
        rank = row["order"] * 64 + self._counter_rank(row["counter"])
        parent = self.ids("stalls", row["scenario"])
        return descriptor_packet(group_track(uuid, name, parent=parent, rank=rank))

    def _declare(
        self, w: PacketWriter, keys: pl.DataFrame, kind: str, descriptor: Any
    ) -> pl.DataFrame:
        """uuids for ``keys`` (scenario, vm, vcpu, counter + extras), descriptors written in a
        fixed order; returns the key -> uuid frame."""
        keys = keys.with_columns(
            pl.col("scenario")
            .replace_strict(self.scenario_rank, return_dtype=pl.Int64)
            .alias("_rank")
        ).sort("_rank", "vm", "vcpu", "counter")
        uuids = []
        for row in keys.iter_rows(named=True):
            uuid = self.ids(kind, row["scenario"], row["vm"], row["vcpu"], row["counter"])
            w.raw(descriptor(row, uuid), 1)
            uuids.append(uuid)
        return keys.select(events.COUNTER_KEY).with_columns(pl.Series("uuid", uuids, pl.UInt64))

    def _counter_rank(self, counter: int) -> int:
        order = list(self.counter_names)
        return order.index(counter) if counter in order else len(order)

    def _frequency(self, w: PacketWriter) -> list[Batch]:
        """The host CPU frequency group, one counter track per CPU, and their samples.

        Only what the capture measured: the frequencies assumed where it has no
        ``cpu_frequency`` event (``frequency.assumed``) would fill the screen with flat tracks
        that look like data; the replay's notes say what was assumed.
        """
        freq = self.results.frequency
        if "assumed" in freq.columns:
            freq = freq.filter(~pl.col("assumed"))
        if not freq.height:
            return []
        group = self.ids("cpu-frequency")
        last = len(self.scenario_rank) + self.vcpus["vm"].n_unique()
        desc = group_track(group, "host CPU frequency", self.ids("root"), last)
        w.raw(descriptor_packet(desc), 1)
        cpus = sorted(set(freq["cpu"].to_list()))
        uuids = [self.ids("cpu-frequency", cpu) for cpu in cpus]
        for cpu, uuid in zip(cpus, uuids, strict=True):
            desc = counter_track(
                uuid, f"CPU {cpu} frequency", group, cpu, unit_name="Hz", multiplier=1000
            )
            w.raw(descriptor_packet(desc), 1)
        tracks = pl.DataFrame(
            {"cpu": cpus, "uuid": uuids}, schema={"cpu": pl.Int16, "uuid": pl.UInt64}
        )
        return [events.frequency_samples(freq, tracks)]


def _pmus(results: Results) -> pl.DataFrame:
    pmus = (results.meta.get("topology") or {}).get("pmus", {})
    return pl.DataFrame(
        [(cpu, name) for name, cpus in pmus.items() for cpu in cpus],
        schema={"cpu": pl.Int16, "host_pmu": pl.Utf8},
        orient="row",
    )


def _timed(results: Results) -> list[pl.DataFrame]:
    return [results.pieces, results.observations, results.findings]


def _first_start(frame: pl.DataFrame) -> int:
    first = frame["start"].min() if frame.height else None
    return int(first) if isinstance(first, int) else 0
