"""The ranking of replay/compare.py on a hand-built summary where every rule decides one pair.

Each scenario is worse than the one above it by exactly one key of the rule and better by every
key after it (and by name), so dropping or reordering any key of the ranking reorders the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import polars as pl
import pytest

from replay.compare import Prefer, rank, ranking_rule
from replay.pmu import KernelSemantics
from replay.scenarios import Scenario
from replay.summary import SUMMARY_SCHEMA
from tests.replay.export.fixture_results import fixture_results

MAINLINE, V8, V4 = KernelSemantics.MAINLINE, KernelSemantics.V8, KernelSemantics.V4


@dataclass(frozen=True)
class Row:
    """One scenario's decisive numbers (one vCPU each); everything else is neutral."""

    name: str
    kernel: KernelSemantics = MAINLINE
    lost: str = ""
    reads: int | None = 0
    risky: int | None = 0
    stalled_ns: int = 0
    capacity: float = 0.0
    fail_ns: int = 0
    recreate_ns: int = 0


# Best first, as the rule of compare.py's module docstring ranks them (prefer="counters").
RANKED = [
    Row("j", reads=None, risky=None),  # no traced reads, no ticks: nulls rank as zero
    Row("k"),  # ties with j on every number and kernel: the name decides
    Row("i", kernel=V8),  # a proposed kernel (worse than k), by name better
    Row("h", kernel=V4),  # an older series revision than v8
    Row("g", recreate_ns=10),  # re-creation CPU time (worse than h), a released kernel
    Row("f", fail_ns=10),  # guest time where pinning forbids entry, no re-creations
    Row("e", capacity=0.25),  # host capacity pinning takes away, no guest time there
    Row("d", stalled_ns=10),  # stalled time (worse than e), no pinning
    Row("c", risky=1),  # a risky tick (worse than d), no stall
    Row("b", reads=1),  # a zero-delta traced read (worse than c), no risky tick
    Row("a", lost="counter0"),  # takes away a counter the guest programs, costs nothing else
]


@dataclass(frozen=True)
class Kernel:
    """What rank() needs of a scenario: its name and kernel (a stand-in for Scenario)."""

    name: str
    kernel: KernelSemantics

    @property
    def proposed(self) -> bool:
        return self.kernel is not MAINLINE


def summary(rows: list[Row]) -> pl.DataFrame:
    """One vCPU per scenario with the rows' numbers; neutral values elsewhere."""
    records: list[dict[str, Any]] = [
        {
            "scenario": r.name,
            "vm": "vm0",
            "vcpu": 7,
            "vcpu_index": 0,
            "guest_ns": 1_000,
            "stalled_ns": r.stalled_ns,
            "stall_episodes": int(r.stalled_ns > 0),
            "ticks_with_guest": None if r.risky is None else 4,
            "risky_ticks": r.risky,
            "unknown_ticks": None if r.risky is None else 0,
            "pmccntr_reads": None if r.reads is None else 3,
            "zero_delta_reads": r.reads,
            "fail_entries": int(r.fail_ns > 0),
            "fail_entry_ns": r.fail_ns,
            "unknown_ns": 0,
            "true_cycles": 2_000,
            "counted_cycles": 2_000,
            "lost_counters": r.lost,
            "cross_pmu_loads": 0,
            "event_recreations": int(r.recreate_ns > 0),
            "recreate_cpu_ns": r.recreate_ns,
            "pinned_off_cpus": "1" if r.capacity else "",
            "pinned_capacity_share": r.capacity,
        }
        for r in rows
    ]
    return pl.DataFrame(records, schema=SUMMARY_SCHEMA)


NO_FINDINGS = pl.DataFrame(schema={"scenario": pl.Utf8, "kind": pl.Utf8, "counter": pl.Int8,
                                   "duration": pl.Int64})  # fmt: skip


def ranked(rows: list[Row], prefer: Prefer = "counters") -> list[str]:
    scenarios = cast(list[Scenario], [Kernel(r.name, r.kernel) for r in rows])
    table = rank(summary(rows), NO_FINDINGS, 31, scenarios, prefer).table
    assert table["rank"].to_list() == list(range(1, len(rows) + 1))
    return cast(list[str], table["scenario"].to_list())


@pytest.mark.parametrize("order", ["ranked", "reversed", "by name"])
def test_every_rule_of_the_ranking_decides_one_pair(order: str) -> None:
    rows = {"ranked": RANKED, "reversed": RANKED[::-1], "by name": sorted(RANKED, key=str)}[order]
    assert ranked(rows) == [r.name for r in RANKED]


def test_prefer_capacity_puts_pinning_before_the_guest_s_stalls() -> None:
    """With prefer="capacity" the two pinning keys move ahead of reads, risky ticks and stalls:
    e and f (pinning) now rank below d, c and b (the guest's stalls), in the same order among
    themselves; a (a lost counter) stays last."""
    got = ranked(RANKED, "capacity")
    assert got == ["j", "k", "i", "h", "g", "d", "c", "b", "f", "e", "a"]
    rule = ranking_rule("capacity")
    assert rule.index("less host capacity taken by pinning") < rule.index(
        "fewer zero cycle deltas the guest read"
    )


def test_per_scenario_totals_add_up_over_vcpus() -> None:
    two = summary([Row("a", reads=1, risky=2, stalled_ns=30, fail_ns=40, lost="counter0,counter1"),
                   Row("a", reads=0, risky=1, stalled_ns=5)])  # fmt: skip
    two = two.with_columns(pl.Series("vcpu", [7, 8], pl.Int32))
    scenarios = cast(list[Scenario], [Kernel("a", MAINLINE)])
    row = rank(two, NO_FINDINGS, 31, scenarios).table.row(0, named=True)
    assert (row["zero_delta_reads"], row["risky_ticks"], row["stalled_ns"]) == (1, 3, 35)
    assert (row["fail_entry_ns"], row["guest_ns"], row["vcpus"], row["n_lost"]) == (40, 2000, 2, 2)
    assert row["stalled_share"] == 35 / 2000
    assert row["counted_share"] == 1.0
    assert row["proposed"] is False


def _higher(values: list[int], q: float) -> int:
    """The ``q`` quantile that is one of the values (the next above when between two)."""
    ordered = sorted(values)
    return ordered[math.ceil(q * (len(ordered) - 1))]


@pytest.mark.parametrize("name", ["cross-cluster-migration", "migration-at-overflow"])
def test_episode_distribution_is_that_of_the_primary_counter_s_stalls(name: str) -> None:
    # cross-cluster-migration re-creates perf events (findings of another kind, on the cycle
    # counter), migration-at-overflow stalls a second counter (instructions): neither may enter
    results = fixture_results(name)
    primary = results.meta["primary_counter"]
    stalls: dict[str, list[int]] = {}
    for f in results.findings.iter_rows(named=True):
        if f["kind"] == "stall" and f["counter"] == primary:
            stalls.setdefault(f["scenario"], []).append(f["duration"])
    assert stalls, "the fixture must stall"
    assert results.ranking is not None
    table = results.ranking.table
    for row in table.iter_rows(named=True):
        durations = stalls.get(row["scenario"])
        expected = (
            (_higher(durations, 0.5), _higher(durations, 0.99), max(durations))
            if durations
            else (None, None, None)
        )
        got = (row["stall_median_ns"], row["stall_p99_ns"], row["stall_max_ns"])
        assert got == expected, row["scenario"]


def test_a_scenario_without_guest_time_has_stalled_none_of_it() -> None:
    # A scenario whose every entry fails (or whose vCPU never entered) ran no guest time and
    # stalled none: its share is 0, not NaN or null, so it ranks as the numbers say.
    rows = summary([Row("a"), Row("b", fail_ns=10)])
    rows = rows.with_columns(
        pl.when(pl.col("scenario") == "b").then(0).otherwise(pl.col("guest_ns")).alias("guest_ns")
    )
    rows = pl.concat(
        [rows, summary([Row("c")]).with_columns(pl.lit(None, pl.Int64).alias("guest_ns"))]
    )
    scenarios = cast(list[Scenario], [Kernel(n, MAINLINE) for n in "abc"])
    table = rank(rows, NO_FINDINGS, 31, scenarios).table
    assert dict(table.select("scenario", "stalled_share").rows()) == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert table["scenario"].to_list() == ["a", "c", "b"]


def test_the_assessment_names_every_cost_with_its_numbers() -> None:
    # One scenario with every cost (its numbers chosen so each rounds one way, each count at 1
    # so that "more than one" shows), one that stalled 1 ns and one without, whose unread
    # counts are null.
    worst = Row("w", lost="instructions", reads=1, risky=1, stalled_ns=2_612_000, capacity=0.375,
                fail_ns=12_345_000, recreate_ns=1_234_567_800)  # fmt: skip
    table = summary([worst, Row("y", stalled_ns=1), Row("z", reads=None, risky=None)]).with_columns(
        pl.when(pl.col("scenario") == "w")
        .then(pl.struct(**{k: pl.lit(v) for k, v in WORST_ALSO.items()}))
        .otherwise(pl.struct(*WORST_ALSO))
        .struct.unnest()
    )
    episodes = pl.DataFrame(
        {"scenario": ["w"] * 3 + ["y"], "kind": ["stall"] * 4, "counter": [31] * 4,
         "duration": [612_000, 800_000, 1_200_000, 1]},
        schema=NO_FINDINGS.schema,
    )  # fmt: skip
    scenarios = cast(list[Scenario], [Kernel(n, MAINLINE) for n in "wyz"])
    got = dict(rank(table, episodes, 31, scenarios).table.select("scenario", "assessment").rows())
    assert got == {
        "w": "1 traced PMCCNTR reads saw a zero delta; 1 risky zero-delta ticks; counters stalled "
        "0.003 s (26.1% of guest time) in 3 episodes (median 0.8 ms, p99 1.2 ms, longest 1.2 ms); "
        "pinning forbids CPUs 4-5 (37.5% of host capacity), where the schedule ran 0.012 s of "
        "guest time in 4 entries that fail; 6 perf events re-created (about 1234.568 ms of host "
        "CPU); "
        "guest cannot program: instructions; 0.042 s unknown, not counted as safe",
        "y": "counters stalled 0.0 s (0.1% of guest time) in 1 episodes (median 0.0 ms, p99 0.0 ms, "
        "longest 0.0 ms)",
        "z": "no stall, no failed entry, nothing lost",
    }


#: the worst row's numbers that Row does not carry
WORST_ALSO = {
    "guest_ns": 10_000_000,
    "stall_episodes": 3,
    "fail_entries": 4,
    "pinned_off_cpus": "4-5",
    "event_recreations": 6,
    "unknown_ns": 42_000_000,
}
