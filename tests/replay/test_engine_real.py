"""The engine on real schedules (issue 6 acceptance).

* reference and vectorized paths give identical observations on every shared capture with
  scheduling events, for every scenario of the compare matrix and two guest profiles;
* under ``default``, the stalled time of each vCPU equals its guest time on CPUs outside the
  default PMU, computed here independently with plain polars from the capture tables;
* under ``fixed-counters-only`` the cycle counter never stalls;
* under ``set-pmu`` the failed entries are exactly the guest entries on unsupported CPUs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from importers.capture import Capture
from replay.api import what_if
from replay.compare import scenario_matrix
from replay.engine import prepare, replay
from replay.profiles import PROFILES
from replay.results import assemble
from replay.scenarios import Mode, Scenario
from replay.work import Work
from tests.replay.cases import CASES, Case
from tests.replay.engine_paths import assert_paths_agree

IDS = [c.name for c in CASES]


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def loaded(request: pytest.FixtureRequest, shared_traces: Path) -> tuple[Case, Capture, Work]:
    case: Case = request.param
    cap, topo = case.load(shared_traces)
    return case, cap, prepare(cap, topo, PROFILES["windows"])


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["windows", "linux-perf"])
def test_reference_and_vectorized_paths_agree(
    loaded: tuple[Case, Capture, Work], profile: str
) -> None:
    _, cap, work = loaded
    assert_paths_agree(prepare(cap, work.topology, PROFILES[profile]))


def _guest_intervals(cap: Capture, tid: int, t0: int, t1: int) -> pl.DataFrame:
    """Guest time of a thread, straight from the tables: kvm_entry -> next kvm_exit, or (no kvm
    events) sched_switch in -> next out; intervals open at the capture's ends are closed there."""
    entries = cap.frame("kvm_entry").filter(pl.col("common_pid") == tid)
    if entries.height:
        ev = pl.concat(
            [
                entries.select("ts", "seq", "cpu", pl.lit(True).alias("begin")),
                cap.frame("kvm_exit")
                .filter(pl.col("common_pid") == tid)
                .select("ts", "seq", "cpu", pl.lit(False).alias("begin")),
            ]
        )
    else:
        sw = cap.frame("sched_switch")
        ev = pl.concat(
            [
                sw.filter(pl.col("next_pid") == tid).select(
                    "ts", "seq", "cpu", pl.lit(True).alias("begin")
                ),
                sw.filter(pl.col("prev_pid") == tid).select(
                    "ts", "seq", "cpu", pl.lit(False).alias("begin")
                ),
            ]
        )
    ev = ev.sort("ts", "seq")
    if ev.height and not ev["begin"][0]:
        ev = pl.concat(
            [
                pl.DataFrame(
                    {"ts": [t0], "seq": [-1], "cpu": [ev["cpu"][0]], "begin": [True]},
                    schema=ev.schema,
                ),
                ev,
            ]
        )
    if ev.height and ev["begin"][-1]:
        ev = pl.concat(
            [
                ev,
                pl.DataFrame(
                    {"ts": [t1], "seq": [1 << 62], "cpu": [ev["cpu"][-1]], "begin": [False]},
                    schema=ev.schema,
                ),
            ]
        )
    pairs = ev.with_columns(
        pl.col("ts").shift(-1).alias("end"),
        pl.col("begin").shift(-1).alias("next_begin"),
        pl.col("cpu").shift(-1).alias("next_cpu"),
    )
    return pairs.filter(
        pl.col("begin")
        & ~pl.col("next_begin").fill_null(True)
        & (pl.col("cpu") == pl.col("next_cpu"))
    ).select("cpu", pl.col("ts").alias("start"), "end")


@pytest.mark.slow
def test_default_stalls_exactly_the_guest_time_off_the_default_pmu(
    loaded: tuple[Case, Capture, Work],
) -> None:
    _, cap, work = loaded
    for scenario in [s for s in scenario_matrix(work.host) if s.mode == Mode.DEFAULT]:
        results = assemble(work, [replay(work, scenario)], "vectorized", {})
        default_pmu = work.host.probe_armpmu(scenario.init_cpu)
        assert default_pmu is not None
        for row in results.summary.iter_rows(named=True):
            intervals = _guest_intervals(cap, row["vcpu"], work.timeline.start, work.timeline.end)
            foreign = intervals.filter(~pl.col("cpu").is_in(sorted(default_pmu.cpus)))
            expected = int((foreign["end"] - foreign["start"]).sum())
            total = int((intervals["end"] - intervals["start"]).sum())
            where = (scenario.name, row["vcpu"])
            if row["unknown_ns"] == 0:
                assert row["stalled_ns"] == expected, where
                assert row["guest_ns"] == total, where
            else:  # time whose outcome is unknown is counted neither as guest time nor stalled
                assert row["stalled_ns"] <= expected, where
                assert row["guest_ns"] <= total, where


@pytest.mark.slow
def test_fixed_counters_only_never_stalls_the_cycle_counter(
    loaded: tuple[Case, Capture, Work],
) -> None:
    _, _, work = loaded
    for kernel in ("v4", "v8"):
        obs = replay(work, Scenario(Mode.FIXED_COUNTERS_ONLY, kernel=kernel)).observations
        guest = obs.filter(pl.col("state") == "guest")
        assert guest.height > 0
        assert guest["counting"].all()
        assert (guest["delta"] == guest["true_events"]).all()


@pytest.mark.slow
def test_set_pmu_fails_exactly_the_entries_on_unsupported_cpus(
    loaded: tuple[Case, Capture, Work],
) -> None:
    _, _, work = loaded
    for pmu in work.host.registered:
        results = assemble(
            work, [replay(work, Scenario(Mode.SET_PMU, set_pmu=pmu.name))], "vectorized", {}
        )
        fails = results.findings.filter(pl.col("kind") == "fail_entry")
        windows = work.pieces.filter(
            (pl.col("state") == "guest") & ~pl.col("cpu").is_in(sorted(pmu.cpus))
        )
        assert fails.height == windows["window"].n_unique()
        assert results.findings.filter(pl.col("kind") == "stall").is_empty()
        guest_ns = results.summary["guest_ns"].sum()
        on_pmu = work.pieces.filter(
            (pl.col("state") == "guest") & pl.col("cpu").is_in(sorted(pmu.cpus))
        )
        assert guest_ns == int((on_pmu["end"] - on_pmu["start"]).sum())


def test_results_are_byte_identical_across_runs(shared_traces: Path, tmp_path: Path) -> None:
    case = CASES[0]
    outputs = []
    for run in ("a", "b"):
        cap, _ = case.load(shared_traces)
        outputs.append(what_if(cap).save(tmp_path / run))
    for name in sorted(p.name for p in outputs[0].iterdir()):
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name
