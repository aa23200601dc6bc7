"""The plan of one Perfetto export: its tracks, their names, uuids and order, and the stream of
packets written under them (what the trace shows: :mod:`replay.export.perfetto`).

:meth:`Plan.of` fixes everything that decides the file's bytes before anything is written
(vCPU order, track uuids hashed from names, scenario and counter ranks), so that the same
results give the same file; :meth:`Plan.write` declares the tracks and streams the events a
group of vCPUs at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from importers.errors import CaptureFormatError, UsageError
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
from replay.host_report import host_clusters, host_lines
from replay.results import Results


def _meta(results: Results, key: str) -> Any:
    try:
        return results.meta[key]
    except KeyError:
        raise CaptureFormatError(
            f"replay results lack {key!r} in replay.json; re-run `pmu-replay replay ... -o DIR`"
        ) from None


@dataclass
class Plan:
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
    def of(cls, results: Results) -> Plan:
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
    return pl.DataFrame(
        [(cpu, name) for name, cpus in host_clusters(results.meta).items() for cpu in cpus],
        schema={"cpu": pl.Int16, "host_pmu": pl.Utf8},
        orient="row",
    )


def _timed(results: Results) -> list[pl.DataFrame]:
    return [results.pieces, results.observations, results.findings]


def _first_start(frame: pl.DataFrame) -> int:
    first = frame["start"].min() if frame.height else None
    return int(first) if isinstance(first, int) else 0
