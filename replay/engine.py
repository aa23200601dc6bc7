"""The replay engine: a capture's real schedule through the vPMU model, per scenario.

:func:`prepare` turns a capture into the work both paths share: every vCPU's pieces (from
:mod:`replay.timeline`), guest pieces cut at the guest's counter-reading ticks, with the cycles
and other PMU events each piece generates (:mod:`replay.profiles`). :func:`replay` then runs
one scenario either on the *reference* path (:mod:`replay.paths.reference`: the model stepped
through every ``vcpu_load``/``guest_enter``/``advance``/``guest_exit``/``vcpu_put``) or on the
*vectorized* path (:mod:`replay.paths.vectorized`: the model asked once per CPU, the history
applied with polars). Both return the same ``observations`` table (``DESIGN.md`` "Tables"), one
row per guest piece, counter and scenario; a differential test holds them equal. The types both
paths share (``Work``, ``ScenarioResult``, the observation schema) are in :mod:`replay.work`,
which imports neither path nor this dispatcher.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl

from importers.capture import Capture
from importers.errors import MissingEventsError, TopologyError
from importers.host.topology import Topology
from replay.loads import vcpu_loads
from replay.paths.reference import replay_reference
from replay.paths.vectorized import replay_vectorized
from replay.pmu import HostPmu, HostPmus
from replay.pmu_reads import describe_accesses, pmu_accesses
from replay.profiles import GuestProfile
from replay.scenarios import Scenario
from replay.timeline import Timeline, build_timeline
from replay.units import require_nanoseconds
from replay.work import ScenarioResult, Work

Path_ = Literal["vectorized", "reference"]
NEVER_RAN = "its thread never ran in the capture (no sched_switch or kvm event of it)"


def host_pmus(topology: Topology, cpus_seen: set[int]) -> HostPmus:
    """KVM's PMU list for ``topology``; every CPU the vCPUs ran on must be described."""
    missing = sorted(cpus_seen - set(topology.cpus))
    if missing:
        raise TopologyError(
            f"vCPU threads ran on CPUs {missing}, which the topology ({topology.source}: "
            f"{topology.describe()}) does not describe; give every CPU with --pmu or --topology"
        )
    used = {p.perf_type for p in topology.pmus if p.perf_type is not None}
    free = (t for t in range(8, 1 << 16) if t not in used)
    pmus = [
        HostPmu(p.name, p.perf_type if p.perf_type is not None else next(free), p.cpus)
        for p in topology.pmus
    ]
    return HostPmus(pmus, possible_cpus=topology.cpus)


def prepare(capture: Capture, topology: Topology | None, profile: GuestProfile) -> Work:
    """Build the shared work of a replay (see module docstring).

    Raises
    ------
    UsageError
        For timestamps in raw clock counts (:func:`replay.units.require_nanoseconds`).
    """
    require_nanoseconds(capture)
    if topology is None:
        raise TopologyError(
            f"{capture.metadata.source_path}: no CPU -> PMU topology; give --topology FILE "
            "(sysfs snapshot, LISA platform file) or --pmu NAME=CPUS per host PMU"
        )
    timeline = build_timeline(capture, topology)
    host = host_pmus(topology, set(timeline.cpus))
    pieces = _cut_at_ticks(timeline, profile.tick_ns)
    cycles = pl.when(pl.col("state") == "guest").then(timeline.clock.cycles(pieces))
    pieces = profile.event_counts(pieces.with_columns(cycles.alias("cycles")))
    vms: dict[str, list[int]] = {}
    absent: list[dict[str, Any]] = []
    ran = set(pieces["tid"].unique().to_list())
    order = capture.frame("vcpus").sort("vm", "vcpu_index", "tid", nulls_last=True)
    for vm, tid, index in order.select(pl.col("vm").cast(pl.Utf8), "tid", "vcpu_index").rows():
        if tid in ran:
            vms.setdefault(vm, []).append(tid)
        else:
            absent.append({"vm": vm, "vcpu": tid, "vcpu_index": index, "reason": NEVER_RAN})
    if not vms:
        raise MissingEventsError(
            f"{capture.metadata.source_path}: the vCPU threads never ran in the capture"
        )
    notes = list(timeline.notes)
    accesses = pmu_accesses(capture, [t for tids in vms.values() for t in tids])
    if (seen_accesses := describe_accesses(accesses)) is not None:
        notes.append(seen_accesses)
    if topology.inferred:
        notes.insert(
            0,
            f"topology inferred from cpu_frequency ({topology.describe()}): CPUs that change "
            "frequency together are taken as one PMU; give --topology or --pmu for the real map",
        )
    loads = vcpu_loads(pieces, host)
    return Work(timeline, topology, host, profile, pieces, vms, accesses, loads, notes, absent)


def _cut_at_ticks(timeline: Timeline, tick_ns: int | None) -> pl.DataFrame:
    """Number guest windows and cut them where a guest tick falls inside.

    The pieces stay in the timeline's thread and time order (an explode keeps row order).
    """
    guest = pl.col("state") == "guest"
    pieces = timeline.pieces.with_columns(
        pl.when(guest).then(pl.int_range(pl.len())).alias("window")
    )
    if tick_ns is None:
        return pieces.with_columns(pl.lit(None, pl.Int64).alias("tick"))
    t0 = timeline.start
    first = (pl.col("start") - t0) // tick_ns
    last = (pl.col("end") - 1 - t0) // tick_ns
    # non-guest pieces get a null tick list, which explodes to one row with a null tick, and
    # max/min_horizontal skip the nulls
    return (
        pieces.with_columns(pl.when(guest).then(pl.int_ranges(first, last + 1)).alias("tick"))
        .explode("tick")
        .with_columns(
            pl.max_horizontal("start", t0 + pl.col("tick") * tick_ns).alias("start"),
            pl.min_horizontal("end", t0 + (pl.col("tick") + 1) * tick_ns).alias("end"),
        )
    )


def replay(work: Work, scenario: Scenario, path: Path_ = "vectorized") -> ScenarioResult:
    """Replay ``work`` under ``scenario`` on the chosen path."""
    if path == "reference":
        return replay_reference(work, scenario)
    return replay_vectorized(work, scenario)
