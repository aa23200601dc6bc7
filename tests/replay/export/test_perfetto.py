"""The Perfetto writer, read back with perfetto's protobuf classes (no trace processor needed).

The trace processor checks (SQL against the replay tables) are in tests/perfetto/.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from importers.errors import CaptureFormatError, UsageError
from replay.export import tracks, write_perfetto
from replay.export.clocks import CAPTURE_CLOCK_ID, trace_clock
from replay.export.tracks import ROOT_NAME, TrackIds, vm_pid
from replay.host_report import host_lines
from replay.results import Results
from tests.conftest import ROOT
from tests.replay.export.decode import event_counts, events, read_trace, track_names
from tests.replay.export.fixture_results import fixture_results

NAME = "cross-cluster-migration"


def stall_group(track: str) -> str:
    """``stalls: SCENARIO`` of a track path under the top-level group."""
    root, group, *_ = track.split("/")
    assert root == ROOT_NAME and group.startswith("stalls: "), track
    return group


def _copy(results: Results, **changes: object) -> Results:
    meta = dict(results.meta)
    meta.update(changes.pop("meta", {}))  # type: ignore[call-overload]
    return replace(results, meta=meta, **changes)  # type: ignore[arg-type]


def test_same_results_give_byte_identical_files(tmp_path: Path) -> None:
    results = fixture_results(NAME)
    a, b = tmp_path / "a.perfetto-trace", tmp_path / "b.perfetto-trace"
    write_perfetto(results, a)
    write_perfetto(fixture_results.__wrapped__(NAME), b)  # recomputed from the capture
    assert a.read_bytes() == b.read_bytes()
    # ...and in another interpreter with another string hash seed
    c = tmp_path / "c.perfetto-trace"
    code = (
        "import sys; from tests.replay.export.fixture_results import fixture_results; "
        "from replay.export import write_perfetto; "
        f"write_perfetto(fixture_results({NAME!r}), sys.argv[1])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(c)], check=True, cwd=ROOT, env=env)
    assert c.read_bytes() == a.read_bytes()


@pytest.mark.parametrize("name", ["cross-cluster-migration", "migration-at-overflow"])
def test_streaming_in_small_groups_writes_the_same_events(tmp_path: Path, name: str) -> None:
    whole, parts = tmp_path / "whole.perfetto-trace", tmp_path / "parts.perfetto-trace"
    write_perfetto(fixture_results(name), whole)
    write_perfetto(fixture_results(name), parts, chunk_rows=1)  # one vCPU at a time
    assert event_counts(read_trace(parts)) == event_counts(read_trace(whole))


def test_vcpus_are_threads_of_their_vm_process(tmp_path: Path) -> None:
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(fixture_results(NAME), out)
    trace = read_trace(out)
    descriptors = [p.track_descriptor for p in trace.packet if p.HasField("track_descriptor")]
    processes = [
        (d.process.pid, d.process.process_name) for d in descriptors if d.HasField("process")
    ]
    threads = [
        (d.thread.pid, d.thread.tid, d.thread.thread_name)
        for d in descriptors
        if d.HasField("thread")
    ]
    assert processes == [(4000, "qemu:4000")]
    assert threads == [(4000, 4001, "vCPU 0"), (4000, 4002, "vCPU 1")]


def test_stalls_fail_entries_and_risky_ticks_are_all_there(tmp_path: Path) -> None:
    results = fixture_results(NAME)
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(results, out)
    evs = events(read_trace(out))
    stalls = sorted(
        (stall_group(e.track).removeprefix("stalls: "), e.ts, dict(e.args)["stalled_ns"])
        for e in evs
        if e.name == "stall"
    )
    f = results.findings.filter(pl.col("kind") == "stall")
    assert stalls == sorted(f.select("scenario", "start", "duration").rows())
    fails = sorted((stall_group(e.track), e.ts) for e in evs if e.name == "fail-entry")
    f = results.findings.filter(pl.col("kind") == "fail_entry")
    assert fails == sorted(("stalls: " + s, t) for s, t in f.select("scenario", "start").rows())
    risky = [e for e in evs if e.name == "risky tick"]
    assert len(risky) == results.ticks["risky"].sum() == 8
    # tick k of a 15.625 ms guest clock is read at its end
    tick_ns, t0 = results.meta["profile"]["tick_ns"], results.meta["start"]
    assert {e.ts for e in risky} == {
        t0 + (k + 1) * tick_ns for k in results.ticks.filter(pl.col("risky"))["tick"]
    }


def test_recreations_costs_and_the_verdict_are_in_the_trace(tmp_path: Path) -> None:
    results = fixture_results("pmu-moves")
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(results, out)
    trace = read_trace(out)
    evs = events(trace)
    got = sorted(
        (e.track, e.ts, dict(e.args)["host_pmu"]) for e in evs if e.name == "perf event re-created"
    )
    want = results.findings.filter(pl.col("kind") == "recreation")
    assert got == sorted(
        (f"{ROOT_NAME}/stalls: {s}/qemu:4000 vCPU 0 cycles", t, p)
        for s, t, p in want.select("scenario", "start", "host_pmu").rows()
    )
    assert len(got) == 4  # 2 under each series revision, none on a released kernel
    (verdict,) = [e for e in evs if e.track == f"{ROOT_NAME}/verdict"]
    meta = results.meta["verdict"]
    assert (verdict.ts, verdict.name) == (results.meta["start"], f"conclusive: {meta['scenario']}")
    assert dict(verdict.args)["text"] == meta["text"]
    about = {
        p.track_descriptor.name: p.track_descriptor.description
        for p in trace.packet
        if p.HasField("track_descriptor")
    }
    costs = {r["scenario"]: r["assessment"] for r in results.meta["ranking"]}
    assert about["stalls: fixed-counters-only+v8"].endswith(
        f"Costs: {costs['fixed-counters-only+v8']}"
    )
    assert "(kernel: proposed, series revision v8)" in about["stalls: fixed-counters-only+v8"]
    assert "(kernel: mainline)" in about["stalls: default@cpu0"]


def test_traced_zero_delta_reads_are_instants(tmp_path: Path) -> None:
    results = fixture_results("traced-pmccntr-reads")
    zero = results.reads.filter(pl.col("zero_delta"))
    assert zero.height  # the story: reads after a stretch on the foreign cluster see no change
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(results, out)
    got = sorted(
        (stall_group(e.track), e.ts, dict(e.args)["guest_ns"])
        for e in events(read_trace(out))
        if e.name == "zero-delta read"
    )
    assert got == sorted(
        ("stalls: " + s, t, g) for s, t, g in zero.select("scenario", "ts", "guest_ns").rows()
    )


def test_counter_tracks_end_on_the_last_value(tmp_path: Path) -> None:
    results = fixture_results("migration-at-overflow")
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(results, out)
    last: dict[str, float | None] = {}
    for e in events(read_trace(out)):
        if e.type == "TYPE_COUNTER" and "frequency" not in e.track:
            last[e.track] = e.value
    want = {
        f"vCPU 0/{s} {'cycles' if c == 31 else 'instructions'}": float(v)
        for s, c, v in results.observations.filter(pl.col("value").is_not_null())
        .sort("start")
        .group_by("scenario", "counter", maintain_order=True)
        .agg(pl.col("value").last())
        .rows()
    }
    assert last == want
    # the 32-bit instructions counter wrapped at 2^32 under default@cpu2: 704 after the wrap
    assert last["vCPU 0/default@cpu2 instructions"] == 704


def test_values_past_int64_are_written_as_doubles(tmp_path: Path) -> None:
    base = fixture_results(NAME)
    big = 1 << 63
    obs = base.observations.with_columns(pl.col("value") + big)
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(_copy(base, observations=obs), out)
    values = [e.value for e in events(read_trace(out)) if e.track.endswith(" cycles")]
    assert values and min(v for v in values if v is not None) >= float(big)


def test_zero_length_slices_become_instants(tmp_path: Path) -> None:
    base = fixture_results(NAME)
    first = base.pieces.row(0, named=True)
    # a residency of no time while vCPU 0 is off every CPU (1.00401 s .. 1.01 s)
    point = {
        **first,
        "residency": 99,
        "start": 1_005_000_000,
        "end": 1_005_000_000,
        "state": "host",
        "window": None,
        "cycles": None,
    }
    pieces = pl.concat([base.pieces, pl.DataFrame([point], schema=base.pieces.schema)])
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(_copy(base, pieces=pieces.sort("tid", "start")), out)
    at = [(e.type, e.name) for e in events(read_trace(out)) if e.ts == 1_005_000_000]
    assert sorted(at) == [("TYPE_INSTANT", "CPU 0 · armv8_cortex_a53"), ("TYPE_INSTANT", "host")]


def test_gzip_output_holds_the_same_trace(tmp_path: Path) -> None:
    plain, packed = tmp_path / "t.perfetto-trace", tmp_path / "t.perfetto-trace.gz"
    write_perfetto(fixture_results(NAME), plain)
    write_perfetto(fixture_results(NAME), packed)
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()


def test_scenario_selection(tmp_path: Path) -> None:
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(fixture_results(NAME), out, scenarios=["default@cpu0"])
    names = set(track_names(read_trace(out)).values())
    assert "vCPU 0/default@cpu0 cycles" in names
    assert not any("fixed-counters-only" in n or "default@cpu2" in n for n in names)
    with pytest.raises(UsageError, match=r"no scenario 'default@cpu9'.*default@cpu0"):
        write_perfetto(fixture_results(NAME), out, scenarios=["default@cpu9"])


def test_bad_results_are_clear_errors(tmp_path: Path) -> None:
    base = fixture_results(NAME)
    out = tmp_path / "t.perfetto-trace"
    early = base.pieces.with_columns(pl.col("start") - 2_000_000_000)
    with pytest.raises(CaptureFormatError, match="negative timestamps"):
        write_perfetto(_copy(base, pieces=early), out)
    raw = _copy(base, meta={"capture": {"ts_unit": "cycles"}})
    with pytest.raises(UsageError, match="raw clock units"):
        write_perfetto(raw, out)
    no_meta = _copy(base)
    del no_meta.meta["vms"]
    with pytest.raises(CaptureFormatError, match="'vms'"):
        write_perfetto(no_meta, out)
    damaged = _copy(base, pieces=base.pieces.drop("residency"))
    with pytest.raises(CaptureFormatError, match="pieces lacks column"):
        write_perfetto(damaged, out)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(UsageError, match="is a file, not a directory"):
        write_perfetto(base, tmp_path / "file" / "t.perfetto-trace")
    # an I/O failure is an OSError naming the output (the CLI's exit code 8), as for -o DIR
    with pytest.raises(OSError, match="cannot write it") as failed:
        write_perfetto(base, "/proc/no-such.perfetto-trace")
    assert failed.value.filename == "/proc/no-such.perfetto-trace"
    assert not out.exists() and not list(tmp_path.rglob("*.partial"))


@pytest.mark.parametrize(
    ("name", "clock_id"),
    [("boot", 6), ("mono", 3), ("CLOCK_MONOTONIC_RAW", 5), ("local", CAPTURE_CLOCK_ID), (None, 64)],
)
def test_capture_clocks_are_declared(tmp_path: Path, name: str | None, clock_id: int) -> None:
    assert trace_clock(name).clock_id == clock_id
    base = fixture_results(NAME)
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(_copy(base, meta={"capture": {"clock": name}}), out)
    snapshot, defaults = list(read_trace(out).packet)[:2]
    clocks = {c.clock_id: c.timestamp for c in snapshot.clock_snapshot.clocks}
    assert clocks == {clock_id: base.meta["start"], 6: base.meta["start"]}
    assert defaults.trace_packet_defaults.timestamp_clock_id == clock_id


def test_track_uuids_are_path_hashes_and_stay_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = TrackIds()
    a = ids("vcpu", "qemu:4000", 4001)
    assert ids("vcpu", "qemu:4000", "4001") == a and 0 < a < 1 << tracks.UUID_BITS
    assert TrackIds()("vcpu", "qemu:4000", 4001) == a
    monkeypatch.setattr(tracks, "UUID_BITS", 2)  # 3 usable uuids: collisions are certain
    small = TrackIds()
    got = [small(str(i)) for i in range(3)]
    assert sorted(got) == [1, 2, 3]
    assert [TrackIds()(str(i)) for i in range(1)] == got[:1]


def test_vm_pids() -> None:
    assert vm_pid("qemu:4000") == 4000
    assert vm_pid("vm0") is None
    assert vm_pid("crosvm:9999999") is None  # not a Linux pid


def _descriptors(path: Path) -> list[Any]:
    return [p.track_descriptor for p in read_trace(path).packet if p.HasField("track_descriptor")]


def test_stall_groups_come_first_and_frequencies_last(tmp_path: Path) -> None:
    results = fixture_results(NAME)
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(results, out)
    descriptors = _descriptors(out)
    # the UI sorts top-level tracks by name: one top-level group, explicitly ordered
    top = [
        d
        for d in descriptors
        if not (d.parent_uuid or d.HasField("process") or d.HasField("thread"))
    ]
    (root,) = top
    assert root.name == ROOT_NAME and root.child_ordering == root.EXPLICIT
    children = sorted(
        (d.sibling_order_rank, d.name) for d in descriptors if d.parent_uuid == root.uuid
    )
    stalls = [f"stalls: {s['name']}" for s in results.meta["scenarios"]]
    stalls = [s for s in stalls if s.removeprefix("stalls: ") in set(results.findings["scenario"])]
    verdict = ["verdict"] if results.meta.get("verdict") else []
    host = host_lines(results.meta["host"])[:1]
    assert [name for _, name in children] == [*verdict, *host, *stalls, "host CPU frequency"]


def test_assumed_frequencies_are_left_out(tmp_path: Path) -> None:
    results = fixture_results(NAME)
    # the story's CPUs 0-1 start at 1 GHz by an event; make CPU 0's first step an assumption
    freq = results.frequency.with_columns(
        assumed=(pl.col("cpu") == 0) | ((pl.col("cpu") == 2) & (pl.col("ts") == pl.col("ts").min()))
    )
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(_copy(results, frequency=freq), out)
    samples = sorted(
        (e.track.rsplit("/", 1)[1], e.ts, e.value)
        for e in events(read_trace(out))
        if e.type == "TYPE_COUNTER" and e.track.endswith("frequency")
    )
    measured = freq.filter(~pl.col("assumed")).sort("cpu", "ts")
    assert samples == [
        (f"CPU {cpu} frequency", ts, float(khz))
        for cpu, ts, khz in measured.select("cpu", "ts", "khz").rows()
    ]
    assert "CPU 0 frequency" not in {d.name for d in _descriptors(out)}
    # nothing measured at all: no frequency group
    out2 = tmp_path / "none.perfetto-trace"
    write_perfetto(_copy(results, frequency=freq.with_columns(assumed=pl.lit(True))), out2)
    assert "host CPU frequency" not in {d.name for d in _descriptors(out2)}


def test_a_vm_without_a_known_pid_is_no_process(tmp_path: Path) -> None:
    results = fixture_results(NAME)
    renamed = {
        name: getattr(results, name).with_columns(pl.col("vm").replace("qemu:4000", "vm0"))
        for name in ("observations", "findings", "summary", "pieces", "ticks")
    }
    out = tmp_path / "t.perfetto-trace"
    write_perfetto(_copy(results, meta={"vms": {"vm0": [4001, 4002]}}, **renamed), out)
    descriptors = _descriptors(out)
    assert not [d for d in descriptors if d.HasField("process") or d.HasField("thread")]
    names = track_names(read_trace(out))
    vm = f"{ROOT_NAME}/vm0 (VMM process unknown)"
    vcpus = sorted(path for path in names.values() if path.count("/") == 2 and path.startswith(vm))
    assert vcpus == [f"{vm}/vCPU 0 (tid 4001)", f"{vm}/vCPU 1 (tid 4002)"]
    # their placement slices and counters are still there, under those tracks
    evs = events(read_trace(out))
    assert {e.track for e in evs if e.track.startswith(vcpus[0]) and e.type == "TYPE_COUNTER"}
    assert any(e.track == vcpus[1] for e in evs)
