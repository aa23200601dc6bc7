"""replay.row_order against polars' own sort and group_by on random tables (fixed seeds), and
the detectors' outputs unchanged by the order their observations come in."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from replay import results
from replay.api import open_capture, what_if
from replay.detectors import findings, tick_table
from replay.row_order import blocks_in_order, in_blocks, run_starts, run_totals, sort_rows
from tests.conftest import FIXTURES
from tests.replay.export.fixture_results import TOPOLOGY
from tests.replay.test_detectors import NO_RECREATIONS, T0, TICK, observations
from tests.replay.test_summary import SCENARIOS


def random_table(seed: int, n: int = 400) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    names = np.array(["b", "a", "ab", "", "c"])
    return pl.DataFrame(
        {
            "s": names[rng.integers(0, 5, n)],
            "i": rng.integers(-3, 4, n),
            "small": pl.Series(rng.integers(0, 3, n), dtype=pl.Int8),
            "v": rng.integers(0, 1000, n),
        }
    ).with_columns(
        # nulls in every key: a fifth of the rows
        pl.when(pl.col("v") % 5 == 0).then(None).otherwise(pl.col("s")).alias("s"),
        pl.when(pl.col("v") % 7 == 0).then(None).otherwise(pl.col("i")).alias("i"),
        pl.when(pl.col("v") % 11 == 0).then(None).otherwise(pl.col("small")).alias("small"),
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("nulls_last", [False, True])
@pytest.mark.parametrize("by", [["s"], ["i", "s"], ["s", "small", "i"], ["small", "v"]])
def test_sort_rows_orders_as_polars_stable_sort(seed: int, nulls_last: bool, by: list[str]) -> None:
    table = random_table(seed).with_row_index("row")
    expected = table.sort(by, nulls_last=nulls_last, maintain_order=True)
    assert sort_rows(table, by, nulls_last=nulls_last)["row"].to_list() == expected["row"].to_list()


def test_sort_rows_of_an_all_null_key_keeps_the_input_order() -> None:
    table = pl.DataFrame({"k": pl.Series([None, None, None], dtype=pl.Int32), "r": [2, 0, 1]})
    assert sort_rows(table, ["k"])["r"].to_list() == [2, 0, 1]


@pytest.mark.parametrize("seed", range(5))
def test_run_totals_equals_group_by_over_runs(seed: int) -> None:
    table = random_table(seed).with_columns(pl.col("v").alias("w"))
    starts = run_starts(table, ["s", "small"])
    # the runs as polars would number them: a new run wherever the key differs (nulls equal)
    run = (
        (
            pl.col("s").ne_missing(pl.col("s").shift(1))
            | pl.col("small").ne_missing(pl.col("small").shift(1))
        )
        .fill_null(True)
        .cum_sum()
    )
    expected = (
        table.with_columns(run.alias("run"))
        .group_by("run", maintain_order=True)
        .agg(
            pl.col("s").first(),
            pl.col("small").first(),
            pl.col("i").last(),
            pl.col("v").sum(),
            (pl.col("w") * pl.col("i")).sum().alias("wi"),
        )
        .drop("run")
    )
    got = run_totals(
        table,
        starts,
        first=["s", "small"],
        last=["i"],
        sums={"v": pl.col("v"), "wi": pl.col("w") * pl.col("i")},
    )
    assert got.equals(expected)
    assert starts.sum() == expected.height


def test_run_starts_treats_nulls_as_equal_and_the_first_row_as_a_start() -> None:
    table = pl.DataFrame({"k": [None, None, 1, 1, None]}, schema={"k": pl.Int32})
    assert run_starts(table, ["k"]).to_list() == [True, False, True, False, True]


def test_in_blocks_keeps_a_table_in_block_order_and_sorts_any_other() -> None:
    blocks = pl.DataFrame({"k": ["b", "b", "a", "a"], "t": [1, 2, 0, 5], "r": [0, 1, 2, 3]})
    assert in_blocks(blocks, ["k"], ["t"])[0]["r"].to_list() == [0, 1, 2, 3]  # as it came
    # a step back in time within a block, or a block seen twice: sorted by key then time
    back = blocks.with_columns(pl.Series("t", [2, 1, 0, 5]))
    ordered, starts = in_blocks(back, ["k"], ["t"])
    assert ordered["r"].to_list() == [2, 3, 1, 0]
    assert starts.to_list() == [True, False, True, False]  # of the rows returned
    split = pl.DataFrame({"k": ["b", "a", "b"], "t": [1, 0, 2], "r": [0, 1, 2]})
    assert in_blocks(split, ["k"], ["t"])[0]["r"].to_list() == [1, 0, 2]
    # equal times keep their order; a later column breaks a tie in the first
    tie = pl.DataFrame({"k": ["a"] * 3, "t": [1, 1, 1], "u": [0, 2, 1], "r": [0, 1, 2]})
    assert in_blocks(tie, ["k"], ["t"])[0]["r"].to_list() == [0, 1, 2]
    assert in_blocks(tie, ["k"], ["t", "u"])[0]["r"].to_list() == [0, 2, 1]


def test_blocks_in_order_moves_whole_blocks_by_key() -> None:
    rows = pl.DataFrame({"block": [1, 1, 2, 3, 3], "r": [0, 1, 2, 3, 4]})
    heads = pl.DataFrame({"vm": ["b", None, "a"]})  # the keys of blocks 1, 2, 3
    assert blocks_in_order(rows, "block", heads)["r"].to_list() == [2, 3, 4, 0, 1]


def engine_like_observations() -> pl.DataFrame:
    """Three vCPUs in the engine's order (blocks of one vCPU, in time order) whose tids are
    not in key order, with stalls, counting pieces, an entry window of two rows, unknown
    time and ticks."""
    rows = [
        (T0, T0 + 400, 2, "guest", False, "foreign_cpu", 0, 0, 0),
        (T0 + 400, T0 + 900, 2, "guest", False, "foreign_cpu", 0, 0, 0),
        (T0 + 900, T0 + 1500, 3, "guest", True, "counting", 0, 1, 7),
        (T0 + 1500, T0 + 2100, 0, "fail_entry", False, "fail_entry", 1, 2, 0),
        (T0 + 2100, T0 + 2300, 0, "fail_entry", False, "fail_entry", 2, 2, 0),
        (T0 + 2300, T0 + 3500, 1, "unknown", False, "events lost on this CPU", None, None, 0),
        (T0 + 3500, T0 + 3600, 1, "guest", False, "no_pmu_cpu", 3, 3, 0),
    ]
    return pl.concat(
        [
            observations(rows).with_columns(
                pl.lit(vm).alias("vm"), pl.lit(vcpu, pl.Int32).alias("vcpu")
            )
            for vm, vcpu in (("vm1", 30), ("vm0", 40), ("vm0", 20))
        ]
    )


def test_detectors_and_summary_do_not_depend_on_the_order_rows_come_in() -> None:
    ordered = engine_like_observations()
    shuffled = ordered.sample(fraction=1.0, shuffle=True, seed=3)
    assert not shuffled.equals(ordered)
    found = findings(ordered, 31, NO_RECREATIONS)
    ticks = tick_table(ordered, 31, T0, TICK)
    assert findings(shuffled, 31, NO_RECREATIONS).equals(found)
    assert tick_table(shuffled, 31, T0, TICK).equals(ticks)
    # the two-row entry window is one finding, the two stalled pieces on CPU 2 one episode
    assert found.filter(pl.col("vcpu") == 20).select("kind", "start", "end", "duration").rows() == [
        ("fail_entry", T0 + 1500, T0 + 2300, 800),
        ("stall", T0, T0 + 900, 900),
        ("stall", T0 + 3500, T0 + 3600, 100),
        ("unknown", T0 + 2300, T0 + 3500, 1200),
    ]
    assert ticks.select("vm", "vcpu").unique(maintain_order=True).rows() == [
        ("vm0", 20),
        ("vm0", 40),
        ("vm1", 30),
    ]


@pytest.mark.parametrize("name", ["cross-cluster-migration", "lost-events-gap"])
def test_a_replay_gives_the_same_results_from_shuffled_observations(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every consumer of the observations in results.assemble (findings, ticks, summary)
    handed them shuffled: the same tables as from the engine's own order."""
    capture = open_capture(FIXTURES / "captures" / f"{name}.txt", topology=TOPOLOGY,
                           vcpus=["4001=vm0:0", "4002=vm0:1"])  # fmt: skip
    base = what_if(capture, SCENARIOS)
    for consumer in ("findings", "tick_table", "summarize"):
        real = getattr(results, consumer)

        def shuffled(obs: pl.DataFrame, *args: object, real: Any = real) -> Any:
            return real(obs.sample(fraction=1.0, shuffle=True, seed=5), *args)

        monkeypatch.setattr(results, consumer, shuffled)
    again = what_if(capture, SCENARIOS)
    assert base.observations.height >= 10
    for table in ("findings", "ticks", "summary"):
        assert getattr(again, table).equals(getattr(base, table)), table


def test_stalls_of_two_vcpus_back_to_back_on_one_cpu_are_two_episodes() -> None:
    # in the engine's order vCPU 30's last row and vCPU 40's first row are neighbours: same
    # CPU, both stalled, yet different vCPUs
    one = [(T0, T0 + 100, 2, "guest", False, "foreign_cpu", 0, 0, 0)]
    obs = pl.concat(
        observations(one).with_columns(pl.lit(vcpu, pl.Int32).alias("vcpu")) for vcpu in (30, 40)
    )
    stalls = findings(obs, 31, NO_RECREATIONS)
    assert stalls.select("vcpu", "kind", "duration").rows() == [
        (30, "stall", 100),
        (40, "stall", 100),
    ]


def test_rows_of_one_tick_or_one_entry_window_apart_in_time_are_still_one_group() -> None:
    """Hand-built rows whose ticks and windows do not follow time: grouped as ``group_by``
    groups them (the engine's never do this, its ticks and windows follow time)."""
    rows = [
        (T0, T0 + 10, 2, "guest", True, "counting", 1, 0, 3),
        (T0 + 10, T0 + 30, 2, "guest", True, "counting", 0, 0, 0),
        (T0 + 30, T0 + 60, 2, "guest", True, "counting", 1, 0, 4),
        (T0 + 60, T0 + 65, 0, "fail_entry", False, "fail_entry", None, 2, 0),
        (T0 + 65, T0 + 70, 0, "fail_entry", False, "fail_entry", None, 3, 0),
        (T0 + 70, T0 + 80, 0, "fail_entry", False, "fail_entry", None, 2, 0),
    ]
    obs = observations(rows)
    ticks = tick_table(obs, 31, T0, TICK)
    assert ticks.select("tick", "guest_ns", "delta").rows() == [(0, 20, 0), (1, 40, 7)]
    fails = findings(obs, 31, NO_RECREATIONS).filter(pl.col("kind") == "fail_entry")
    assert fails.select("start", "end", "duration").rows() == [
        (T0 + 60, T0 + 80, 15),  # window 2: its two rows, from the first's start to the last's end
        (T0 + 65, T0 + 70, 5),
    ]
