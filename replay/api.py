"""The public Python API: open a capture, replay it, compare configurations.

Everything the CLI does is available here for notebooks and scripts::

    from replay.api import open_capture, what_if

    cap = open_capture("trace.dat", topology="plat_info.yml")        # or pmus=[...], vcpus=[...]
    results = what_if(cap)                                            # the compare matrix
    results.summary                    # polars DataFrame, one row per scenario and vCPU
    results.verdict.text               # which configuration to deploy, on which kernel, and why
    what_if(cap, scenarios=["default@cpu0", "fixed-counters-only+v8"], profile="linux-perf")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from importers.capture import Capture
from importers.detect import ProgressFn, load
from importers.errors import TopologyError
from importers.host.resolve import resolve_topology
from importers.host.topology import Topology, format_cpulist
from importers.host.vcpus import discover_vcpus, parse_vcpu_specs
from replay import compare
from replay.costs import DEFAULT_RECREATE_COST_US
from replay.engine import Path_, prepare, replay
from replay.profiles import load_profile
from replay.results import Results, assemble
from replay.scenarios import Scenario, parse_scenario
from replay.units import to_nanoseconds
from replay.verdict import DEFAULT_MAX_UNKNOWN, decide, input_doubts
from replay.work import Work


def open_capture(
    path: str | Path,
    *,
    topology: str | Path | None = None,
    pmus: Sequence[str] = (),
    vcpus: Sequence[str] = (),
    strict: bool = False,
    progress: ProgressFn | None = None,
    tsc_khz: int | None = None,
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
    """
    capture = load(path, strict=strict, progress=progress)
    if tsc_khz is not None:
        to_nanoseconds(capture, tsc_khz)
    described = "topology" in capture.tables and "vcpus" in capture.tables
    if topology is not None or pmus or not described:
        found = resolve_topology(
            capture.tables.get("topology"),
            capture.frame("cpu_frequency"),
            topology_file=topology,
            pmu_specs=list(pmus),
        )
        if found is not None:
            if pmus:
                _check_cpus_exist(found, capture)
            capture.tables["topology"] = found.to_table()
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
    recreate_cost_us: float = DEFAULT_RECREATE_COST_US,
    prefer: compare.Prefer = "counters",
    max_unknown: float = DEFAULT_MAX_UNKNOWN,
) -> Results:
    """Replay ``capture`` under each scenario (default: the compare matrix) and rank them.

    Scenario names (:func:`~replay.scenarios.parse_scenario`) run a bare ``default``'s first
    ``KVM_ARM_VCPU_INIT`` on the host's first possible CPU. Ranked (``rank``, by
    :func:`replay.compare.rank` with ``prefer``), ``results.ranking`` holds the ranking and
    ``results.verdict`` the :class:`~replay.verdict.Verdict` (inconclusive past
    ``max_unknown``, a share 0-1), and ``results.meta`` (replay.json) has them as
    ``"ranking"``, ``"ranking_rule"``, ``"verdict"`` and ``"recommendation"`` (the verdict's
    text). Perf-event re-creations cost ``recreate_cost_us`` each. ``on_scenario`` is called
    before each replay.
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
    results = assemble(work, done, path, source, recreate_cost_us)
    if rank:
        primary = results.meta["primary_counter"]
        ranking = compare.rank(results.summary, results.findings, primary, chosen, prefer)
        verdict = decide(
            ranking,
            results.summary,
            results.findings,
            {s.name: s.kernel_label for s in chosen},
            max_unknown=max_unknown,
            doubts=input_doubts(meta.skipped, work.absent_vcpus),
        )
        results.ranking, results.verdict = ranking, verdict
        results.meta["ranking"] = ranking.table.to_dicts()
        results.meta["ranking_rule"] = {"prefer": prefer, "keys": ranking.rule}
        results.meta["verdict"] = verdict.to_json()
        results.meta["recommendation"] = verdict.text
    return results
