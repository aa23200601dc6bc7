"""`pmu-replay record` for real on this host (root + tracefs), its snapshots, and `demo`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from importers.detect import load
from importers.host.record_dir import read_record_dir
from importers.host.resolve import load_topology
from importers.host.vcpus import discover_vcpus
from replay.cli import main
from replay.record import (
    RecordError,
    find_tracefs,
    snapshot_threads,
    snapshot_topology,
)
from tests.conftest import FIXTURES

STANDIN = str(FIXTURES / "demo" / "standin_vmm.py")


def _tracefs_or_skip() -> Path:
    if os.geteuid() != 0:
        pytest.skip("recording needs root")
    try:
        root, mounted = find_tracefs()
    except RecordError as exc:
        pytest.skip(f"no tracefs here: {exc}")
    if mounted:
        subprocess.run(["umount", str(root)], capture_output=True)
    return root


def _global_state(root: Path) -> dict[str, str]:
    files = ["tracing_on", "buffer_size_kb", "events/sched/sched_switch/enable", "current_tracer"]
    return {f: (root / f).read_text() for f in files}


def _has_instance(root: Path, pid: int) -> bool:
    """Whether the recording of process ``pid`` has its instance: only its own, as other
    recordings (other test runs on this host) may have theirs meanwhile."""
    return (root / "instances" / f"pmu-replay-{pid}").exists()


def _record_cli(out: Path, duration: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay.cli",
            "record",
            "-o",
            str(out),
            "--text",
            "--duration",
            duration,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_record_text_capture_of_the_standin_vmm(tmp_path: Path) -> None:
    root = _tracefs_or_skip()
    before = _global_state(root)
    out = tmp_path / "cap"
    code = main(
        ["record", "-o", str(out), "--text", "--", sys.executable, STANDIN, "--seconds", "1"]
    )
    assert code == 0
    assert _global_state(root) == before and not _has_instance(root, os.getpid())
    meta = json.loads((out / "capture.json").read_text())
    assert meta["format"] == "pmu-replay-record/1" and meta["trace"] == "trace.txt"
    assert "sched/sched_switch" in meta["events"] and meta["command_status"] == 0
    cap = load(out)
    assert cap.table("sched_switch").num_rows > 0
    vcpus = pl.from_arrow(discover_vcpus(cap))
    assert sorted(vcpus["comm"].cast(pl.Utf8).to_list()) == ["CPU 0/KVM", "CPU 1/KVM"]
    assert vcpus["vm"].n_unique() == 1 and vcpus["vm_pid"].null_count() == 0
    snapshot = json.loads((out / "topology.json").read_text())
    assert (
        snapshot["format"] == "pmu-replay-topology/1"
        and "software" in snapshot["event_source_devices"]
    )


@pytest.mark.slow
def test_record_trace_dat_with_trace_cmd(tmp_path: Path) -> None:
    root = _tracefs_or_skip()
    import shutil

    if shutil.which("trace-cmd") is None:
        pytest.skip("trace-cmd not installed (.ci/run installs it)")
    out = tmp_path / "cap"
    assert main(["record", "-o", str(out), "--duration", "0.5"]) == 0
    assert not _has_instance(root, os.getpid())
    assert (out / "trace.dat").read_bytes()[:10] == b"\x17\x08Dtracing"
    report = subprocess.run(
        ["trace-cmd", "report", str(out / "trace.dat")], capture_output=True, text=True
    )
    switches = report.stdout.count(" sched_switch: ")
    assert switches > 0
    pytest.importorskip("importers.tracedat.read")
    assert load(out).table("sched_switch").num_rows == switches


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_recording_cleans_up(tmp_path: Path, sig: signal.Signals) -> None:
    root = _tracefs_or_skip()
    before = _global_state(root)
    proc = _record_cli(tmp_path / "c", "60")
    deadline = time.monotonic() + 30
    while not _has_instance(root, proc.pid):
        assert time.monotonic() < deadline and proc.poll() is None, "recording did not start"
        time.sleep(0.1)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 130
    assert not _has_instance(root, proc.pid) and _global_state(root) == before


@pytest.mark.slow
def test_ctrl_c_right_after_the_instance_appears_leaves_none(tmp_path: Path) -> None:
    # the instance was once created outside the cleanup scope: a SIGINT landing just after
    # its mkdir left it behind (7 of 20 tries); now one at any moment removes it
    root = _tracefs_or_skip()
    rng = random.Random("record-race")
    for attempt in range(6):
        proc = _record_cli(tmp_path / f"c{attempt}", "60")
        instance = root / "instances" / f"pmu-replay-{proc.pid}"
        deadline = time.monotonic() + 30
        while not instance.exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "recording did not start"
            time.sleep(0.0005)
        time.sleep(rng.choice([0.0, 0.0005, 0.002, 0.01, 0.05]))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in err and "interrupted" in err, err
        assert not instance.exists()


def test_recording_needs_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["record", "-o", str(tmp_path / "x"), "--duration", "1"]) == 7
    assert "needs root" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["record", "-o", str(tmp_path / "x")]) == 7
    assert "--duration" in capsys.readouterr().err


def test_snapshots_read_sysfs_proc_and_kvm_debugfs(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    for name, typ, cpus in (("armv8_cortex_a53", "8", "0-1"), ("armv8_cortex_a72", "9", "2-3")):
        dev = sysfs / "bus/event_source/devices" / name
        dev.mkdir(parents=True)
        (dev / "type").write_text(typ + "\n")
        (dev / "cpus").write_text(cpus + "\n")
    (sysfs / "bus/event_source/devices/software").mkdir()
    (sysfs / "bus/event_source/devices/software/type").write_text("1\n")
    policy = sysfs / "devices/system/cpu/cpufreq/policy2"
    policy.mkdir(parents=True)
    (policy / "related_cpus").write_text("2 3\n")
    (policy / "cpuinfo_max_freq").write_text("2000000\n")
    (sysfs / "devices/system/cpu/possible").write_text("0-3\n")
    snap = snapshot_topology(sysfs)
    (tmp_path / "topology.json").write_text(json.dumps(snap))
    topo = load_topology(tmp_path / "topology.json")
    assert topo.describe() == "armv8_cortex_a53=0-1 armv8_cortex_a72=2-3"
    assert topo.max_freq_khz(3) == 2_000_000

    proc = tmp_path / "proc"
    for tid, comm in ((500, "qemu-system-aar"), (501, "CPU 0/KVM"), (502, "CPU 1/KVM")):
        task = proc / "500" / "task" / str(tid)
        task.mkdir(parents=True)
        (task / "comm").write_text(comm + "\n")
    debugfs = tmp_path / "kvm"
    for idx, tid in ((0, 501), (1, 502)):
        v = debugfs / "500-11" / f"vcpu{idx}"
        v.mkdir(parents=True)
        (v / "pid").write_text(f"{tid}\n")
    threads = snapshot_threads(proc, debugfs)
    assert [(t["tid"], t["tgid"], t.get("kvm_vcpu")) for t in threads] == [
        (500, 500, None),
        (501, 500, 0),
        (502, 500, 1),
    ]

    # a record directory with those snapshots: vCPUs come from KVM's debugfs
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "trace.txt").write_text(
        "  CPU 0/KVM-501 [002] 1.000000: kvm_entry: PC: 0x10\n  CPU 1/KVM-502 [003] 1.000001: kvm_entry: PC: 0x10\n"
    )
    (rec / "threads.json").write_text(json.dumps(threads))
    (rec / "topology.json").write_text(json.dumps(snap))
    (rec / "capture.json").write_text(
        json.dumps({"format": "pmu-replay-record/1", "trace": "trace.txt"})
    )
    cap = read_record_dir(rec, fmt="record-dir")
    vcpus = pl.from_arrow(cap.tables["vcpus"])
    assert vcpus.select("tid", "vm", "vcpu_index", "method").rows() == [
        (501, "vm:500", 0, "kvm-debugfs"),
        (502, "vm:500", 1, "kvm-debugfs"),
    ]
    assert cap.table("topology").num_rows == 4
    assert cap.metadata.source_path == str(rec)


def test_tracefs_is_the_first_mount_with_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing, debug = tmp_path / "tracing", tmp_path / "debug" / "tracing"
    monkeypatch.setattr("replay.record.TRACEFS_MOUNTS", (tracing, debug))
    (debug / "instances").mkdir(parents=True)
    assert find_tracefs() == (debug, False)
    (tracing / "instances").mkdir(parents=True)
    assert find_tracefs() == (tracing, False)


def test_demo_runs_on_the_embedded_capture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "-o", str(tmp_path / "demo")]) == 0
    text = capsys.readouterr().out
    assert "recommendation: deploy fixed-counters-only" in text
    assert "default@cpu0" in text and "set-pmu:armv8_cortex_a72" in text
    assert (tmp_path / "demo" / "summary.parquet").exists()
    trace = tmp_path / "demo" / "demo.perfetto-trace"
    assert trace.stat().st_size > 10_000 and f"pmu-replay view {trace}" in text
