"""The summary of replay/summary.py when a vCPU's index is unknown.

A vCPU found only by its KVM events, or named with ``--vcpu TID=VM`` and no index, has a null
``vcpu_index``; the summary joins its per-vCPU parts on a key that includes it, so nulls must
match there, or the vCPU keeps its costs and loses its guest time, stalls and failed entries.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from replay.api import open_capture, what_if
from replay.profiles import load_profile
from replay.summary import episode_distribution
from tests.conftest import FIXTURES
from tests.replay.export.fixture_results import TOPOLOGY, fixture_results

SCENARIOS = ["default@cpu0", "set-pmu:armv8_cortex_a53", "fixed-counters-only+v8", "no-pmu"]


# each fixture's vCPU threads and their indexes, and the summary columns it must fill
CASES = {
    "cross-cluster-migration": (
        {"4001": "0", "4002": "1"},
        ["stalled_ns", "fail_entries", "risky_ticks"],
    ),
    "traced-pmccntr-reads": ({"4001": "0"}, ["pmccntr_reads", "zero_delta_reads"]),
    "lost-events-gap": ({"4001": "0"}, ["unknown_ticks", "unknown_ns"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_vcpu_without_an_index_keeps_its_whole_summary(name: str) -> None:
    named, exercised = CASES[name]
    capture = FIXTURES / "captures" / f"{name}.txt"
    with_index = [f"{tid}=vm0:{i}" for tid, i in named.items()]
    without_index = [f"{tid}=vm0" for tid in named]
    known = what_if(open_capture(capture, topology=TOPOLOGY, vcpus=with_index), SCENARIOS)
    unknown = what_if(open_capture(capture, topology=TOPOLOGY, vcpus=without_index), SCENARIOS)
    assert unknown.summary["vcpu_index"].null_count() == unknown.summary.height
    # the parts this capture exercises, so that a lost join shows
    for column in exercised:
        assert known.summary[column].sum() > 0, column
    assert_frame_equal(
        unknown.summary.drop("vcpu_index"),
        known.summary.drop("vcpu_index"),
    )


def test_a_vcpu_without_traced_reads_counts_none_in_a_capture_that_has_them(
    tmp_path: Path,
) -> None:
    # traced-pmccntr-reads with a second vCPU of the same VM that runs guest code on CPU 3 and
    # never traps a PMU register: its row must say 0 reads, not be dropped or left null
    second = [
        "swapper/3-0       (-------) [003] d..2.     1.040000: sched_switch: prev_comm=swapper/3 "
        "prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=CPU 1/KVM next_pid=4002 "
        "next_prio=120",
        "CPU 1/KVM-4002    (   4000) [003] d..2.     1.040005: kvm_entry: PC: 0xffff800008010000",
        "CPU 1/KVM-4002    (   4000) [003] d..2.     1.045000: kvm_exit: IRQ: HSR_EC: 0x0000 "
        "(UNKNOWN), PC: 0xffff800008010004",
        "CPU 1/KVM-4002    (   4000) [003] d..2.     1.045010: sched_switch: prev_comm=CPU 1/KVM "
        "prev_pid=4002 prev_prio=120 prev_state=S ==> next_comm=swapper/3 next_pid=0 "
        "next_prio=120",
    ]
    original = (FIXTURES / "captures" / "traced-pmccntr-reads.txt").read_text()
    capture = tmp_path / "two-vcpus.txt"
    capture.write_text(original + "".join(f"       {line}\n" for line in second))
    results = what_if(open_capture(capture, topology=TOPOLOGY), SCENARIOS)
    rows = results.summary.select(
        "scenario", "vcpu", "guest_ns", "pmccntr_reads", "zero_delta_reads"
    )
    assert sorted(set(rows["vcpu"])) == [4001, 4002]
    assert rows.filter(pl.col("vcpu") == 4002)["guest_ns"].max() == 4_995_000  # SET_PMU refuses it
    reads = {(r["scenario"], r["vcpu"]): r["pmccntr_reads"] for r in rows.iter_rows(named=True)}
    assert reads == {(s, v): 4 if v == 4001 else 0 for s in SCENARIOS for v in (4001, 4002)}
    assert rows.filter(pl.col("vcpu") == 4002)["zero_delta_reads"].to_list() == [0] * len(SCENARIOS)


def test_stall_distribution_takes_the_higher_element_at_each_quantile() -> None:
    """The median and p99 of n episode lengths are the sorted lengths at index ceil(q (n-1))
    (an observed length, never between two): 60 distinct lengths tell the rule from
    polars' nearest-element default, whose p99 index rounds 58.41 down."""
    lengths = [(37 * k) % 61 for k in range(1, 61)]  # 1..60, shuffled
    got = pl.DataFrame({"d": lengths}).select(episode_distribution(pl.col("d"))).row(0)
    ordered = sorted(lengths)
    n = len(ordered)
    assert got == (
        ordered[math.ceil(0.5 * (n - 1))],
        ordered[math.ceil(0.99 * (n - 1))],
        ordered[-1],
    )


def test_a_scenario_without_a_vpmu_names_every_counter_the_guest_programs() -> None:
    """no-pmu takes away every counter a linux-perf guest programs: the summary lists them
    all, in the profile's order, joined by commas."""
    names = [r.name for r in load_profile("linux-perf").programs]
    assert len(names) > 1
    summary = fixture_results("migration-at-overflow").summary  # a linux-perf guest
    lost = summary.filter(pl.col("scenario") == "no-pmu")["lost_counters"].unique().to_list()
    assert lost == [",".join(names)]
    assert summary.filter(pl.col("scenario") == "default@cpu0")[
        "lost_counters"
    ].unique().to_list() == [""]
