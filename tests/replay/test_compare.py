"""The ranking of replay/compare.py on a hand-built summary where every rule decides one pair.

Each scenario is worse than the one above it by exactly one key of the rule and better by every
key after it (and by name), so dropping or reordering any key of the ranking reorders the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import polars as pl
import pytest

from replay.compare import Prefer, rank, ranking_rule
from replay.pmu import KernelSemantics
from replay.scenarios import Scenario
from replay.summary import SUMMARY_SCHEMA

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
