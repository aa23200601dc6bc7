"""What-if comparison: every KVM vPMU configuration on the same real schedule, ranked.

The matrix (:func:`scenario_matrix`): ``default`` with the first ``KVM_ARM_VCPU_INIT`` on a CPU
of each cluster (the default PMU depends on it, spec §1.2), ``set-pmu`` for each host PMU,
``fixed-counters-only`` and ``no-pmu``. :func:`rank` aggregates the summary per scenario and
orders the configurations by what a guest suffers, worst first:

1. zero cycle deltas the guest read (traced PMCCNTR reads, when the capture has them), then
   risky ticks: zero cycle deltas a Windows guest divides by (a crash, spec §6.1);
2. stalled counter time: silently wrong measurements;
3. guest time on CPUs the configuration forbids: capacity lost to pinning (fail-entries);
4. counters the guest cannot program at all (explicit, documented loss).

The recommendation is the best-ranked configuration, with the numbers that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from replay.pmu import HostPmus
from replay.scenarios import Mode, Scenario

NS = 1e9


def scenario_matrix(host: HostPmus) -> list[Scenario]:
    """The configurations worth comparing on ``host`` (see module docstring); on a host that
    offers no vPMU they all run without one (:func:`~replay.scenarios.as_offered`)."""
    matrix = [Scenario(Mode.DEFAULT, init_cpu=min(p.cpus)) for p in host.pmus]
    matrix += [Scenario(Mode.SET_PMU, set_pmu=p.name) for p in host.pmus]
    matrix += [Scenario(Mode.FIXED_COUNTERS_ONLY), Scenario(Mode.NO_PMU)]
    return matrix


@dataclass
class Ranking:
    """Per-scenario totals, best first, and the recommendation in words."""

    table: pl.DataFrame
    recommendation: str


def rank(summary: pl.DataFrame) -> Ranking:
    """Rank the scenarios of a summary table (one row per scenario and vCPU)."""
    per = (
        summary.group_by("scenario", maintain_order=True)
        .agg(
            pl.col("guest_ns").sum(),
            pl.col("stalled_ns").sum(),
            pl.col("risky_ticks").sum(),
            pl.col("zero_delta_reads").sum(),
            pl.col("unknown_ticks").sum(),
            pl.col("ticks_with_guest").sum(),
            pl.col("fail_entries").sum(),
            pl.col("fail_entry_ns").sum(),
            pl.col("unknown_ns").sum(),
            pl.col("true_cycles").sum(),
            pl.col("counted_cycles").sum(),
            pl.col("lost_counters").filter(pl.col("lost_counters") != "").first().fill_null(""),
            pl.len().alias("vcpus"),
        )
        .with_columns(
            (pl.col("stalled_ns") / pl.col("guest_ns"))
            .fill_nan(0.0)
            .fill_null(0.0)
            .alias("stalled_share"),
            (pl.col("counted_cycles") / pl.col("true_cycles"))
            .fill_nan(None)
            .alias("counted_share"),
            pl.col("lost_counters")
            .str.split(",")
            .list.eval(pl.element().filter(pl.element() != ""))
            .list.len()
            .alias("n_lost"),
        )
    )
    ranked = (
        per.sort(
            pl.col("zero_delta_reads").fill_null(0),
            pl.col("risky_ticks").fill_null(0),
            "stalled_ns",
            "fail_entry_ns",
            "n_lost",
            "scenario",
        )
        .with_row_index("rank", offset=1)
        .with_columns(_verdict().alias("verdict"))
    )
    return Ranking(ranked, _recommend(ranked))


def _verdict() -> pl.Expr:
    parts = [
        pl.when(pl.col("zero_delta_reads").fill_null(0) > 0)
        .then(pl.format("{} traced PMCCNTR reads saw a zero delta; ", pl.col("zero_delta_reads")))
        .otherwise(pl.lit("")),
        pl.when(pl.col("risky_ticks").fill_null(0) > 0)
        .then(pl.format("{} risky zero-delta ticks; ", pl.col("risky_ticks")))
        .otherwise(pl.lit("")),
        pl.when(pl.col("stalled_ns") > 0)
        .then(
            pl.format(
                "counters stalled {} s ({}% of guest time); ",
                (pl.col("stalled_ns") / NS).round(3),
                (pl.col("stalled_share") * 100).round(1),
            )
        )
        .otherwise(pl.lit("")),
        pl.when(pl.col("fail_entries") > 0)
        .then(
            pl.format(
                "{} guest entries fail; pinning takes {} s of guest time off those CPUs; ",
                pl.col("fail_entries"),
                (pl.col("fail_entry_ns") / NS).round(3),
            )
        )
        .otherwise(pl.lit("")),
        pl.when(pl.col("n_lost") > 0)
        .then(pl.format("guest cannot program: {}; ", pl.col("lost_counters")))
        .otherwise(pl.lit("")),
    ]
    text = pl.concat_str(parts).str.strip_chars_end("; ")
    return (
        pl.when(text == "").then(pl.lit("no stall, no failed entry, nothing lost")).otherwise(text)
    )


def _recommend(ranked: pl.DataFrame) -> str:
    if ranked.is_empty():
        return "nothing to compare"
    best = ranked.row(0, named=True)
    text = f"deploy {best['scenario']}: {best['verdict']}"
    worst = ranked.filter(pl.col("stalled_ns") > 0).sort("stalled_ns", descending=True)
    if not worst.is_empty() and worst["scenario"][0] != best["scenario"]:
        w = worst.row(0, named=True)
        text += (
            f". The worst, {w['scenario']}, stalls the guest's counters "
            f"{w['stalled_ns'] / NS:.3f} s ({w['stalled_share'] * 100:.1f}% of guest time)"
        )
        if (w["risky_ticks"] or 0) > 0:
            text += f" with {w['risky_ticks']} risky ticks"
    unknown = best["unknown_ns"]
    if unknown:
        text += (
            f". {unknown / NS:.3f} s of vCPU time is unknown (lost or contradictory records): "
            "not counted as safe"
        )
    return text + "."
