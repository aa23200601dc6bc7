"""The ranking of replay/compare.py on a hand-built summary where every rule decides one pair.

Each scenario is worse than the one above it by exactly one rule and better by every rule after
it (and by name), so dropping or reordering any rule of the ranking key reorders the table.
"""

from __future__ import annotations

import polars as pl

from replay.compare import rank
from replay.summary import SUMMARY_SCHEMA

# scenario, zero_delta_reads, risky_ticks, stalled_ns, fail_entry_ns, lost_counters;
# best first, as the current rule ranks them (module docstring of replay/compare.py).
RANKED = [
    ("s6", None, None, 0, 0, ""),  # no traced reads, no ticks: nulls rank as zero
    ("s7", 0, 0, 0, 0, ""),  # ties with s6 on every number: the name decides
    ("s5", 0, 0, 0, 0, "counter0"),  # loses a counter (worse than s7), by name better
    ("s4", 0, 0, 0, 10, ""),  # fail-entries (worse than s5), loses nothing
    ("s3", 0, 0, 10, 0, ""),  # stalls (worse than s4), no fail-entries
    ("s2", 0, 1, 0, 0, ""),  # a risky tick (worse than s3), no stall
    ("s1", 1, 0, 0, 0, ""),  # a zero-delta traced read (worse than s2), no risky tick
]


def summary(rows: list[tuple[str, int | None, int | None, int, int, str]]) -> pl.DataFrame:
    """One vCPU per scenario, with the given decisive columns and neutral others."""
    frame = pl.DataFrame(
        [
            {
                "scenario": s,
                "vm": "vm0",
                "vcpu": 7,
                "vcpu_index": 0,
                "guest_ns": 1_000,
                "stalled_ns": stalled,
                "stall_episodes": int(stalled > 0),
                "ticks_with_guest": None if risky is None else 4,
                "risky_ticks": risky,
                "unknown_ticks": None if risky is None else 0,
                "risky_ticks_per_guest_hour": None,
                "pmccntr_reads": None if reads is None else 3,
                "zero_delta_reads": reads,
                "fail_entries": int(fail > 0),
                "fail_entry_ns": fail,
                "unknown_ns": 0,
                "true_cycles": 2_000,
                "counted_cycles": 2_000,
                "lost_counters": lost,
            }
            for s, reads, risky, stalled, fail, lost in rows
        ],
        schema=SUMMARY_SCHEMA,
    )
    return frame


def test_every_rule_of_the_ranking_decides_one_pair() -> None:
    """Written against the rule of today's compare.py (reads, risky ticks, stalled time,
    fail-entry time, lost counters, name); adapt RANKED when the rule changes."""
    for order in (RANKED, RANKED[::-1], sorted(RANKED)):
        table = rank(summary(order)).table
        assert table["scenario"].to_list() == [r[0] for r in RANKED]
        assert table["rank"].to_list() == list(range(1, len(RANKED) + 1))


def test_per_scenario_totals_add_up_over_vcpus() -> None:
    two = summary([("a", 1, 2, 30, 40, "counter0,counter1"), ("a", 0, 1, 5, 0, "")])
    two = two.with_columns(pl.Series("vcpu", [7, 8], pl.Int32))
    row = rank(two).table.row(0, named=True)
    assert (row["zero_delta_reads"], row["risky_ticks"], row["stalled_ns"]) == (1, 3, 35)
    assert (row["fail_entry_ns"], row["guest_ns"], row["vcpus"], row["n_lost"]) == (40, 2000, 2, 2)
    assert row["stalled_share"] == 35 / 2000
    assert row["counted_share"] == 1.0


def test_verdicts_and_recommendation_say_what_decided() -> None:
    """Each scenario's verdict names its numbers; the recommendation names the best, the worst
    staller and the unknown time of the best (replay/compare.py ``_verdict``/``_recommend``)."""
    rows = [
        ("fixed", 0, 0, 0, 0, "counter0,counter1"),
        ("default", 2, 4, 1_500_000_000, 0, ""),
        ("pinned", 0, 0, 0, 2_000_000_000, ""),
        ("quiet", 0, 0, 0, 0, ""),
    ]
    frame = summary(rows).with_columns(
        guest_ns=pl.lit(3_000_000_000, pl.Int64),
        unknown_ns=pl.when(pl.col("scenario") == "quiet").then(250_000_000).otherwise(0),
    )
    ranking = rank(frame)
    verdicts = dict(ranking.table.select("scenario", "verdict").rows())
    assert verdicts == {
        "quiet": "no stall, no failed entry, nothing lost",
        "fixed": "guest cannot program: counter0,counter1",
        "pinned": "1 guest entries fail; pinning takes 2.0 s of guest time off those CPUs",
        "default": "2 traced PMCCNTR reads saw a zero delta; 4 risky zero-delta ticks; "
        "counters stalled 1.5 s (50.0% of guest time)",
    }
    assert ranking.recommendation == (
        "deploy quiet: no stall, no failed entry, nothing lost. The worst, default, stalls the "
        "guest's counters 1.500 s (50.0% of guest time) with 4 risky ticks. 0.250 s of vCPU "
        "time is unknown (lost or contradictory records): not counted as safe."
    )
    assert rank(frame.clear()).recommendation == "nothing to compare"
