"""What-if comparison: every KVM vPMU configuration on the same real schedule, ranked.

The matrix (:func:`scenario_matrix`): ``default`` with the first ``KVM_ARM_VCPU_INIT`` on a CPU
of each cluster (the default PMU depends on it, spec §1.2), ``set-pmu`` for each host PMU and
``no-pmu``, all on a released (mainline) kernel, and the proposed ``fixed-counters-only`` at the
latest series revision the model knows (v8). :func:`rank` aggregates the summary per scenario
and orders the configurations by a stated, guest-aware rule (:func:`ranking_rule`), best first:

1. a configuration that takes away a counter the guest profile programs ranks below every
   configuration that keeps them all (a guest running ``perf stat -e instructions`` needs its
   event counter, whatever else goes wrong);
2. then what the guest suffers: zero cycle deltas it read (traced PMCCNTR reads), risky ticks
   (zero cycle deltas a Windows guest divides by, spec §6.1), stalled counter time;
3. then what the host pays: pinning (the share of host capacity on CPUs where guest entries
   fail, then the guest time the schedule put there), the CPU time of perf-event re-creations;
4. at equal cost a released kernel before a proposed one, the series' latest revision before
   an older one, then the scenario name.

``prefer="capacity"`` puts the pinning cost before the guest's stalls (step 3's first key
before step 2); the default, ``"counters"``, is the order above. The verdict built on the
ranking is :mod:`replay.verdict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from replay.loads import loads_per_guest_s
from replay.pmu import HostPmus, KernelSemantics
from replay.scenarios import Mode, Scenario
from replay.summary import episode_distribution

NS = 1e9
Prefer = Literal["counters", "capacity"]
PREFER_CHOICES: tuple[Prefer, ...] = ("counters", "capacity")


def scenario_matrix(host: HostPmus) -> list[Scenario]:
    """The configurations worth comparing on ``host`` (see module docstring); on a host that
    offers no vPMU they all run without one (:func:`~replay.scenarios.as_offered`)."""
    matrix = [Scenario(Mode.DEFAULT, init_cpu=min(p.cpus)) for p in host.pmus]
    matrix += [Scenario(Mode.SET_PMU, set_pmu=p.name) for p in host.pmus]
    matrix += [Scenario(Mode.FIXED_COUNTERS_ONLY), Scenario(Mode.NO_PMU)]
    return matrix


#: Sort keys of the rule, each with its words (smaller is better for every key).
_LOSES = (pl.col("n_lost") > 0, "keeps every counter the guest programs")
_GUEST = [
    (pl.col("zero_delta_reads").fill_null(0), "fewer zero cycle deltas the guest read"),
    (pl.col("risky_ticks").fill_null(0), "fewer risky zero-delta ticks"),
    (pl.col("stalled_ns"), "less stalled counter time"),
]
_PINNING = [
    (pl.col("pinned_capacity_share"), "less host capacity taken by pinning"),
    (pl.col("fail_entry_ns"), "less guest time on the CPUs pinning forbids"),
]
_TAIL = [
    (pl.col("recreate_cpu_ns"), "less CPU time re-creating perf events"),
    (
        pl.col("kernel_order"),
        "a released (mainline) kernel before a proposed one, the latest series revision first",
    ),
    (pl.col("scenario"), "scenario name"),
]
#: Kernels at equal cost, preferred first: released, then the series' revisions newest first.
KERNEL_PREFERENCE = [KernelSemantics.MAINLINE, KernelSemantics.V8, KernelSemantics.V4]


def _keys(prefer: Prefer) -> list[tuple[pl.Expr, str]]:
    middle = [*_PINNING, *_GUEST] if prefer == "capacity" else [*_GUEST, *_PINNING]
    return [_LOSES, *middle, *_TAIL]


def ranking_rule(prefer: Prefer = "counters") -> list[str]:
    """The ranking rule in words, one line per key, most important first."""
    return [words for _, words in _keys(prefer)]


@dataclass
class Ranking:
    """Per-scenario totals and costs, best first, and the rule that ordered them."""

    table: pl.DataFrame
    rule: list[str]


def rank(
    summary: pl.DataFrame,
    findings: pl.DataFrame,
    primary: int,
    scenarios: Sequence[Scenario],
    prefer: Prefer = "counters",
) -> Ranking:
    """Rank the scenarios of a summary table (one row per scenario and vCPU).

    Parameters
    ----------
    summary, findings
        The replay's tables (:mod:`replay.summary`, :mod:`replay.detectors`).
    primary
        The counter that stands for a vCPU: its stall episodes give the distribution.
    scenarios
        The replayed scenarios (their kernels).
    prefer
        ``"counters"`` (the guest's stalls before pinning cost) or ``"capacity"``.
    """
    episodes = (
        findings.filter((pl.col("kind") == "stall") & (pl.col("counter") == primary))
        .group_by("scenario")
        .agg(episode_distribution(pl.col("duration")))
    )
    sums = [
        "guest_ns",
        "stalled_ns",
        "stall_episodes",
        "risky_ticks",
        "zero_delta_reads",
        "unknown_ticks",
        "ticks_with_guest",
        "fail_entries",
        "fail_entry_ns",
        "unknown_ns",
        "true_cycles",
        "counted_cycles",
        "schedule_guest_ns",
        "cross_pmu_loads",
        "event_recreations",
        "recreate_cpu_ns",
    ]
    per = (
        summary.group_by("scenario", maintain_order=True)
        .agg(
            pl.col(sums).sum(),
            pl.col("lost_counters").filter(pl.col("lost_counters") != "").first().fill_null(""),
            pl.col("pinned_off_cpus").first(),
            pl.col("pinned_capacity_share").first(),
            pl.len().alias("vcpus"),
        )
        .join(episodes, on="scenario", how="left")
        .with_columns(
            pl.col("scenario")
            .replace_strict({s.name: s.proposed for s in scenarios}, return_dtype=pl.Boolean)
            .alias("proposed"),
            pl.col("scenario")
            .replace_strict(
                {s.name: KERNEL_PREFERENCE.index(s.kernel) for s in scenarios},
                return_dtype=pl.Int8,
            )
            .alias("kernel_order"),
            (pl.col("stalled_ns") / pl.col("guest_ns"))
            .fill_nan(0.0)
            .fill_null(0.0)
            .alias("stalled_share"),
            loads_per_guest_s(pl.col("cross_pmu_loads"), pl.col("schedule_guest_ns")).alias(
                "cross_pmu_loads_per_guest_s"
            ),
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
    keys = _keys(prefer)
    ranked = (
        per.sort([key for key, _ in keys])
        .with_row_index("rank", offset=1)
        .with_columns(assessment().alias("assessment"))
    )
    return Ranking(ranked, ranking_rule(prefer))


def _ms(ns: pl.Expr) -> pl.Expr:
    return (ns / 1e6).round(3)


def assessment() -> pl.Expr:
    """One scenario's costs in words (a ranking row)."""
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
                "counters stalled {} s ({}% of guest time) in {} episodes (median {} ms, "
                "p99 {} ms, longest {} ms); ",
                (pl.col("stalled_ns") / NS).round(3),
                (pl.col("stalled_share") * 100).round(1),
                pl.col("stall_episodes"),
                _ms(pl.col("stall_median_ns")),
                _ms(pl.col("stall_p99_ns")),
                _ms(pl.col("stall_max_ns")),
            )
        )
        .otherwise(pl.lit("")),
        pl.when(pl.col("pinned_off_cpus") != "")
        .then(
            pl.format(
                "pinning forbids CPUs {} ({}% of host capacity), where the schedule ran {} s of "
                "guest time in {} entries that fail; ",
                pl.col("pinned_off_cpus"),
                (pl.col("pinned_capacity_share") * 100).round(1),
                (pl.col("fail_entry_ns") / NS).round(3),
                pl.col("fail_entries"),
            )
        )
        .otherwise(pl.lit("")),
        pl.when(pl.col("event_recreations") > 0)
        .then(
            pl.format(
                "{} perf events re-created (about {} ms of host CPU); ",
                pl.col("event_recreations"),
                _ms(pl.col("recreate_cpu_ns")),
            )
        )
        .otherwise(pl.lit("")),
        pl.when(pl.col("n_lost") > 0)
        .then(pl.format("guest cannot program: {}; ", pl.col("lost_counters")))
        .otherwise(pl.lit("")),
        # unknown is never "no stall" (after refused entries it depends on the scenario)
        pl.when(pl.col("unknown_ns") > 0)
        .then(
            pl.format("{} s unknown, not counted as safe; ", (pl.col("unknown_ns") / NS).round(3))
        )
        .otherwise(pl.lit("")),
    ]
    text = pl.concat_str(parts).str.strip_chars_end("; ")
    return (
        pl.when(text == "").then(pl.lit("no stall, no failed entry, nothing lost")).otherwise(text)
    )
