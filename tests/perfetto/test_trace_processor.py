"""Exported traces loaded into Perfetto's own trace processor, checked by SQL against the
replay tables: no import errors, the tracks, the slices and every counter value.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from perfetto.trace_processor import TraceProcessor

from replay.api import what_if
from replay.export import write_perfetto
from replay.export.tracks import vm_pid
from replay.results import Results
from tests.conftest import FIXTURES
from tests.perfetto.conftest import LoadTrace
from tests.perfetto.trace_processor import rows
from tests.replay.cases import CASES as REAL_CASES
from tests.replay.export.fixture_results import CAPTURES, fixture_results

REAL = {c.name: c for c in REAL_CASES}
#: a 32-bit event counter at 64 events a cycle: it wraps inside guest pieces of this capture
WRAPPING = str(FIXTURES / "profiles" / "wrapping-event-counter.json")
CASES = [
    *CAPTURES.items(),
    ("cross-cluster-migration", "linux-perf"),
    ("cross-cluster-migration", WRAPPING),
    ("juno-trace-txt", "windows"),
    ("kvm-x86-host-report-txt", "linux-perf"),
    ("juno-sched-load", "windows"),  # trace-cmd trace.dat
    ("kvm-x86-hostguest-v7", "linux-perf"),  # trace.dat with kvm_entry/kvm_exit
]


#: Every vCPU's track and thread id: thread tracks, or the plain "vCPU n (tid t)" tracks of a
#: VM whose VMM pid is unknown.
VCPU_TRACKS = (
    "select tt.id, t.tid from thread_track tt join thread t using (utid) union all "
    "select t.id, cast(rtrim(substr(t.name, instr(t.name, '(tid ') + 5), ')') as int) as tid "
    "from track t join track g on t.parent_id = g.id "
    "where g.name like '% (VMM process unknown)'"
)


def real_results(shared: Path, name: str, profile: str) -> Results:
    cap, _ = REAL[name].load(shared)
    return what_if(cap, profile=profile)


@pytest.fixture(
    scope="module", params=CASES, ids=[f"{name}-{Path(profile).stem}" for name, profile in CASES]
)
def loaded(
    request: pytest.FixtureRequest, load_trace: LoadTrace, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Results, TraceProcessor]:
    name, profile = request.param
    if name in REAL:
        results = real_results(request.getfixturevalue("shared_traces"), name, profile)
    else:
        results = fixture_results(name, profile)
    path = tmp_path_factory.mktemp("trace") / f"{name}.perfetto-trace"
    write_perfetto(results, path)
    return results, load_trace(path)


def import_errors(tp: TraceProcessor) -> list[dict[str, Any]]:
    return rows(
        tp,
        "select name, idx, severity, source, value from stats "
        "where value > 0 and severity in ('error', 'data_loss')",
    )


def test_no_import_errors_and_bounds_on_the_capture_clock(
    loaded: tuple[Results, TraceProcessor],
) -> None:
    results, tp = loaded
    assert import_errors(tp) == []
    (bounds,) = rows(tp, "select start_ts, end_ts from trace_bounds")
    # the capture clock is mapped 1:1 onto the trace clock; the trace ends with the last thing
    # exported: the replayed capture's span, a piece, a stall or unknown slice, a risky tick (at
    # its tick's end), a traced read or a frequency step
    assert bounds["start_ts"] == results.meta["start"]
    t0, tick_ns = results.meta["start"], results.meta["profile"]["tick_ns"]
    ends = [results.meta["end"], results.pieces["end"].max(), results.findings["end"].max()]
    risky = results.ticks.filter(pl.col("risky")) if results.ticks.height else results.ticks
    if tick_ns and risky.height:
        ends.append(t0 + (risky["tick"].max() + 1) * tick_ns)
    ends += [results.reads["ts"].max() if results.reads.height else None]
    ends += [results.frequency["ts"].max() if results.frequency.height else None]
    assert bounds["end_ts"] == max(e for e in ends if e is not None)


def test_one_process_per_vm_one_thread_per_vcpu(loaded: tuple[Results, TraceProcessor]) -> None:
    results, tp = loaded
    threads = rows(
        tp,
        "select p.pid, p.name as vm, t.tid, t.name from thread t join process p using (upid) "
        "where t.name like 'vCPU%' order by t.tid",
    )
    # VMs whose VMM pid the capture does not give: no process (no made-up pid), plain tracks
    plain = rows(
        tp,
        "select g.name as vm, t.name from track t join track g on t.parent_id = g.id "
        "where g.name like '% (VMM process unknown)' order by t.name",
    )
    vcpus = results.pieces.select("vm", "tid", "vcpu_index").unique().sort("tid")
    name = (
        pl.when(pl.col("vcpu_index").is_not_null())
        .then(pl.format("vCPU {}", "vcpu_index"))
        .otherwise(pl.format("vCPU tid {}", "tid"))
    )
    known = pl.col("vm").map_elements(vm_pid, return_dtype=pl.Int64).is_not_null()
    want_threads = vcpus.filter(known).select("vm", "tid", name.alias("name"))
    assert [{k: r[k] for k in ("vm", "tid", "name")} for r in threads] == want_threads.to_dicts()
    want_plain = vcpus.filter(~known).select(
        pl.format("{} (VMM process unknown)", "vm").alias("vm"),
        pl.format("{} (tid {})", name, "tid").alias("name"),
    )
    assert plain == want_plain.sort("name").to_dicts()
    # the VMM's tgid when the VM name carries it (importers.host.vcpus), nothing made up
    assert all(r["pid"] == vm_pid(r["vm"]) for r in threads)
    assert len({r["pid"] for r in threads}) == want_threads["vm"].n_unique()


def stretches(pieces: pl.DataFrame) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Residencies ``(tid, ts, dur, cpu)`` and the stretches in them ``(tid, ts, dur, state,
    cycles, cause)``, from the pieces by hand: a residency is a run of one thread's pieces (in
    time order) with one ``residency`` value; a stretch a run of contiguous pieces in it with
    one state, guest window and cause."""
    residencies: list[list[Any]] = []
    runs: list[list[Any]] = []
    last: dict[str, Any] | None = None
    for p in pieces.sort("tid", "start", "end").iter_rows(named=True):
        new_residency = last is None or (p["tid"], p["residency"]) != (
            last["tid"],
            last["residency"],
        )
        if new_residency:
            residencies.append([p["tid"], p["start"], p["end"], p["cpu"]])
        residencies[-1][2] = p["end"]
        if residencies[-1][3] is None:
            residencies[-1][3] = p["cpu"]
        same = not new_residency and last is not None and p["start"] == last["end"]
        same = same and all(p[k] == last[k] for k in ("state", "window", "cause"))  # type: ignore[index]
        if not same:
            runs.append([p["tid"], p["start"], p["end"], p["state"], 0, p["cause"]])
        runs[-1][2] = p["end"]
        runs[-1][4] += p["cycles"] or 0
        last = p
    res = [(t, a, b - a, cpu) for t, a, b, cpu in residencies]
    return sorted(res), sorted((t, a, b - a, st, c, cause) for t, a, b, st, c, cause in runs)


def test_where_each_vcpu_ran(loaded: tuple[Results, TraceProcessor]) -> None:
    """One residency slice (CPU, host PMU) per run of a vCPU's pieces on one CPU, holding one
    guest/host/unknown slice per stretch: compared slice by slice with the pieces."""
    results, tp = loaded
    slices = rows(
        tp,
        "select v.tid, s.ts, s.dur, s.name, s.depth, "
        "extract_arg(s.arg_set_id, 'debug.host_pmu') as host_pmu, "
        "extract_arg(s.arg_set_id, 'debug.cpu') as cpu, "
        "extract_arg(s.arg_set_id, 'debug.cycles') as cycles, "
        "extract_arg(s.arg_set_id, 'debug.cause') as cause "
        f"from slice s join ({VCPU_TRACKS}) v on s.track_id = v.id",
    )
    residencies, runs = stretches(results.pieces)
    got_runs = sorted(
        (s["tid"], s["ts"], s["dur"], s["name"], s["cycles"] or 0, s["cause"])
        for s in slices
        if s["depth"] == 1
    )
    assert got_runs == runs
    pmus = {cpu: pmu for pmu, cpus in results.meta["topology"]["pmus"].items() for cpu in cpus}
    got = sorted(
        (s["tid"], s["ts"], s["dur"], s["cpu"], s["name"], s["host_pmu"])
        for s in slices
        if s["depth"] == 0
    )
    want = [
        (tid, ts, dur, cpu, "CPU ?" if cpu is None else f"CPU {cpu} · {pmus[cpu]}", pmus.get(cpu))
        for tid, ts, dur, cpu in residencies
    ]
    assert got == want


def test_every_guest_counter_value(loaded: tuple[Results, TraceProcessor]) -> None:
    """One counter track per vCPU, scenario and counter; at the end of every guest piece it
    reads the observation's ``value``."""
    results, tp = loaded
    samples = rows(
        tp,
        "select coalesce(t.tid, v.tid) as tid, ct.name, c.ts, c.value from counter c "
        "join track ct on c.track_id = ct.id "
        "left join thread_counter_track tc on tc.id = ct.id left join thread t using (utid) "
        f"left join ({VCPU_TRACKS}) v on ct.parent_id = v.id "
        "where coalesce(t.tid, v.tid) is not null order by c.track_id, c.ts, c.id",
    )
    series: dict[tuple[int, str], tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for s in samples:
        ts, values = series[s["tid"], s["name"]]
        ts.append(s["ts"])
        values.append(s["value"])
    names = {c["idx"]: c["name"] for c in results.meta["profile"]["counters"]}
    obs = results.observations.filter(pl.col("value").is_not_null())
    keys = obs.select("vcpu", "scenario", "counter").unique()
    assert set(series) == {(v, f"{s} {names[c]}") for v, s, c in keys.rows()}
    checked = wrapped = 0
    for vcpu, scenario, counter, start, end, delta, value in obs.select(
        "vcpu", "scenario", "counter", "start", "end", "delta", "value"
    ).rows():
        ts, values = series[vcpu, f"{scenario} {names[counter]}"]

        def at(t: int, ts: list[int] = ts, values: list[float] = values) -> float:
            return values[bisect_right(ts, t) - 1]  # the step function through the samples

        assert at(end) == value, (vcpu, scenario, counter, end)
        # when the piece starts, the guest reads the value before it: PMCCNTR_EL0 is 64 bits
        # wide, PMEVCNTR<n>_EL0 32 (PMUv3 without FEAT_PMUv3p5), and ``delta`` wraps with it
        width = 64 if counter == 31 else 32
        assert at(start) == (value - delta) % (1 << width), (vcpu, scenario, counter, start)
        checked += 1
        wrapped += value < delta
    assert checked == obs.height > 0
    # the wrapping profile's event counter wraps inside a piece: the value before is the
    # value plus 2^32 minus the delta
    assert (wrapped > 0) == (results.meta["profile"]["name"] == Path(WRAPPING).stem)


def test_stalls_track_per_scenario(loaded: tuple[Results, TraceProcessor]) -> None:
    """Every stall episode and unknown interval is a slice with its cause; every fail-entry and
    risky tick an instant; all on the scenario's ``stalls`` group."""
    results, tp = loaded
    got = pl.DataFrame(
        rows(
            tp,
            "select substr(g.name, 9) as scenario, s.name, s.ts, s.dur, "
            "extract_arg(s.arg_set_id, 'debug.cause') as cause "
            "from slice s join track t on s.track_id = t.id join track g on t.parent_id = g.id "
            "where g.name like 'stalls: %'",
        ),
        schema={
            "scenario": pl.Utf8,
            "name": pl.Utf8,
            "ts": pl.Int64,
            "dur": pl.Int64,
            "cause": pl.Utf8,
        },
    )
    f = results.findings
    for kind, name in (("stall", "stall"), ("unknown", "unknown")):
        want = f.filter(pl.col("kind") == kind).select(
            "scenario",
            pl.col("start").alias("ts"),
            (pl.col("end") - pl.col("start")).alias("dur"),
            "cause",
        )
        have = got.filter(pl.col("name") == name).drop("name")
        assert have.sort(have.columns).rows() == want.sort(want.columns).rows()
    fails = got.filter(pl.col("name") == "fail-entry").select("scenario", "ts", "dur")
    want = f.filter(pl.col("kind") == "fail_entry").select("scenario", pl.col("start").alias("ts"))
    assert fails.sort("scenario", "ts").rows() == [
        (*r, 0) for r in want.sort("scenario", "ts").rows()
    ]
    # a risky tick is an instant at the end of its tick, where the guest reads the counter
    risky = got.filter(pl.col("name") == "risky tick").select("scenario", "ts", "dur")
    want_risky = []
    if results.ticks.height:
        t0, tick_ns = results.meta["start"], results.meta["profile"]["tick_ns"]
        want_risky = [
            (scenario, t0 + (tick + 1) * tick_ns, 0)
            for scenario, tick in results.ticks.filter(pl.col("risky"))
            .select("scenario", "tick")
            .rows()
        ]
    assert sorted(risky.rows()) == sorted(want_risky)
    # traced PMCCNTR_EL0 reads that saw no change after guest time, at the read
    reads = got.filter(pl.col("name") == "zero-delta read").select("scenario", "ts")
    zero = results.reads.filter(pl.col("zero_delta")).select("scenario", "ts")
    assert reads.sort("scenario", "ts").rows() == zero.sort("scenario", "ts").rows()
    # perf events the kernel re-created at guest entries, on the PMU they moved to
    recreated = got.filter(pl.col("name") == "perf event re-created")
    want = f.filter(pl.col("kind") == "recreation")
    assert recreated.select("scenario", "ts", "cause").sort("scenario", "ts").rows() == (
        want.select("scenario", pl.col("start").alias("ts"), "cause").sort("scenario", "ts").rows()
    )


def test_verdict_track(loaded: tuple[Results, TraceProcessor]) -> None:
    """The verdict of ranked results: one instant at the start on the ``verdict`` track."""
    results, tp = loaded
    got = rows(
        tp,
        "select s.ts, s.dur, s.name, extract_arg(s.arg_set_id, 'debug.kernel') as kernel, "
        "extract_arg(s.arg_set_id, 'debug.mainline_fallback') as fallback, "
        "extract_arg(s.arg_set_id, 'debug.text') as text "
        "from slice s join track t on s.track_id = t.id where t.name = 'verdict'",
    )
    verdict = results.meta["verdict"]
    assert got == [
        {
            "ts": results.meta["start"],
            "dur": 0,
            "name": f"{verdict['status']}: {verdict['scenario']}",
            "kernel": verdict["kernel"],
            "fallback": verdict["mainline_fallback"],
            "text": verdict["text"],
        }
    ]


def test_host_cpu_frequency(loaded: tuple[Results, TraceProcessor]) -> None:
    results, tp = loaded
    got = rows(
        tp,
        "select ct.name, c.ts, c.value from counter c join counter_track ct on c.track_id = ct.id "
        "where ct.name like 'CPU % frequency' order by ct.name, c.ts",
    )
    # only what the capture measured: assumed frequencies are left out
    measured = results.frequency.filter(~pl.col("assumed"))
    want = measured.sort(pl.format("CPU {} frequency", "cpu"), "ts").select(
        pl.format("CPU {} frequency", "cpu").alias("name"),
        "ts",
        (pl.col("khz") * 1000).cast(pl.Float64).alias("value"),
    )
    assert got == want.to_dicts()
