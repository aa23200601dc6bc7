"""``Results``: everything a replay produced, as tables, with a deterministic on-disk form.

A results directory holds ``observations.parquet``, ``findings.parquet``, ``ticks.parquet``,
``reads.parquet`` (zero-delta checks at the guest's traced PMCCNTR reads),
``summary.parquet``, ``pieces.parquet`` (where each vCPU ran: the timeline),
``frequency.parquet`` (the CPU frequency steps used) and ``replay.json`` (inputs, scenarios,
notes). Same inputs give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from importers.errors import CaptureFormatError, UsageError
from importers.output import whole_directory
from replay import __version__
from replay.compare import Ranking
from replay.costs import (
    DEFAULT_RECREATE_COST_US,
    capacity_weights,
    let_in_windows,
    vcpu_costs,
)
from replay.detectors import findings, tick_table
from replay.host_report import host_block
from replay.pmu import CYCLE_IDX
from replay.pmu_reads import read_checks
from replay.summary import summarize, vcpu_totals
from replay.verdict import Verdict
from replay.work import ScenarioResult, Work

TABLE_NAMES = ("observations", "findings", "ticks", "reads", "summary", "pieces", "frequency")
META_FILE = "replay.json"


@dataclass
class Results:
    """Tables of a replay (see module docstring), its description ``meta`` and, from
    :func:`replay.api.what_if`, the ranking of its scenarios and the verdict."""

    observations: pl.DataFrame
    findings: pl.DataFrame
    ticks: pl.DataFrame
    reads: pl.DataFrame
    summary: pl.DataFrame
    pieces: pl.DataFrame
    frequency: pl.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    # Not saved as tables: replay.json keeps the ranking's rows and rule, and the verdict.
    ranking: Ranking | None = None
    verdict: Verdict | None = None
    #: False when the replay let each scenario's observations go once its other tables were
    #: made (:func:`replay.api.what_if` ``keep_observations``): ``observations`` has no rows
    observations_kept: bool = True

    def require_observations(self, purpose: str) -> None:
        """Raise unless every observation row was kept (``purpose``: what needs them).

        Raises
        ------
        UsageError
            The replay let the observations go.
        """
        if not self.observations_kept:
            raise UsageError(
                f"{purpose} needs every observation row, and this replay let them go "
                "(what_if(..., keep_observations=False)): replay again keeping them"
            )

    def save(self, directory: str | Path, also: Callable[[Path], None] | None = None) -> Path:
        """Write the tables and ``replay.json`` (last) as ``directory``, whole or absent
        (:func:`importers.output.whole_directory`: an earlier results directory there is
        replaced as a whole, and left as it was if this save fails or is interrupted).

        ``also`` writes more files into the directory in the same step (it is given the
        directory being filled): a trace or report that belongs in it is never added after.
        """
        self.require_observations("saving the results")
        with whole_directory(directory, META_FILE) as out:
            for name in TABLE_NAMES:
                getattr(self, name).write_parquet(out / f"{name}.parquet", compression="zstd")
            if also is not None:
                also(out)
            (out / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> Results:
        src = Path(directory)
        try:
            meta = json.loads((src / META_FILE).read_text())
            tables = {name: pl.read_parquet(src / f"{name}.parquet") for name in TABLE_NAMES}
        except (OSError, ValueError) as exc:
            raise CaptureFormatError(
                f"{src}: not a replay results directory ({exc}); create one with "
                "`pmu-replay replay CAPTURE -o DIR`"
            ) from None
        # ranking and verdict named: the saved form has only their JSON (meta), and mypy sees
        # **tables skip them (a saved replay kept its observations)
        return cls(meta=meta, ranking=None, verdict=None, observations_kept=True, **tables)


def primary_counter(work: Work) -> int:
    """The counter that stands for a vCPU in per-vCPU numbers: PMCCNTR if the guest uses it."""
    idx = [r.idx for r in work.profile.counters]
    return CYCLE_IDX if CYCLE_IDX in idx else idx[0]


@dataclass(frozen=True)
class Detected:
    """What one scenario's results take from its observations: its findings, its guest
    ticks (None when the guest profile reads no tick), its per-vCPU totals
    (:func:`replay.summary.vcpu_totals`), its checks of the guest's cycle counter reads
    (:func:`replay.pmu_reads.read_checks`) and the entry windows it let in that the
    capture's kernel refused (:func:`replay.costs.let_in_windows`)."""

    findings: pl.DataFrame
    ticks: pl.DataFrame | None
    totals: pl.DataFrame
    reads: pl.DataFrame
    let_in: pl.DataFrame


def detect(work: Work, result: ScenarioResult) -> Detected:
    """The detectors (and every other reader of the observations) run on one scenario's
    observations alone.

    Scenario by scenario, because the detectors' intermediate tables of a long capture's
    every scenario at once cost more in page faults than their work: on 9.8 M sched events
    (34 M observation rows) 21 CPU-s at once against 13 one by one (benchmarks/README.md).
    All of one scenario's in one task (:class:`Detections` runs two at a time), after which
    nothing needs its observations but the files that hold them.
    """
    primary = primary_counter(work)
    tick_ns = work.profile.tick_ns
    return Detected(
        findings(result.observations, primary, result.recreations),
        tick_table(result.observations, primary, work.timeline.start, tick_ns) if tick_ns else None,
        vcpu_totals(result.observations, primary),
        read_checks(result.observations, work.accesses),
        let_in_windows(result.observations),
    )


def detect_each(work: Work, results: list[ScenarioResult]) -> list[Detected]:
    """:func:`detect` of every scenario, two at a time (:class:`Detections`)."""
    with Detections(work) as detections:
        for result in results:
            detections.submit(result)
        return detections.done()


class Detections:
    """:func:`detect` of each scenario started as soon as it is replayed, two at a time, on
    threads beside the replays (polars and numpy release the GIL).

    A replay keeps one core busy and the second only in part, and the detectors of the
    scenarios before it fill that core; run after every replay, they waited for it instead
    (compare of 9.8 M sched events: the replays used 1.3 of the 2 cores,
    benchmarks/README.md).
    """

    def __init__(self, work: Work) -> None:
        self._work = work
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="detect")
        self._pending: list[Future[Detected]] = []

    def __enter__(self) -> Detections:
        return self

    def __exit__(self, *exc: object) -> None:
        # a replay that raised or a Ctrl-C: the queued detections are dropped and the one or
        # two under way end before the error goes on (round 8 saw a Ctrl-C hang with such a
        # thread once in seven runs; 50 interrupts at random moments of a 200 k-event compare,
        # 12 in the replays of a 10 M-event one (out 0.1-2.5 s after) and test_faults' Ctrl-C
        # test run eight times did not hang: benchmarks/README.md, round 10)
        self._pool.shutdown(cancel_futures=True)

    def submit(self, result: ScenarioResult) -> None:
        self._pending.append(self._pool.submit(detect, self._work, result))

    def done(self) -> list[Detected]:
        """Every submitted scenario's tables, in the order submitted."""
        return [f.result() for f in self._pending]


def _in_name_order(
    results: list[ScenarioResult], tables: list[pl.DataFrame | None]
) -> pl.DataFrame:
    """The scenarios' tables put together in scenario name order: the first sort key of the
    detectors' tables, so the rows come in the order one call on every scenario's
    observations gives (scenario names are unique, :func:`replay.api.what_if`).

    In one chunk: Parquet row groups follow chunks, and the saved files stay what one call
    over every scenario wrote.
    """
    ordered = [
        t
        for _, t in sorted(zip(results, tables, strict=True), key=lambda p: p[0].scenario.name)
        if t is not None
    ]
    # A copy of the whole tables at once, though it holds the findings twice at compare's
    # peak: put together a column at a time instead (pl.concat of each column's Series), the
    # summary's risky ticks per guest hour came out one ulp apart on some captures
    # (tests/replay/test_fleet.py against main's workers).
    return pl.concat(ordered, rechunk=True)


def assemble(
    work: Work,
    results: list[ScenarioResult],
    path: str,
    source: dict[str, Any],
    recreate_cost_us: float = DEFAULT_RECREATE_COST_US,
    detected: list[Detected] | None = None,
) -> Results:
    """Observations of every scenario -> findings, ticks, summary and metadata; perf-event
    re-creations are costed at ``recreate_cost_us`` each (:mod:`replay.costs`). ``detected``:
    :func:`detect` of each of ``results`` in its order, when the caller ran it already
    (:class:`Detections`)."""
    primary = primary_counter(work)
    tick_ns = work.profile.tick_ns
    lost = {r.scenario.name: r.lost_counters for r in results}
    each = detected if detected is not None else detect_each(work, results)
    reads = _in_name_order(results, [d.reads for d in each])
    costs = vcpu_costs(work, results, [d.let_in for d in each], recreate_cost_us)
    found = _in_name_order(results, [d.findings for d in each])
    ticks = _in_name_order(results, [d.ticks for d in each]) if tick_ns else pl.DataFrame()
    totals = _in_name_order(results, [d.totals for d in each])
    summary = summarize(totals, found, ticks if tick_ns else None, reads, primary, lost, costs)
    _, capacity_basis = capacity_weights(work.topology, work.host)
    meta = {
        "pmu_replay": __version__,
        "engine_path": path,
        "capture": source,
        "topology": {
            "source": work.topology.source,
            "pmus": {p.name: sorted(p.cpus) for p in work.host.registered},
            "perf_types": {p.name: p.perf_type for p in work.host.registered},
        },
        "profile": {
            "name": work.profile.name,
            "description": work.profile.description,
            "counters": [
                {"idx": r.idx, "event": r.event, "name": r.name} for r in work.profile.counters
            ],
            "tick_ns": tick_ns,
        },
        "scenarios": [
            {
                "name": r.scenario.name,
                "mode": str(r.scenario.mode),
                "kernel": str(r.scenario.kernel),
                "proposed": r.scenario.proposed,
                "quirks": list(r.scenario.quirks_on),
            }
            for r in results
        ],
        "costs": {"recreate_cost_us": recreate_cost_us, "capacity_basis": capacity_basis},
        "primary_counter": primary,
        "start": work.timeline.start,
        "end": work.timeline.end,
        "notes": work.notes,
        "vms": work.vms,
        "vcpus_without_rows": work.absent_vcpus,
        "host": host_block(work),
    }
    return Results(
        observations=pl.concat([r.observations for r in results]),
        findings=found,
        ticks=ticks,
        reads=reads,
        summary=summary,
        pieces=work.pieces.select(
            "vm",
            "tid",
            "vcpu_index",
            "residency",
            "window",
            "tick",
            "cpu",
            "start",
            "end",
            "state",
            "cause",
            "cycles",
        ),
        frequency=work.timeline.clock.steps,
        meta=meta,
    )
