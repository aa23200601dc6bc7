"""What each mode costs besides stalls (issue 13): cross-PMU loads, re-creations, pinning.

``fixtures/captures/pmu-moves.txt`` (fixtures/README.md): vCPU 0 has ten residencies, load k at
1 s + 3k ms, on CPUs 0, 1, 2, 3, 0 (no guest entry), 2, 2, 1, 3 (no guest entry), 1, on the
two-cluster host (CPUs 0-1 A53, 2-3 A72). Worked out by hand:

* cross-PMU loads: 1->2, 3->0, 0->2, 2->1, 1->3, 3->1: **6** (loads 2, 4, 5, 7, 8, 9);
* FIXED_COUNTERS_ONLY, v4 and v8: the cycle counter's event follows the PMU of the entries:
  A53 (loads 0, 1), A72 (2: re-created), A72 (3, 5, 6; load 4 had no entry), A53 (7:
  re-created), A53 (9; load 8 had no entry): **2**, at 1.006005 s on CPU 2 and 1.021005 s on
  CPU 1;
* v4's default mode re-creates the default PMU's events at every entry on a CPU that PMU does
  not cover: ``default@cpu0+v4`` at loads 2, 3, 5, 6 (**4**), ``default@cpu2+v4`` at 0, 1, 7,
  9 (**4**), each event of the profile (``linux-perf``: cycles and instructions, **8**); so
  does ``set-pmu:armv8_cortex_a53+v4`` at the failing entries of loads 2, 3, 5, 6 (**4**);
* a released kernel never re-creates on a load: **0** for default, set-pmu and no-pmu.
"""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import polars as pl
import pytest

from importers.capture import Capture
from replay.api import open_capture, prepare_replay, what_if
from replay.costs import capacity_weights
from replay.engine import replay
from replay.paths.reloads import reloads_recreate
from replay.pmu.kvm import ReloadTrigger
from replay.profiles import PROFILES
from replay.scenarios import parse_scenario
from replay.summary import episode_distribution
from tests.conftest import FIXTURES
from tests.replay.cases import CASES, Case
from tests.replay.export.fixture_results import fixture_capture
from tests.replay.pmu.helpers import running_vcpu, two_clusters

T = 1_000_000_000  # the fixture's first load, in ns
RECREATIONS = {
    "default@cpu0": 0,
    "default@cpu2": 0,
    "set-pmu:armv8_cortex_a53": 0,
    "set-pmu:armv8_cortex_a72": 0,
    "no-pmu": 0,
    "fixed-counters-only+v8": 2,
    "fixed-counters-only+v4": 2,
    "default@cpu0+v4": 4,
    "default@cpu2+v4": 4,
    "set-pmu:armv8_cortex_a53+v4": 4,
}


@pytest.mark.parametrize("path", ["vectorized", "reference"])
def test_hand_worked_cross_pmu_loads_and_recreations(path: str) -> None:
    cap = fixture_capture("pmu-moves")
    results = what_if(cap, list(RECREATIONS), path=path, rank=False)  # type: ignore[arg-type]
    summary = results.summary
    assert summary["vcpu"].unique().to_list() == [4001]
    assert summary["cross_pmu_loads"].to_list() == [6] * len(RECREATIONS)
    got = dict(summary.select("scenario", "event_recreations").rows())
    assert got == RECREATIONS
    # 8 guest windows of 1.995 ms: the rate is per guest second
    default = summary.filter(pl.col("scenario") == "default@cpu0").row(0, named=True)
    assert default["guest_ns"] == 8 * 1_995_000
    assert default["cross_pmu_loads_per_guest_s"] == pytest.approx(6 / (8 * 1_995_000e-9))
    fixed = results.findings.filter(
        (pl.col("kind") == "recreation") & (pl.col("scenario") == "fixed-counters-only+v8")
    )
    assert fixed.select("start", "cpu", "host_pmu", "counter").rows() == [
        (T + 6_005_000, 2, "armv8_cortex_a72", 31),
        (T + 21_005_000, 1, "armv8_cortex_a53", 31),
    ]


def test_cross_pmu_load_rate_is_a_property_of_the_schedule() -> None:
    """The rate's base is the capture's guest time, the same under every scenario: SET_PMU to
    the A53 refuses the entries on CPUs 2-3, and the rate must not grow with that."""
    cap = fixture_capture("pmu-moves")
    entries, exits = (cap.frame(t).sort("ts")["ts"] for t in ("kvm_entry", "kvm_exit"))
    schedule_guest_s = sum(x - e for e, x in zip(entries, exits, strict=True)) / 1e9
    scenarios = ["default@cpu0", "set-pmu:armv8_cortex_a53", "no-pmu", "fixed-counters-only"]
    summary = what_if(cap, scenarios, rank=True).summary
    guest = dict(summary.select("scenario", "guest_ns").rows())
    assert guest["set-pmu:armv8_cortex_a53"] < guest["default@cpu0"]  # the case in point
    for row in summary.iter_rows(named=True):
        assert row["schedule_guest_ns"] / 1e9 == pytest.approx(schedule_guest_s)
        assert row["cross_pmu_loads_per_guest_s"] == pytest.approx(6 / schedule_guest_s)


def test_the_verdict_words_the_schedule_rate() -> None:
    cap = fixture_capture("pmu-moves")
    results = what_if(cap, ["set-pmu:armv8_cortex_a53", "no-pmu"])
    entries, exits = (cap.frame(t).sort("ts")["ts"] for t in ("kvm_entry", "kvm_exit"))
    rate = 6 / (sum(x - e for e, x in zip(entries, exits, strict=True)) / 1e9)
    assert f"another host PMU 6 times, {rate:.1f} per second" in results.meta["verdict"]["text"]


def test_each_programmed_event_is_recreated() -> None:
    work = prepare_replay(fixture_capture("pmu-moves"), "linux-perf")
    for name, events in [("default@cpu0+v4", 8), ("fixed-counters-only+v4", 2)]:
        result = replay(work, parse_scenario(name))
        assert result.recreations.height == events, name


def test_recreation_cost_follows_the_stated_figure() -> None:
    cap = fixture_capture("pmu-moves")
    scenarios = ["fixed-counters-only+v8", "default@cpu0"]
    default = what_if(cap, scenarios, rank=False).summary
    assert default["recreate_cpu_ns"].to_list() == [0, 2 * 10_000]
    dearer = what_if(cap, scenarios, rank=False, recreate_cost_us=37.5).summary
    assert dearer["recreate_cpu_ns"].to_list() == [0, 2 * 37_500]


def test_pinning_cost_is_the_capacity_of_the_forbidden_cpus() -> None:
    cap = fixture_capture("pmu-moves")
    results = what_if(cap, ["set-pmu:armv8_cortex_a53", "set-pmu:armv8_cortex_a72"], rank=False)
    rows = results.summary.select("pinned_off_cpus", "pinned_capacity_share").rows()
    # two-cluster.json: cpu_capacity 485, 485, 1024, 1024
    assert rows == [
        ("2-3", pytest.approx(2048 / 3018)),
        ("0-1", pytest.approx(970 / 3018)),
    ]
    # the guest time the schedule put there: loads 2, 3, 5, 6 resp. 0, 1, 7, 9
    assert results.summary["fail_entry_ns"].to_list() == [4 * 1_995_000] * 2


def test_capacity_falls_back_to_frequencies_then_to_cpu_count() -> None:
    work = prepare_replay(fixture_capture("pmu-moves"))
    weights, basis = capacity_weights(work.topology, work.host)
    assert basis == "cpu_capacity" and weights[2] == pytest.approx(1024 / 3018)
    work.topology.capacity = {}
    weights, basis = capacity_weights(work.topology, work.host)
    assert basis == "maximum frequency" and weights[0] == pytest.approx(1 / 6)  # 1 GHz of 6
    work.topology.freqs_khz = {}
    weights, basis = capacity_weights(work.topology, work.host)
    assert basis.startswith("CPU count") and set(weights.values()) == {0.25}


def _independent_cross_loads(cap: Capture, tid: int, pmu_of: dict[int, str]) -> int:
    """Moves of ``tid`` onto another PMU, straight from the capture: its switch-ins in
    ``sched_switch`` (a thread running when tracing began resides where its first switch-out
    is), or without any switch of it, consecutive kvm_entry/kvm_exit records on CPUs of
    different PMUs."""
    sw = cap.frame("sched_switch")
    moves = pl.concat(
        [
            sw.filter(pl.col("next_pid") == tid).select(
                "ts", "seq", "cpu", pl.lit(True).alias("in")
            ),
            sw.filter(pl.col("prev_pid") == tid).select(
                "ts", "seq", "cpu", pl.lit(False).alias("in")
            ),
        ]
    ).sort("ts", "seq")
    if moves.height:
        cpus = moves.filter(pl.col("in"))["cpu"].to_list()
        if not moves["in"][0]:
            cpus.insert(0, moves["cpu"][0])
    else:
        kvm = pl.concat(
            cap.frame(t).filter(pl.col("common_pid") == tid).select("ts", "seq", "cpu")
            for t in ("kvm_entry", "kvm_exit")
        )
        cpus = kvm.sort("ts", "seq")["cpu"].to_list()
    pmus = [pmu_of[c] for c in cpus]
    return sum(a != b for a, b in pairwise(pmus))


#: Real captures with vCPUs that cross the stated split and have no unknown time. The others:
#: kvm-x86-host-report-txt's qemu is pinned to CPU 19; kvm-x86-host-v7-kvmevents's one vCPU
#: has contradictory kvm records (unknown time), which split its loads.
CROSSING = {"juno-trace-txt", "juno-sched-load", "kvm-x86-hostguest-v7"}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cross_pmu_loads_match_an_independent_count_on_real_captures(
    case: Case, shared_traces: Path
) -> None:
    """The KVM captures with a stated two-cluster split (and the Juno captures' stand-in
    vCPUs): where the capture has sched_switch records of the thread, the count comes from
    them; the x86 host+guest captures carry only kvm events, so there it comes from those."""
    cap, topo = case.load(shared_traces)
    pmu_of = {cpu: p.name for p in topo.pmus for cpu in p.cpus}
    summary = what_if(cap, ["default"], rank=False).summary
    checked = 0
    for row in summary.filter(pl.col("unknown_ns") == 0).iter_rows(named=True):
        assert row["cross_pmu_loads"] == _independent_cross_loads(cap, row["vcpu"], pmu_of)
        checked += row["cross_pmu_loads"]
    assert (checked > 0) == (case.name in CROSSING)


def test_stall_episode_distribution_is_made_of_observed_lengths() -> None:
    """Median and p99 are the episodes at index ceil(q * (n - 1)) of the sorted lengths."""
    lengths = [7 * k * k for k in range(1, 201)]  # 200 distinct, skewed lengths
    frame = pl.DataFrame({"duration": lengths[::-1]})
    got = frame.select(episode_distribution(pl.col("duration"))).row(0)
    ordered = sorted(lengths)
    assert got == (
        ordered[math.ceil(0.5 * 199)],
        ordered[math.ceil(0.99 * 199)],
        ordered[-1],
    )


def test_demo_stall_distribution_per_vcpu_and_scenario() -> None:
    """On the embedded capture's real schedule, from the stall episodes in findings."""
    demo = FIXTURES / "demo"
    cap = open_capture(demo / "capture", topology=demo / "two-cluster-what-if.json")
    results = what_if(cap)
    stalls = results.findings.filter((pl.col("kind") == "stall") & (pl.col("counter") == 31))
    for row in results.summary.filter(pl.col("stall_episodes") > 0).iter_rows(named=True):
        mine = stalls.filter(
            (pl.col("scenario") == row["scenario"]) & (pl.col("vcpu") == row["vcpu"])
        )
        ordered = sorted(mine["duration"].to_list())
        n = len(ordered)
        assert row["stall_episodes"] == n > 1
        assert row["stall_median_ns"] == ordered[math.ceil(0.5 * (n - 1))]
        assert row["stall_p99_ns"] == ordered[math.ceil(0.99 * (n - 1))]
        assert row["stall_max_ns"] == ordered[-1]
    assert results.ranking is not None
    ranked = results.ranking.table.filter(pl.col("scenario") == "default@cpu1").row(0, named=True)
    every = sorted(stalls.filter(pl.col("scenario") == "default@cpu1")["duration"].to_list())
    assert ranked["stall_max_ns"] == every[-1]
    assert ranked["stall_p99_ns"] == every[math.ceil(0.99 * (len(every) - 1))]


@pytest.mark.parametrize("reload_trigger", list(ReloadTrigger))
@pytest.mark.parametrize("all_modes", [False, True])
def test_the_vectorized_reload_rule_agrees_with_the_model_for_any_kernel_rules(
    reload_trigger: ReloadTrigger, all_modes: bool
) -> None:
    """Also for rule combinations no modelled kernel has: a re-creation needs both a reload
    request at the load and a reload that re-creates in the VM's mode."""
    for mode in ("default@cpu0+v4", "fixed-counters-only+v4"):
        vcpu = running_vcpu(parse_scenario(mode), two_clusters(), 0)
        kvm = vcpu.kvm
        kvm.rules = replace(
            kvm.rules,
            reload_trigger=reload_trigger,
            recreate_foreign_events_in_all_modes=all_modes,
            # a change of PMU is seen against last_cpu, which v8 stops clearing at put
            put_clears_cpu=reload_trigger is not ReloadTrigger.PMU_CHANGE,
        )
        PROFILES["windows"].boot(vcpu)
        vcpu.guest_exit()
        vcpu.vcpu_put()
        before = vcpu.backing_event(31)
        vcpu.vcpu_load(5)  # an A57 CPU: foreign to the event's A53 PMU
        vcpu.guest_enter()
        after = vcpu.backing_event(31)
        assert before is not None and after is not None
        assert reloads_recreate(kvm) == (after is not before), (mode, reload_trigger, all_modes)
