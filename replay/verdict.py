"""The verdict: which configuration to deploy, on which kernel, and how sure the replay is.

Built on a :class:`~replay.compare.Ranking` (``DESIGN.md``, "What a verdict must say"):

* ``scenario``: the best-ranked configuration, and ``kernel``: ``mainline`` or, for the
  proposed FIXED_COUNTERS_ONLY, "proposed (series revision v8), not in a released kernel";
  ``mainline_fallback``: the best-ranked configuration a released kernel has (the same
  scenario when that is the best);
* ``status``: ``inconclusive`` when any vCPU's unknown time (lost events, truncated input,
  contradictory records; under some scenarios, the stretches after entries the capture's
  kernel refused) exceeds ``max_unknown`` of its time on CPUs under any scenario, else
  ``conclusive``;
* ``reasons``: everything that limits the verdict, the causes of inconclusiveness first:
  vCPUs over the limit (with the causes of their unknown time), then vCPUs with unknown time
  within it, input the importer skipped, vCPUs without a row and why;
* ``text``: the recommendation in words (``recommendation`` in ``replay.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from replay.compare import Ranking
from replay.work import describe_absent

DEFAULT_MAX_UNKNOWN = 0.05


@dataclass(frozen=True)
class Verdict:
    """The machine-readable verdict (``"verdict"`` in ``replay.json`` and ``--json``)."""

    status: str
    scenario: str | None
    kernel: str | None
    mainline_fallback: str | None
    reasons: list[str] = field(default_factory=list)
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    ranking: Ranking,
    summary: pl.DataFrame,
    findings: pl.DataFrame,
    kernels: dict[str, str],
    *,
    max_unknown: float = DEFAULT_MAX_UNKNOWN,
    doubts: tuple[str, ...] = (),
    no_vpmu: str | None = None,
) -> Verdict:
    """The verdict on a ranking (see module docstring).

    Parameters
    ----------
    ranking
        :func:`replay.compare.rank` of the replay.
    summary, findings
        The replay's tables.
    kernels
        Scenario name -> :attr:`replay.scenarios.Scenario.kernel_label`.
    max_unknown
        The largest share (0-1) of a vCPU's time on CPUs that may be unknown.
    doubts
        Other limits to state (skipped input, vCPUs without a row).
    no_vpmu
        Why the host offers no vPMU at all (:meth:`replay.pmu.HostPmus.supports_guest_pmuv3`
        false), if it does not: every mode then runs the guest without one, and the verdict
        says so first.
    """
    table = ranking.table
    if table.is_empty():
        return Verdict(
            "inconclusive", None, None, None, ["nothing was replayed"], "nothing to compare"
        )
    best = table.row(0, named=True)
    mainline = table.filter(~pl.col("proposed"))
    fallback = mainline.row(0, named=True) if mainline.height else None
    over, within = _unknown(summary, findings, max_unknown)
    reasons = [*over, *within, *doubts]
    status = "inconclusive" if over else "conclusive"
    text = _text(table, best, fallback, kernels, status, over, max_unknown)
    if no_vpmu is not None:
        reasons.insert(0, f"this host offers no vPMU: {no_vpmu}")
        text = (
            f"This host offers no vPMU ({no_vpmu}): every configuration runs the guest without "
            f"one, so none can give it counters. {text}"
        )
    return Verdict(
        status,
        best["scenario"],
        kernels[best["scenario"]],
        None if fallback is None else fallback["scenario"],
        reasons,
        text,
    )


def _unknown(
    summary: pl.DataFrame, findings: pl.DataFrame, max_unknown: float
) -> tuple[list[str], list[str]]:
    """Statements about the vCPUs with unknown time: over the limit, within it.

    Lost, truncated or contradictory records hide the same time under every scenario; the
    stretch after an entry the capture's kernel refused is unknown only under the scenarios
    that would let it in (:mod:`replay.refused`). Each vCPU is judged by the scenario with its
    largest unknown share (the first in the summary at equal shares), named when the scenarios
    differ.
    """
    order = summary.with_row_index("order")
    worst = (
        order.filter(pl.col("unknown_ns") > 0)
        .sort("vcpu", "unknown_share", "order", descending=[False, True, False])
        .group_by("vcpu", maintain_order=True)
        .first()
    )
    varies = order.group_by("vcpu").agg((pl.col("unknown_ns").n_unique() > 1).alias("varies"))
    over: list[str] = []
    within: list[str] = []
    doubtful = worst.join(varies, on="vcpu").sort("vm", "vcpu_index", "vcpu")
    for row in doubtful.iter_rows(named=True):
        causes = (
            findings.filter(
                (pl.col("kind") == "unknown")
                & (pl.col("scenario") == row["scenario"])
                & (pl.col("vcpu") == row["vcpu"])
            )
            .group_by("cause")
            .agg(pl.col("duration").sum(), pl.col("cpu").unique().sort())
            .sort("duration", "cause", descending=[True, False])
        )
        why = [
            f"{c['cause']}{_on_cpus(c['cpu'])}: {c['duration'] / 1e9:.3f} s"
            for c in causes.iter_rows(named=True)
        ]
        share = row["unknown_share"]
        limit = "above" if share > max_unknown else "within"
        under = f" under {row['scenario']}" if row["varies"] else ""
        statement = (
            f"vCPU {row['vm']}/{row['vcpu_index']} (thread {row['vcpu']}): "
            f"{row['unknown_ns'] / 1e9:.3f} s unknown{under}, {share:.1%} of its "
            f"{row['on_cpu_ns'] / 1e9:.3f} s on CPUs, {limit} the {max_unknown:.1%} limit "
            f"({'; '.join(why)})"
        )
        (over if share > max_unknown else within).append(statement)
    return over, within


def _on_cpus(cpus: list[int | None]) -> str:
    known = [str(c) for c in cpus if c is not None]
    return f" on CPU {','.join(known)}" if known else ""


def _text(
    table: pl.DataFrame,
    best: dict[str, Any],
    fallback: dict[str, Any] | None,
    kernels: dict[str, str],
    status: str,
    over: list[str],
    max_unknown: float,
) -> str:
    parts = []
    if status == "inconclusive":
        parts.append(
            f"inconclusive: {len(over)} vCPU(s) have more than {max_unknown:.1%} of their time "
            "unknown (see reasons); the ranking holds only if nothing happened there"
        )
    lead = "Best ranked" if status == "inconclusive" else "deploy"
    parts.append(f"{lead} {best['scenario']}, {kernels[best['scenario']]}: {best['assessment']}")
    if fallback is not None and fallback["scenario"] != best["scenario"]:
        parts.append(f"Best on a released kernel: {fallback['scenario']}: {fallback['assessment']}")
    worst = table.filter(pl.col("stalled_ns") > 0).sort("stalled_ns", descending=True)
    if not worst.is_empty() and worst["scenario"][0] != best["scenario"]:
        w = worst.row(0, named=True)
        stall = (
            f"The worst, {w['scenario']}, stalls the guest's counters "
            f"{w['stalled_ns'] / 1e9:.3f} s ({w['stalled_share'] * 100:.1f}% of guest time)"
        )
        if (w["risky_ticks"] or 0) > 0:
            stall += f" with {w['risky_ticks']} risky ticks"
        parts.append(stall)
    loads = best["cross_pmu_loads"]
    if loads:
        rate = best["cross_pmu_loads_per_guest_s"]
        per_s = f", {rate:.1f} per second of the schedule's guest time" if rate else ""
        parts.append(f"The schedule loaded vCPUs onto another host PMU {loads} times{per_s}")
    if best["unknown_ns"]:
        parts.append(
            f"{best['unknown_ns'] / 1e9:.3f} s of vCPU time is unknown (lost, truncated or "
            "contradictory records, or entries the capture's kernel refused): not counted as safe"
        )
    return ". ".join(parts) + "."


def input_doubts(
    skipped: dict[str, dict[str, Any]], absent: list[dict[str, Any]]
) -> tuple[str, ...]:
    """Statements about what the replay could not see: input the importer skipped (reason,
    count, first locations; ``CaptureMetadata.skipped``) and vCPUs without a row."""
    out = [
        f"the import skipped {rec['count']} input item(s): {reason}"
        + (f" (first at {', '.join(rec['first'])})" if rec.get("first") else "")
        for reason, rec in sorted(skipped.items())
    ]
    out += [describe_absent(a) for a in absent]
    return tuple(out)
