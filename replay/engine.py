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
from importers.host.pmus import PmuDescription, describe_pmus
from importers.host.topology import Topology
from replay.loads import vcpu_loads
from replay.paths.reference import replay_reference
from replay.paths.vectorized import replay_vectorized
from replay.pmu import DEFAULT_PMCEID, HostPmu, HostPmus
from replay.pmu_reads import describe_accesses, pmu_accesses
from replay.profiles import GuestProfile
from replay.scenarios import Scenario
from replay.timeline import Timeline, build_timeline
from replay.units import require_nanoseconds
from replay.work import ScenarioResult, Work

Path_ = Literal["vectorized", "reference"]
NEVER_RAN = "its thread never ran in the capture (no sched_switch or kvm event of it)"


def host_pmus(topology: Topology, cpus_seen: set[int]) -> tuple[HostPmus, list[PmuDescription]]:
    """KVM's PMU list for ``topology``, built from the PMUs as they really are
    (:mod:`importers.host.pmus`); every CPU the vCPUs ran on must be described."""
    missing = sorted(cpus_seen - set(topology.cpus))
    if missing:
        raise TopologyError(
            f"vCPU threads ran on CPUs {missing}, which the topology ({topology.source}: "
            f"{topology.describe()}) does not describe; give every CPU with --pmu or --topology"
        )
    described = describe_pmus(topology)
    used = {p.perf_type for p in described if p.perf_type is not None}
    free = (t for t in range(8, 1 << 16) if t not in used)
    pmus = [
        HostPmu(
            p.name,
            p.perf_type if p.perf_type is not None else next(free),
            p.cpus,
            num_counters=p.counters.value,
            pmuver=p.pmuver.value,
            pmceid=p.pmceid.value or DEFAULT_PMCEID,
            mappable_events=p.mappable_events,
        )
        for p in described
    ]
    host = HostPmus(
        pmus,
        possible_cpus=topology.cpus,
        # kvm_supports_32bit_el0(): every CPU runs AArch32 EL0 (no mismatched 32-bit EL0).
        aarch32_el0=all(p.aarch32_el0.value for p in described),
        # has_impdef_pmuv3(): ARM64_WORKAROUND_PMUV3_IMPDEF_TRAPS needs every CPU to be an
        # Apple M1/M2 core (the catalogue's "apple" kind); the kernel also requires VHE.
        impdef_traps=bool(described) and all(p.impdef == "apple" for p in described),
        reserved=topology.reserved,
    )
    return host, described


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
    host, described = host_pmus(topology, set(timeline.cpus))
    pieces = _cut_at_ticks(timeline, profile.tick_ns)
    cycles = pl.when(pl.col("state") == "guest").then(timeline.clock.cycles(pieces))
    pieces = profile.event_counts(pieces.with_columns(cycles.alias("cycles")))
    attempts = profile.event_counts(_attempt_pieces(timeline))
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
    loads = vcpu_loads(pieces, host, attempts)
    return Work(
        timeline,
        topology,
        host,
        profile,
        pieces,
        vms,
        accesses,
        loads,
        attempts,
        notes,
        absent,
        described,
    )


def _attempt_pieces(timeline: Timeline) -> pl.DataFrame:
    """The refused entry attempts (:mod:`replay.refused`) as zero-length pieces in state
    ``attempt``, each its own window (numbered after the guest windows), running no cycles."""
    first = timeline.pieces.height  # guest windows are numbered below it (_cut_at_ticks)
    return timeline.attempts.with_row_index("window", offset=first).select(
        "vm",
        "tid",
        "vcpu_index",
        "residency",
        pl.col("window").cast(pl.Int64),
        pl.lit(None, pl.Int64).alias("tick"),
        "cpu",
        pl.col("ts").alias("start"),
        pl.col("ts").alias("end"),
        pl.lit("attempt").alias("state"),
        pl.lit(None, pl.Utf8).alias("cause"),
        pl.lit(0, pl.Int64).alias("cycles"),
        "until",
        "off_cpu_ns",
    )


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
    """Replay ``work`` under ``scenario`` on the chosen path.

    The vectorized path hands back scenarios whose counting depends on history (host counter
    contention); those are stepped on the reference path, and a note says so.
    """
    if path == "vectorized":
        result = replay_vectorized(work, scenario)
        if result is not None:
            return result
        note = (
            f"{scenario.name}: backing events get no hardware counter on some CPUs (host counter "
            "contention), so counting depends on where the vCPU ran before: stepped on the "
            "reference path"
        )
        if note not in work.notes:
            work.notes.append(note)
    return replay_reference(work, scenario)
