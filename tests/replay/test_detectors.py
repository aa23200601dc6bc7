"""Observations -> findings and risky ticks, on hand-built observation rows whose every outcome
follows from the definitions in replay/detectors.py and spec §6.1 (ticks) / §8.6 (stalls)."""

from __future__ import annotations

import polars as pl

from replay.detectors import STALL_REASONS, findings, tick_table
from replay.pmu import StallReason
from replay.work import RECREATION_SCHEMA

T0 = 1_000_000
TICK = 1_000  # a short tick keeps the numbers readable
CYCLES = 31
#: these tests replay no kernel that re-creates perf events
NO_RECREATIONS = pl.DataFrame(schema=RECREATION_SCHEMA)

Row = tuple[int, int, int, str, bool, str | None, int | None, int | None, int]


def observations(rows: list[Row], counter: int = CYCLES) -> pl.DataFrame:
    """``(start, end, cpu, state, counting, reason, tick, window, delta)`` rows of vCPU 7."""
    columns = ["start", "end", "cpu", "state", "counting", "reason", "tick", "window", "delta"]
    frame = pl.DataFrame(rows, schema=columns, orient="row")
    return frame.with_columns(
        pl.lit("default@cpu0").alias("scenario"),
        pl.lit("vm0").alias("vm"),
        pl.lit(7, pl.Int32).alias("vcpu"),
        pl.lit(0, pl.Int32).alias("vcpu_index"),
        pl.lit(counter, pl.Int8).alias("counter"),
        pl.col("cpu").cast(pl.Int16),
        pl.when(pl.col("cpu") < 2)
        .then(pl.lit("little"))
        .otherwise(pl.lit("big"))
        .alias("host_pmu"),
    )


def test_unknown_ending_on_a_tick_boundary_leaves_the_next_tick_risky() -> None:
    """An unknown piece covers [start, end): ending exactly where tick 1 begins, it makes tick 0
    doubtful and leaves tick 1, a zero-delta tick of its own, risky."""
    obs = observations(
        [
            (T0, T0 + 400, 2, "guest", False, "foreign_cpu", 0, 0, 0),
            (T0 + 400, T0 + TICK, 2, "unknown", False, "events lost on this CPU", None, None, 0),
            (T0 + TICK + 10, T0 + TICK + 90, 2, "guest", False, "foreign_cpu", 1, 1, 0),
            # starts exactly on tick 3's boundary: tick 2 stays risky, tick 3 is doubtful
            (T0 + 2 * TICK, T0 + 2 * TICK + 5, 2, "guest", False, "foreign_cpu", 2, 2, 0),
            (T0 + 3 * TICK, T0 + 3 * TICK + 1, 2, "unknown", False, "x", None, None, 0),
            (T0 + 3 * TICK + 1, T0 + 3 * TICK + 9, 2, "guest", False, "foreign_cpu", 3, 3, 0),
            # one nanosecond of guest time is enough to read a zero delta
            (T0 + 4 * TICK, T0 + 4 * TICK + 1, 2, "guest", False, "foreign_cpu", 4, 4, 0),
        ]
    )
    ticks = tick_table(obs, CYCLES, T0, TICK)
    assert ticks.select("tick", "guest_ns", "risky", "unknown").rows() == [
        (0, 400, False, True),
        (1, 80, True, False),
        (2, 5, True, False),
        (3, 8, False, True),
        (4, 1, True, False),
    ]


def test_a_tick_is_risky_only_for_an_enabled_counter_that_did_not_move() -> None:
    obs = observations(
        [
            (T0, T0 + 100, 0, "guest", True, None, 0, 0, 250),  # counted: safe
            (T0 + TICK, T0 + TICK + 50, 0, "guest", False, "disabled", 1, 1, 0),  # not in use
            (T0 + 2 * TICK, T0 + 2 * TICK + 50, 0, "host", False, None, None, None, 0),
            (T0 + 3 * TICK, T0 + 3 * TICK + 70, 2, "guest", False, "no_event", 3, 3, 0),
            (T0 + 3 * TICK + 70, T0 + 3 * TICK + 90, 0, "guest", True, None, 3, 4, 40),
        ]
    )
    ticks = tick_table(obs, CYCLES, T0, TICK)
    assert ticks.select("tick", "guest_ns", "delta", "risky").rows() == [
        (0, 100, 250, False),
        (3, 90, 40, False),  # the tick's delta adds up over its pieces
    ]
    # a counter other than the one asked for is not looked at
    assert tick_table(obs, 0, T0, TICK).is_empty()


def test_stall_episodes_break_at_a_cpu_change_and_at_a_counting_piece() -> None:
    obs = observations(
        [
            (0, 20, 2, "guest", False, "foreign_cpu", None, 0, 0),
            (20, 35, 2, "guest", False, "filtered", None, 1, 0),  # another cause, same episode
            (35, 50, 3, "guest", False, "foreign_cpu", None, 2, 0),  # new CPU: new episode
            (50, 60, 0, "guest", True, None, None, 3, 10),
            (60, 64, 3, "guest", False, "no_pmu_cpu", None, 4, 0),
            (70, 75, 0, "guest", False, "filtered", None, 5, 0),
            (80, 85, 1, "guest", False, "no_event", None, 6, 0),
        ]
    ).with_columns(  # a CPU no host PMU covers has none
        pl.when(pl.col("start") == 60).then(None).otherwise(pl.col("host_pmu")).alias("host_pmu")
    )
    found = findings(obs, CYCLES, NO_RECREATIONS)
    stalls = found.filter(pl.col("kind") == "stall")
    assert stalls.select("start", "end", "duration", "cpu", "host_pmu").rows() == [
        (0, 35, 35, 2, "big"),
        (35, 50, 15, 3, "big"),
        (60, 64, 4, 3, None),
        (70, 75, 5, 0, "little"),
        (80, 85, 5, 1, "little"),
    ]
    assert stalls["cause"].to_list() == [
        "the counter's backing event lives on big, which cannot count on CPU 2",
        "the counter's backing event lives on big, which cannot count on CPU 3",
        "no registered host PMU covers CPU 3",
        "the VM's event filter denies the event",
        "no backing perf event exists",
    ]
    assert stalls["counter"].to_list() == [CYCLES] * 5


def test_fail_entries_per_window_and_unknown_time_once_per_vcpu() -> None:
    rows: list[Row] = [
        (0, 10, 1, "fail_entry", False, "fail_entry", None, 5, 0),
        (10, 30, 1, "fail_entry", False, "fail_entry", None, 5, 0),  # same window: one entry
        (30, 40, 1, "fail_entry", False, "fail_entry", None, 6, 0),
        (40, 45, 1, "unknown", False, "events lost on this CPU", None, None, 0),
    ]
    found = findings(
        pl.concat([observations(rows), observations(rows, counter=0)]), CYCLES, NO_RECREATIONS
    )
    assert found.select("kind", "counter", "start", "end", "duration", "cause").rows() == [
        (
            "fail_entry",
            None,
            0,
            30,
            30,
            "CPU 1 is outside the VM's supported CPUs (KVM_EXIT_FAIL_ENTRY)",
        ),
        (
            "fail_entry",
            None,
            30,
            40,
            10,
            "CPU 1 is outside the VM's supported CPUs (KVM_EXIT_FAIL_ENTRY)",
        ),
        ("unknown", None, 40, 45, 5, "events lost on this CPU"),
    ]


def test_ticks_are_ordered_by_vcpu_then_tick() -> None:
    """Deterministic output: rows by scenario, VM and vCPU, then tick."""
    rows: list[Row] = [
        (T0 + TICK, T0 + TICK + 5, 2, "guest", False, "foreign_cpu", 1, 1, 0),
        (T0, T0 + 5, 2, "guest", False, "foreign_cpu", 0, 0, 0),
    ]
    two = pl.concat(
        [
            observations(rows).with_columns(pl.lit(8, pl.Int32).alias("vcpu")),
            observations(rows[::-1]),
        ]
    )
    ticks = tick_table(two, CYCLES, T0, TICK)
    assert ticks.select("vcpu", "tick").rows() == [(7, 0), (7, 1), (8, 0), (8, 1)]


def test_findings_are_ordered_by_vm_vcpu_kind_counter_then_start() -> None:
    """Deterministic output: one order whatever the input order (VM ``a`` before ``b`` though
    its vCPU's tid is larger; kinds by name; counters by index; episodes by start)."""
    stall: list[Row] = [
        (50, 60, 2, "guest", False, "foreign_cpu", None, 1, 0),
        (0, 10, 3, "guest", False, "foreign_cpu", None, 0, 0),
        (20, 30, 0, "fail_entry", False, "fail_entry", None, 2, 0),
        (30, 40, 0, "unknown", False, "x", None, None, 0),
    ]
    parts = [
        observations(stall, counter).with_columns(
            pl.lit(vm).alias("vm"), pl.lit(vcpu, pl.Int32).alias("vcpu")
        )
        for vm, vcpu in (("b", 7), ("a", 9))
        for counter in (CYCLES, 0)
    ]
    found = findings(pl.concat(parts[::-1]), CYCLES, NO_RECREATIONS)
    assert found.select("vm", "kind", "counter", "start").rows() == [
        (vm, kind, counter, start)
        for vm in ("a", "b")
        for kind, counter, start in (
            ("fail_entry", None, 20),
            ("stall", 0, 0),
            ("stall", 0, 50),
            ("stall", CYCLES, 0),
            ("stall", CYCLES, 50),
            ("unknown", None, 30),
        )
    ]


def test_a_stall_whose_cpu_or_pmu_is_not_known_says_so_with_a_question_mark() -> None:
    # A cause sentence must not invent a CPU or PMU.
    obs = observations(
        [
            (0, 10, None, "guest", False, "foreign_cpu", None, 0, 0),  # type: ignore[list-item]
            (20, 30, 2, "guest", False, "no_pmu_cpu", None, 1, 0),
        ]
    ).with_columns(pl.lit(None, pl.Utf8).alias("host_pmu"))
    stalls = findings(obs, CYCLES, NO_RECREATIONS).filter(pl.col("kind") == "stall")
    assert stalls["cause"].to_list() == [
        "the counter's backing event lives on ?, which cannot count on CPU ?",
        "no registered host PMU covers CPU 2",
    ]


def test_a_tick_is_doubtful_only_under_unknown_time_of_its_own_vcpu() -> None:
    """Hand-built unknown pieces that overlap (a short one inside a long one): every tick
    the long one covers is doubtful, past its end the tick is risky again; another vCPU's
    unknown time leaves this vCPU's ticks alone."""
    guest = [
        (T0 + t * TICK + 10, T0 + t * TICK + 20, 2, "guest", False, "foreign_cpu", t, t, 0)
        for t in range(4)
    ]
    unknown: list[Row] = [
        (T0, T0 + 3 * TICK, 2, "unknown", False, "x", None, None, 0),  # ticks 0-2
        (T0 + TICK, T0 + TICK + 5, 2, "unknown", False, "x", None, None, 0),  # tick 1
    ]
    mine = observations(guest + unknown)
    other = observations(unknown).with_columns(pl.lit(8, pl.Int32).alias("vcpu"))
    # vCPU 6 sorts first: its ticks come before every unknown piece
    theirs = observations(guest).with_columns(pl.lit(6, pl.Int32).alias("vcpu"))
    ticks = tick_table(pl.concat([mine, other, theirs]), CYCLES, T0, TICK)
    assert ticks.select("vcpu", "tick", "risky", "unknown").rows() == [
        *[(6, t, True, False) for t in range(4)],
        (7, 0, False, True),
        (7, 1, False, True),
        (7, 2, False, True),
        (7, 3, True, False),
    ]


def test_every_stall_reason_gets_a_sentence_not_its_code() -> None:
    """Each reason the vPMU model gives for an enabled counter that does not count
    (replay.pmu.status) is told in words, the kernel function behind it named where there is
    one."""
    reasons = [str(r) for r in StallReason if str(r) in STALL_REASONS]
    assert len(reasons) == len(STALL_REASONS)  # every stall reason is one the model gives
    obs = observations(
        # each on its own CPU: a CPU change ends a stall episode
        [(10 * k, 10 * k + 5, k, "guest", False, r, None, k, 0) for k, r in enumerate(reasons)]
    )
    causes = findings(obs, CYCLES, NO_RECREATIONS).filter(pl.col("kind") == "stall")["cause"]
    assert causes.len() == len(reasons)
    for reason, cause in zip(reasons, causes.to_list(), strict=True):
        assert cause != reason and len(cause) > len(reason), (reason, cause)
    assert "kvm_map_pmu_event()" in causes[reasons.index("unmappable_event")]
