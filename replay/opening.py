"""Open a capture and settle its host description: the first step of every command.

:func:`open_capture` is the public API's (:mod:`replay.api`); it lives apart from the replay
engine so that ``pmu-replay import`` loads the importers and the host description only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from importers.capture import Capture
from importers.capture_writer import CaptureWriter
from importers.detect import ProgressFn, load
from importers.errors import TopologyError
from importers.host.resolve import resolve_topology
from importers.host.topology import Topology, format_cpulist, parse_reserved_specs
from importers.host.vcpus import discover_vcpus, parse_vcpu_specs
from replay.units import to_nanoseconds


def open_capture(
    path: str | Path,
    *,
    topology: str | Path | None = None,
    pmus: Sequence[str] = (),
    vcpus: Sequence[str] = (),
    reserved_counters: Sequence[str] = (),
    strict: bool = False,
    progress: ProgressFn | None = None,
    tsc_khz: int | None = None,
    writer: CaptureWriter | None = None,
) -> Capture:
    """Import a capture and settle its host description.

    Parameters
    ----------
    path
        Any capture file, a ``pmu-replay record`` directory or a saved capture directory.
    topology, pmus
        CPU -> PMU map: a topology file, or ``NAME=CPUS`` strings (``--pmu``). Default: what
        the capture carries, else inferred from ``cpu_frequency`` (flagged).
    vcpus
        ``TID=VM:INDEX`` strings (``--vcpu``). Default: what the capture names, else found
        from VMM thread names and kvm events.
    tsc_khz
        Frequency of the capture's raw clock (``--tsc-khz``), for a capture whose timestamps
        are clock counts without a recorded conversion (:mod:`replay.units`).
    reserved_counters
        ``CPUS=N|cycles|cycles+N`` strings (``--host-reserved-counters``): counters the host's
        own pinned perf events hold, added to the topology's host conditions.
    writer
        The directory the capture is being saved to (``pmu-replay import -o``): importers
        that can write their largest tables there as they decode them do
        (:data:`importers.detect.STREAMING`), except with ``tsc_khz``; the caller finishes
        it.
    """
    # --tsc-khz converts the tables in memory after the import: none may have been written
    # to the output already, as streaming importers would (they keep a copy and the writer
    # would not write it again, so the file held the raw clock counts)
    streaming = writer if tsc_khz is None else None
    capture = load(path, strict=strict, progress=progress, writer=streaming)
    if tsc_khz is not None:
        to_nanoseconds(capture, tsc_khz)
    described = "topology" in capture.tables and "vcpus" in capture.tables
    if topology is not None or pmus or not described:
        found = resolve_topology(
            capture.tables.get("topology"),
            capture.table("cpu_frequency"),
            topology_file=topology,
            pmu_specs=list(pmus),
        )
        if found is not None:
            if pmus:
                _check_cpus_exist(found, capture)
            capture.tables["topology"] = found.to_table()
    if reserved_counters:
        held = capture_topology(capture)
        if held is None:
            raise TopologyError(
                "--host-reserved-counters needs a topology (CPU -> PMU): give --topology or --pmu"
            )
        held.reserved.update(parse_reserved_specs(list(reserved_counters)))
        capture.tables["topology"] = held.to_table()
    if vcpus or "vcpus" not in capture.tables:
        table = discover_vcpus(capture, parse_vcpu_specs(list(vcpus)))
        if table.num_rows:
            capture.tables["vcpus"] = table
    return capture


def _check_cpus_exist(topology: Topology, capture: Capture) -> None:
    """``--pmu`` lists only CPUs the capture has: a typo such as ``4-99`` on a 6-CPU capture
    would otherwise become 94 phantom CPUs with assumed frequencies."""
    count = capture.metadata.cpu_count
    if count is None:
        return
    for pmu in topology.pmus:
        phantom = frozenset(c for c in pmu.cpus if c >= count)
        if phantom:
            raise TopologyError(
                f"--pmu {pmu.name}={format_cpulist(pmu.cpus)}: CPUs {format_cpulist(phantom)} "
                f"are not in {capture.metadata.source_path}, which has {count} CPUs "
                f"({format_cpulist(frozenset(range(count)))}); list only the capture's CPUs"
            )


def capture_topology(capture: Capture) -> Topology | None:
    """The topology a capture carries (after :func:`open_capture`), if any."""
    table = capture.tables.get("topology")
    return Topology.from_table(table) if table is not None and table.num_rows else None
