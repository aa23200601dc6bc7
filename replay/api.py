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
from dataclasses import replace

from importers.capture import Capture
from importers.errors import UsageError
from replay import compare
from replay.costs import DEFAULT_RECREATE_COST_US
from replay.engine import Path_, prepare, replay
from replay.opening import capture_topology, open_capture
from replay.profiles import load_profile
from replay.results import Detections, Results, assemble
from replay.scenarios import Scenario, parse_scenario
from replay.verdict import DEFAULT_MAX_UNKNOWN, decide, input_doubts
from replay.work import Work

__all__ = ["capture_topology", "open_capture", "prepare_replay", "what_if"]


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
    keep_observations: bool = True,
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

    Without ``keep_observations``, each scenario's observations (one row per guest piece and
    counter, by far the largest table) are let go as soon as the tables made from them are:
    ``results.observations`` is then empty, and saving or exporting the results raises.
    """
    work = work or prepare_replay(capture, profile)
    first_cpu = min(work.host.possible_cpus)
    chosen = (
        compare.scenario_matrix(work.host)
        if scenarios is None
        else [s if isinstance(s, Scenario) else parse_scenario(s, first_cpu) for s in scenarios]
    )
    chosen = _once_each(chosen)
    meta = capture.metadata
    source = {
        "path": meta.source_path,
        "sha256": meta.source_sha256,
        "format": meta.format,
        "clock": meta.clock,  # the Perfetto export declares it (replay.export.clocks)
        "ts_unit": meta.ts_unit,
    }
    done = []
    with Detections(work) as detections:
        for scenario in chosen:
            if on_scenario:
                on_scenario(scenario)
            result = replay(work, scenario, path)
            detections.submit(result)
            if not keep_observations:
                # the detection holds them until it is done (the largest table by far: on a
                # compare of 9.8 M sched events, all scenarios' took 3.6 GB)
                result = replace(result, observations=result.observations.clear())
            done.append(result)
            del result  # not kept by the loop through the next replay
        # the replays' shared rows (replay.paths.vectorized.counter_rows): each scenario's
        # observations keep the columns they use, and the detectors can have the rest of
        # that memory
        work.counter_rows = None
        detected = detections.done()
    results = assemble(work, done, path, source, recreate_cost_us, detected)
    results.observations_kept = keep_observations
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
            no_vpmu=None if work.host.supports_guest_pmuv3() else results.meta["host"]["why_not"],
        )
        results.ranking, results.verdict = ranking, verdict
        results.meta["ranking"] = ranking.table.to_dicts()
        results.meta["ranking_rule"] = {"prefer": prefer, "keys": ranking.rule}
        results.meta["verdict"] = verdict.to_json()
        results.meta["recommendation"] = verdict.text
    return results


def _once_each(scenarios: list[Scenario]) -> list[Scenario]:
    """Each scenario once, in the order given: the result tables tell scenarios apart by
    name, so a repeat (``compare --scenario default@cpu0``, already in the matrix) would count
    its stalls and ticks twice.

    Raises
    ------
    UsageError
        For two different scenarios with one name (the name leaves out an event filter's
        ranges and the PMU interrupt).
    """
    by_name: dict[str, Scenario] = {}
    for scenario in scenarios:
        if by_name.setdefault(scenario.name, scenario) != scenario:
            raise UsageError(
                f"two different scenarios are both named {scenario.name!r} (their event filters "
                "or PMU interrupts differ): the result tables tell scenarios apart by name; "
                "replay them in separate calls"
            )
    return list(by_name.values())
