"""The engine on real schedules (issue 6 acceptance).

* reference and vectorized paths give identical observations on every shared capture with
  scheduling events, for every scenario of the compare matrix and two guest profiles;
* under ``default``, the guest, unknown and stalled time of each vCPU equal, to the
  nanosecond, a record-by-record walk of its thread written here in plain Python;
* under ``fixed-counters-only`` the cycle counter never stalls;
* under ``set-pmu`` the failed entries are exactly the guest entries on unsupported CPUs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from importers.capture import Capture
from replay.api import what_if
from replay.compare import scenario_matrix
from replay.detectors import findings, tick_table
from replay.engine import prepare, replay
from replay.profiles import PROFILES
from replay.results import assemble, detect, primary_counter
from replay.scenarios import Mode, Scenario
from replay.work import RECREATION_SCHEMA, VCPU_KEY, ScenarioResult, Work
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


Stretch = tuple[str, int | None, int, int]


def _stretches(cap: Capture, tid: int, t0: int, t1: int) -> list[Stretch]:
    """``(state, cpu, start, end)`` of a thread from ``t0`` to ``t1``, by walking its records
    one by one: the rules replay/timeline.py states, with DESIGN.md's "Unknown is not no
    stall", written again in plain Python.

    A thread is on a CPU after its switch-in, off after its switch-out, and in guest mode after
    a kvm_entry until its next record; a thread without kvm events runs guest code whenever it
    runs. Before its first switch it is on that switch's CPU if the switch is an out; before its
    first kvm event in guest mode if that event is an exit. The stretch before a record that
    contradicts the state (a switch-in while on a CPU, a switch-out while off or in guest mode,
    a kvm event while off or on another CPU, an entry in guest mode, an exit outside it) is
    unknown: records were lost there.
    """
    sw = cap.frame("sched_switch")
    records = [
        *[
            (ts, seq, 0, "in", cpu)
            for ts, seq, cpu in sw.filter(pl.col("next_pid") == tid)
            .select("ts", "seq", "cpu")
            .rows()
        ],
        *[
            (ts, seq, 3, "out", cpu)
            for ts, seq, cpu in sw.filter(pl.col("prev_pid") == tid)
            .select("ts", "seq", "cpu")
            .rows()
        ],
    ]
    kvm = [
        (ts, seq, order, kind, cpu)
        for table, order, kind in (("kvm_entry", 1, "entry"), ("kvm_exit", 2, "exit"))
        for ts, seq, cpu in cap.frame(table)
        .filter(pl.col("common_pid") == tid)
        .select("ts", "seq", "cpu")
        .rows()
    ]
    if sw.is_empty():  # no sched_switch at all: the thread moves when its kvm events do
        kvm.sort()
        for (ts, seq, _, _, at), nxt in zip(kvm, [*kvm[1:], None], strict=True):
            if not records or records[-1][4] != at:
                records.append((ts, seq, 0, "in", at))
            if nxt is not None and nxt[4] != at:
                records.append((nxt[0], nxt[1] - 1, 3, "out", at))
    records = sorted(records + kvm)
    switches = [r for r in records if r[3] in ("in", "out")]
    cpu = switches[0][4] if switches and switches[0][3] == "out" else None
    guest = bool(kvm) and min(kvm)[3] == "exit"
    out = []
    start = t0
    for ts, _, _, kind, at in records:
        bad = {
            "in": cpu is not None,
            "out": cpu is None or guest,
            "entry": cpu != at or guest,
            "exit": cpu != at or not guest,
        }[kind]
        state = (
            "unknown" if bad else "off" if cpu is None else "guest" if guest or not kvm else "host"
        )
        out.append((state, cpu, start, ts))
        cpu = at if kind == "in" else None if kind == "out" else cpu
        guest = kind == "entry"
        start = ts
    out.append(("off" if cpu is None else "guest" if guest or not kvm else "host", cpu, start, t1))
    return [r for r in out if r[3] > r[2] and r[0] != "off"]


def _ns(walk: list[Stretch], state: str, outside: frozenset[int] | None = None) -> int:
    """Time of the stretches in ``state`` (on CPUs not in ``outside``, if given)."""
    return sum(b - a for st, cpu, a, b in walk if st == state and not (outside and cpu in outside))


@pytest.mark.slow
def test_default_stalls_exactly_the_guest_time_off_the_default_pmu(
    loaded: tuple[Case, Capture, Work],
) -> None:
    """Guest time, stalled time and unknown time of every vCPU equal, to the nanosecond, a
    record-by-record walk of its thread (:func:`_stretches`) on CPUs outside the default PMU."""
    _, cap, work = loaded
    assert cap.frame("lost_events").is_empty()  # loss gaps: tests/replay/test_timeline.py
    for scenario in [s for s in scenario_matrix(work.host) if s.mode == Mode.DEFAULT]:
        results = assemble(work, [replay(work, scenario)], "vectorized", {})
        default_pmu = work.host.probe_armpmu(scenario.init_cpu)
        assert default_pmu is not None
        for row in results.summary.iter_rows(named=True):
            walk = _stretches(cap, row["vcpu"], work.timeline.start, work.timeline.end)

            where = (scenario.name, row["vcpu"])
            assert row["guest_ns"] == _ns(walk, "guest"), where
            assert row["unknown_ns"] == _ns(walk, "unknown"), where
            assert row["stalled_ns"] == _ns(walk, "guest", default_pmu.cpus), where


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


def test_scenarios_share_the_columns_no_scenario_changes(
    loaded: tuple[Case, Capture, Work],
) -> None:
    """The vectorized path's observations of two scenarios hold the same buffers for the
    columns every scenario takes unchanged (replay.paths.vectorized.counter_rows), and the
    rows are built once per Work."""
    _, _, work = loaded
    fresh = replace(work, counter_rows=None)
    a = replay(fresh, Scenario(Mode.DEFAULT, init_cpu=min(work.host.possible_cpus)))
    rows = fresh.counter_rows
    b = replay(fresh, Scenario(Mode.NO_PMU))
    assert fresh.counter_rows is rows
    for name in ("vcpu", "start", "counter"):
        column_a, column_b = a.observations[name], b.observations[name]
        assert column_a.n_chunks() == column_b.n_chunks() == 1, name
        assert np.shares_memory(column_a.to_numpy(), column_b.to_numpy()), name


def test_what_if_detects_every_scenario_as_one_call_on_all_of_them(
    loaded: tuple[Case, Capture, Work],
) -> None:
    """Detectors run scenario by scenario (replay.results.detect_each) give the tables, rows
    and order of one call on every scenario's observations, each table in one chunk; the
    summary's per-vCPU fail-entry and tick counts are those of a group_by."""
    _, cap, work = loaded
    matrix = scenario_matrix(work.host)
    done = [replay(work, s) for s in matrix]
    observations = pl.concat([r.observations for r in done])
    recreations = pl.concat([r.recreations for r in done])
    primary = primary_counter(work)
    results = what_if(cap, matrix, work=work)
    found = findings(observations, primary, recreations)
    assert results.findings.n_chunks() == 1
    assert results.findings.equals(found)
    tick_ns = work.profile.tick_ns
    assert tick_ns is not None
    ticks = tick_table(observations, primary, work.timeline.start, tick_ns)
    assert results.ticks.n_chunks() == 1
    assert results.ticks.equals(ticks)

    def counted(table: pl.DataFrame, *sums: pl.Expr) -> pl.DataFrame:
        totals = table.group_by(VCPU_KEY).agg(pl.len().alias("n"), *sums)
        return results.summary.join(totals, on=VCPU_KEY, how="left", nulls_equal=True)

    fails = counted(
        found.filter(pl.col("kind") == "fail_entry"), pl.col("duration").sum().alias("ns")
    )
    assert fails["fail_entries"].to_list() == fails["n"].fill_null(0).to_list()
    assert fails["fail_entry_ns"].to_list() == fails["ns"].fill_null(0).to_list()
    ticked = counted(ticks, pl.col("risky").sum().alias("r"), pl.col("unknown").sum().alias("u"))
    assert ticked["ticks_with_guest"].to_list() == ticked["n"].fill_null(0).to_list()
    assert ticked["risky_ticks"].to_list() == ticked["r"].fill_null(0).to_list()
    assert ticked["unknown_ticks"].to_list() == ticked["u"].fill_null(0).to_list()


def test_detect_reads_ticks_from_the_timelines_start(
    loaded: tuple[Case, Capture, Work],
) -> None:
    """The ticks of a scenario's detection are counted from the timeline's start: an unknown
    piece that begins exactly where a tick begins makes that tick doubtful and leaves the one
    before it risky, which a start off by a nanosecond would turn the other way."""
    _, _, work = loaded
    tick_ns, t0 = work.profile.tick_ns, work.timeline.start
    assert tick_ns is not None
    primary = primary_counter(work)
    rows = [  # a vCPU in guest code with its counter not moving, then unknown time
        (t0 + tick_ns + 10, t0 + tick_ns + 90, "guest", False, 1, 0),
        (t0 + 2 * tick_ns, t0 + 2 * tick_ns + 50, "unknown", False, None, 0),
    ]
    observations = pl.DataFrame(
        rows, schema=["start", "end", "state", "counting", "tick", "delta"], orient="row"
    ).with_columns(
        pl.lit("default@cpu0").alias("scenario"),
        pl.lit("vm0").alias("vm"),
        pl.lit(7, pl.Int32).alias("vcpu"),
        pl.lit(0, pl.Int32).alias("vcpu_index"),
        pl.lit(primary, pl.Int8).alias("counter"),
        pl.lit(0, pl.Int16).alias("cpu"),
        pl.lit("foreign_cpu").alias("reason"),
        pl.lit(None, pl.String).alias("host_pmu"),
        pl.lit(None, pl.Int64).alias("window"),
        pl.lit(0, pl.Int64).alias("true_events"),
    )
    scenario = scenario_matrix(work.host)[0]
    recreations = pl.DataFrame(schema=RECREATION_SCHEMA)
    result = ScenarioResult(scenario, observations, {}, recreations, frozenset())
    ticks = detect(work, result).ticks
    assert ticks is not None
    assert ticks.select("tick", "risky", "unknown").rows() == [(1, True, False)]
