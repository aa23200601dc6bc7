"""The public Python API: open a capture, replay it, compare configurations.

Everything the CLI does is available here for notebooks and scripts::

    from replay.api import open_capture, what_if

    cap = open_capture("trace.dat", topology="plat_info.yml")        # or pmus=[...], vcpus=[...]
    results = what_if(cap)                                            # the compare matrix
    results.summary                    # polars DataFrame, one row per scenario and vCPU
    results.ranking.recommendation     # which configuration to deploy, and why
    what_if(cap, scenarios=["default@cpu0", "fixed-counters-only+v8"], profile="linux-perf")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from importers.capture import Capture
from importers.detect import ProgressFn, load
from importers.errors import TopologyError
from importers.host.resolve import resolve_topology
from importers.host.topology import Topology, parse_reserved_specs
from importers.host.vcpus import discover_vcpus, parse_vcpu_specs
from replay import compare
from replay.engine import Path_, prepare, replay
from replay.profiles import load_profile
from replay.results import Results, assemble
from replay.scenarios import Scenario, parse_scenario
from replay.work import Work


def open_capture(
    path: str | Path,
    *,
    topology: str | Path | None = None,
    pmus: Sequence[str] = (),
    vcpus: Sequence[str] = (),
    reserved_counters: Sequence[str] = (),
    strict: bool = False,
    progress: ProgressFn | None = None,
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
    reserved_counters
        ``CPUS=N|cycles|cycles+N`` strings (``--host-reserved-counters``): counters the host's
        own pinned perf events hold, added to the topology's host conditions.
    """
    capture = load(path, strict=strict, progress=progress)
    described = "topology" in capture.tables and "vcpus" in capture.tables
    if topology is not None or pmus or not described:
        found = resolve_topology(
            capture.tables.get("topology"),
            capture.frame("cpu_frequency"),
            topology_file=topology,
            pmu_specs=list(pmus),
        )
        if found is not None:
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


def capture_topology(capture: Capture) -> Topology | None:
    """The topology a capture carries (after :func:`open_capture`), if any."""
    table = capture.tables.get("topology")
    return Topology.from_table(table) if table is not None and table.num_rows else None


def prepare_replay(capture: Capture, profile: str = "windows") -> Work:
    """The shared work of every scenario (timeline, guest pieces, cycles)."""
    return prepare(capture, capture_topology(capture), load_profile(profile))


def what_if(
    capture: Capture,
    scenarios: Sequence[str | Scenario] | None = None,
    *,
    profile: str = "windows",
    path: Path_ = "vectorized",
    work: Work | None = None,
    on_scenario: Callable[[Scenario], None] | None = None,
    rank: bool = True,
) -> Results:
    """Replay ``capture`` under each scenario (default: the compare matrix) and rank them.

    Scenario names (:func:`~replay.scenarios.parse_scenario`) run a bare ``default``'s first
    ``KVM_ARM_VCPU_INIT`` on the host's first possible CPU. Ranked (``rank``),
    ``results.ranking`` holds the ranking table and the recommendation, and ``results.meta``
    (replay.json) their rows as ``"ranking"`` and ``"recommendation"``. ``on_scenario`` is
    called before each replay.
    """
    work = work or prepare_replay(capture, profile)
    first_cpu = min(work.host.possible_cpus)
    chosen = (
        compare.scenario_matrix(work.host)
        if scenarios is None
        else [s if isinstance(s, Scenario) else parse_scenario(s, first_cpu) for s in scenarios]
    )
    meta = capture.metadata
    source = {
        "path": meta.source_path,
        "sha256": meta.source_sha256,
        "format": meta.format,
        "clock": meta.clock,  # the Perfetto export declares it (replay.export.clocks)
        "ts_unit": meta.ts_unit,
    }
    done = []
    for scenario in chosen:
        if on_scenario:
            on_scenario(scenario)
        done.append(replay(work, scenario, path))
    results = assemble(work, done, path, source)
    if rank:
        results.ranking = compare.rank(results.summary)
        if not work.host.supports_guest_pmuv3():
            results.ranking.recommendation = (
                f"This host offers no vPMU ({results.meta['host']['why_not']}): every "
                "configuration runs the guest without one, so none can give it counters. "
                + results.ranking.recommendation
            )
        results.meta["ranking"] = results.ranking.table.to_dicts()
        results.meta["recommendation"] = results.ranking.recommendation
    return results
