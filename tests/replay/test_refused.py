"""Entries the capture's kernel refused (KVM_EXIT_FAIL_ENTRY before any kvm_entry).

Linux 6.12 ``kvm_arch_vcpu_ioctl_run()`` refuses an entry on a pCPU outside
``supported_cpus`` in ``kvm_vcpu_exit_request()``, before ``trace_kvm_entry()``: the capture
has only the ``kvm_userspace_exit`` record. ``fixtures/captures/refused-entries.txt`` (recorded
under SET_PMU to the Cortex-A53 PMU, CPUs 0-1) holds three such refusals of vCPU 0, on CPUs 2
and 3, and one KVM_EXIT_FAIL_ENTRY of vCPU 1 after a ``HYP_GONE`` exit, which is no refusal
(``handle_exit()`` reports it after the guest ran). Every expectation below is read from the
capture's text by the test itself; the real recordings of ``fixtures/kernel/`` are held to the
VMM's own exit log.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from importers.capture import Capture
from importers.schema import conform
from replay.api import open_capture, prepare_replay, what_if
from replay.cli import main
from replay.validate import load_case
from tests.conftest import FIXTURES
from tests.replay.engine_paths import assert_paths_agree
from tests.replay.export.fixture_results import fixture_capture

CAPTURE = FIXTURES / "captures" / "refused-entries.txt"
SET_PMU = "set-pmu:armv8_cortex_a53"
A53_CPUS = {0, 1}  # fixtures/topologies/two-cluster.json
KERNEL_CASES = [FIXTURES / "kernel" / "set-pmu-a53", FIXTURES / "kernel" / "set-pmu-a72"]
LINE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\(\s*\S+\)\s+\[(?P<cpu>\d+)\]\s+\S+\s+"
    r"(?P<sec>\d+)\.(?P<usec>\d{6}): (?P<event>\w+): (?P<text>.*)$"
)


@dataclass(frozen=True)
class Record:
    tid: int
    cpu: int
    ts: int  # ns
    event: str
    text: str


def records(path: Path) -> list[Record]:
    """Every event line of a kernel trace text, in file order (the thread is the task)."""
    out = []
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if m:
            ts = int(m["sec"]) * 1_000_000_000 + int(m["usec"]) * 1000
            out.append(Record(int(m["pid"]), int(m["cpu"]), ts, m["event"], m["text"]))
    return out


def refusals(recs: list[Record]) -> list[Record]:
    """KVM_EXIT_FAIL_ENTRY returns whose thread's previous kvm record is not a HYP_GONE exit."""
    out, last = [], {}
    for r in recs:
        if not r.event.startswith("kvm_"):
            continue
        failed = r.event == "kvm_userspace_exit" and "KVM_EXIT_FAIL_ENTRY (9)" in r.text
        if failed and not last.get(r.tid, "").startswith("kvm_exit HYP_GONE"):
            out.append(r)
        last[r.tid] = f"{r.event} {r.text}"
    return out


def next_attempt(recs: list[Record], r: Record) -> int:
    """Time of the thread's next entry attempt after ``r`` (refusal or kvm_entry), else the
    capture's last record."""
    later = [
        x.ts
        for x in recs
        if x.tid == r.tid
        and x.ts >= r.ts
        and x is not r
        and (x.event == "kvm_entry" or x in refusals(recs))
    ]
    return min(later, default=recs[-1].ts)


def on_cpu(recs: list[Record], tid: int, start: int, end: int) -> int:
    """The thread's time on CPUs within [start, end), from its sched_switch records."""
    total, since = 0, None
    for r in recs:
        if r.event != "sched_switch":
            continue
        if f"next_pid={tid} " in r.text:
            since = r.ts
        elif f"prev_pid={tid} " in r.text and since is not None:
            total += max(0, min(r.ts, end) - max(since, start))
            since = None
    return total


def lose_events(cap: Capture, cpu: int, seq: int, ts: int) -> None:
    """A lost-events marker of ``cpu`` at position ``seq``, its next record at ``ts``: the
    CPU's time from its record before ``seq`` to ``ts`` is hidden."""
    marker = {"ts": [ts], "seq": [seq], "cpu": pa.array([cpu], pa.int16()), "kind": ["lost"]}
    cap.tables["lost_events"] = conform("lost_events", pa.table(marker))


def test_the_capture_tells_the_story() -> None:
    recs = records(CAPTURE)
    fails = [r for r in recs if "KVM_EXIT_FAIL_ENTRY (9)" in r.text]
    refused = refusals(recs)
    assert len(fails) == 4 and len(refused) == 3  # one follows a HYP_GONE exit
    assert not {r.cpu for r in refused} & A53_CPUS  # outside the PMU's CPUs, as SET_PMU refuses


def test_refused_entries_are_found_and_placed() -> None:
    work = prepare_replay(fixture_capture("refused-entries"))
    expected = [(r.tid, r.ts, r.cpu) for r in refusals(records(CAPTURE))]
    assert work.attempts.select("tid", "start", "cpu").rows() == expected
    recs = records(CAPTURE)
    until = [next_attempt(recs, r) for r in refusals(recs)]
    assert work.attempts["until"].to_list() == until
    assert any("3 guest entries the capture's kernel refused" in n for n in work.notes)


def test_without_sched_switch_the_refusals_place_the_thread() -> None:
    """Residency then comes from the kvm records' CPUs, refusals included."""
    cap = fixture_capture("refused-entries")
    cap.tables["sched_switch"] = cap.tables["sched_switch"].slice(0, 0)
    work = prepare_replay(cap)
    expected = [(r.tid, r.ts, r.cpu) for r in refusals(records(CAPTURE))]
    assert work.attempts.select("tid", "start", "cpu").rows() == expected


def test_a_thread_only_ever_refused_has_no_guest_time() -> None:
    """Its refusals are kvm records: its run time is not taken as guest time."""
    cap = fixture_capture("refused-entries")
    for table in ("kvm_entry", "kvm_exit"):
        rows = cap.frame(table).filter(pl.col("common_pid") != 4001)
        cap.tables[table] = conform(table, rows.to_arrow())
    work = prepare_replay(cap)
    assert work.attempts.height == 3
    mine = work.pieces.filter(pl.col("tid") == 4001)
    assert mine.height and (mine["state"] == "host").all()
    assert not any("4001" in n and "guest time" in n for n in work.notes)


def test_set_pmu_fails_each_refused_entry_without_guest_time() -> None:
    results = what_if(fixture_capture("refused-entries"), [SET_PMU])
    refused = refusals(records(CAPTURE))
    fails = results.findings.filter(pl.col("kind") == "fail_entry").sort("vcpu", "start")
    assert fails.select("vcpu", "start", "end", "cpu").rows() == [
        (r.tid, r.ts, r.ts, r.cpu) for r in refused
    ]
    assert (fails["duration"] == 0).all()
    for cause, cpu in fails.select("cause", "cpu").rows():
        assert f"CPU {cpu} " in cause and "KVM_EXIT_FAIL_ENTRY" in cause
    assert results.findings.filter(pl.col("kind") == "unknown").is_empty()
    summary = {r["vcpu"]: r for r in results.summary.to_dicts()}
    for tid in summary:
        assert summary[tid]["fail_entries"] == sum(r.tid == tid for r in refused)
        assert summary[tid]["fail_entry_ns"] == 0 and summary[tid]["unknown_ns"] == 0
    assert results.ranking is not None and results.verdict is not None
    ranked = results.ranking.table.row(0, named=True)
    assert ranked["fail_entries"] == len(refused)
    assert f"in {len(refused)} entries that fail" in ranked["assessment"]
    assert results.verdict.status == "conclusive"


@pytest.mark.parametrize("scenario", ["default@cpu0", "fixed-counters-only+v8"])
def test_a_mode_that_lets_them_in_cannot_know_what_followed(scenario: str) -> None:
    recs = records(CAPTURE)
    refused = refusals(recs)
    results = what_if(fixture_capture("refused-entries"), [scenario])
    assert results.findings.filter(pl.col("kind") == "fail_entry").is_empty()
    unknown = results.findings.filter(pl.col("kind") == "unknown").sort("vcpu", "start")
    spans = [(r.tid, r.ts, next_attempt(recs, r), r.cpu) for r in refused]
    assert unknown.select("vcpu", "start", "end", "cpu").rows() == spans
    assert all("KVM_EXIT_FAIL_ENTRY" in c for c in unknown["cause"])
    row = results.summary.filter(pl.col("vcpu") == 4001).row(0, named=True)
    hidden = sum(end - start for _, start, end, _ in spans)
    assert row["unknown_ns"] == hidden
    # the time on CPUs grows by the part of those stretches the thread spent off CPUs
    first, last = recs[0].ts, recs[-1].ts
    seen = on_cpu(recs, 4001, first, last)
    off = hidden - sum(on_cpu(recs, 4001, s, e) for _, s, e, _ in spans)
    assert row["on_cpu_ns"] == seen + off
    assert results.verdict is not None and results.verdict.status == "inconclusive"
    assert results.ranking is not None
    assert "s unknown, not counted as safe" in results.ranking.table["assessment"][0]


def test_the_verdict_weighs_the_scenario_with_the_most_unknown_time() -> None:
    """Events lost on CPU 0 during vCPU 0's first guest window hide time under every mode;
    pinned to the Cortex-A72 PMU, the refusals on CPUs 2-3 would also run, which hides more.
    The verdict judges vCPU 0 by that scenario, though it sorts after the other."""
    cap = fixture_capture("refused-entries")
    entry = cap.frame("kvm_entry").filter(pl.col("common_pid") == 4001).row(0, named=True)
    lose_events(cap, cpu=entry["cpu"], seq=entry["seq"] + 1, ts=entry["ts"] + 2_000_000)
    both = ["set-pmu:armv8_cortex_a53", "set-pmu:armv8_cortex_a72"]
    results = what_if(cap, both)
    share = dict(
        results.summary.filter(pl.col("vcpu") == 4001).select("scenario", "unknown_share").rows()
    )
    assert 0 < share[both[0]] < share[both[1]]
    assert results.verdict is not None and results.verdict.status == "inconclusive"
    assert f"unknown under {both[1]}, {share[both[1]]:.1%}" in results.verdict.reasons[0]


def test_fixed_counters_only_recreates_its_event_at_a_refused_entry() -> None:
    """The first entry attempt after a load serves KVM_REQ_RELOAD_PMU (check_vcpu_requests()
    runs before the supported_cpus test), refused in the capture or not."""
    recs = records(CAPTURE)
    attempts = [
        r for r in recs if r.tid == 4001 and (r.event == "kvm_entry" or r in refusals(recs))
    ]
    pmu = {0: "a53", 1: "a53", 2: "a72", 3: "a72"}
    expected, lives_on, loaded = [], "a53", set()  # booted on CPU 0, the first load's CPU
    switch_ins = [r.ts for r in recs if r.event == "sched_switch" and "next_pid=4001 " in r.text]
    for r in attempts:
        residency = max(t for t in switch_ins if t <= r.ts)
        if residency in loaded:
            continue
        loaded.add(residency)
        if pmu[r.cpu] != lives_on:
            expected.append((r.ts, r.cpu))
            lives_on = pmu[r.cpu]
    results = what_if(fixture_capture("refused-entries"), ["fixed-counters-only+v8"])
    recreated = results.findings.filter(pl.col("kind") == "recreation").sort("start")
    assert recreated.select("start", "cpu").rows() == expected
    assert {r.ts for r in refusals(recs)} & {ts for ts, _ in expected}


def test_both_paths_agree_on_refused_entries() -> None:
    cap = fixture_capture("refused-entries")
    for profile in ("windows", "linux-perf"):
        assert_paths_agree(prepare_replay(cap, profile))


def test_errno_and_hyp_gone_tell_a_refusal_from_a_failed_run() -> None:
    """An arm64 ARM_EXCEPTION_IL failure returns -EINVAL (errno -22) with KVM_EXIT_FAIL_ENTRY;
    Perfetto's event records no errno. Only errno 0 or unrecorded is a refusal."""
    cap = fixture_capture("refused-entries")
    first = refusals(records(CAPTURE))[0].ts
    exits = cap.frame("kvm_userspace_exit")
    for errno, found in ((-22, 2), (None, 3)):
        changed = exits.with_columns(
            pl.when(pl.col("ts") == first)
            .then(pl.lit(errno, pl.Int32))
            .otherwise(pl.col("errno"))
            .alias("errno")
        )
        cap.tables["kvm_userspace_exit"] = conform("kvm_userspace_exit", changed.to_arrow())
        assert prepare_replay(cap).attempts.height == found, errno


def test_refusal_in_lost_time_is_left_out_with_a_note() -> None:
    cap = fixture_capture("refused-entries")
    refused = refusals(records(CAPTURE))
    first = refused[0]
    seq = cap.frame("kvm_userspace_exit").filter(pl.col("ts") == first.ts)["seq"][0]
    # events lost on CPU 2 from its record before the refusal up to 10 us after it
    lose_events(cap, cpu=first.cpu, seq=seq, ts=first.ts + 10_000)
    work = prepare_replay(cap)
    assert work.attempts["start"].to_list() == [r.ts for r in refused[1:]]
    assert any("1 of 3 refused entries" in n and "left out" in n for n in work.notes)
    results = what_if(cap, [SET_PMU], work=work)
    unknown = results.findings.filter(pl.col("kind") == "unknown")
    assert ((unknown["start"] <= first.ts) & (unknown["end"] >= first.ts)).any()


@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c.name for c in KERNEL_CASES])
def test_set_pmu_recording_replays_the_logged_failed_entries(
    case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``pmu-replay replay`` of a real SET_PMU recording under its own scenario reports one
    failed entry per KVM_EXIT_FAIL_ENTRY of the VMM's exit log, on the logged CPUs."""
    scenario = load_case(case).scenario
    argv = ["replay", str(case / "trace.txt"), "--topology", str(case / "topology.json")]
    assert main([*argv, "--scenario", scenario, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["summary"]
    log = pl.read_csv(case / "exits.csv").filter(pl.col("exit_reason") == 9)
    assert log.height > 0
    assert row["fail_entries"] == log.height == len(refusals(records(case / "trace.txt")))
    cap = open_capture(case / "trace.txt", topology=case / "topology.json")
    fails = what_if(cap, [scenario]).findings.filter(pl.col("kind") == "fail_entry")
    assert sorted(fails["cpu"].to_list()) == sorted(log["fail_cpu"].to_list())


@pytest.mark.slow
@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c.name for c in KERNEL_CASES])
@pytest.mark.parametrize("profile", ["windows", "linux-perf"])
def test_paths_agree_on_real_refused_entries(case: Path, profile: str) -> None:
    cap = open_capture(case / "trace.txt", topology=case / "topology.json")
    work = prepare_replay(cap, profile)
    assert work.attempts.height > 0
    assert_paths_agree(work)
