"""Benchmark: pmu-replay's perf.data importer vs ``perf script > /dev/null`` on the same file.

The input is recorded at run time (never committed) and cached under ``benchmarks/out/``:
``perf record -e sched:sched_switch -a`` while worker threads sleep and wake for
``--seconds`` (a busy scheduler: every switch is one tracepoint sample with RAW data). Pass
``--input FILE`` to time an existing perf.data instead, ``--fresh`` to record again.

Both tools read the same file in the same run; each is timed ``--runs`` times and the best
run counts (the machine is shared; the load average is printed). The importer runs in-process
on a warm numba cache (the first import, which may compile, is reported separately). Rates
are sample records per second; the ratio is ours over perf script's.

    python benchmarks/bench_perf.py [--seconds 30] [--runs 3] [--input FILE] [--fresh]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sched_load import nap_and_wake

from importers.perf.data import read_perf_data

OUT = Path(__file__).resolve().parent / "out"


def record(out: Path, seconds: float, threads: int) -> None:
    """``perf record -e sched:sched_switch -a`` around a busy workload of ``seconds``."""
    perf = subprocess.Popen(
        ["perf", "record", "-e", "sched:sched_switch", "-a", "-m", "4096", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # let perf open its events
    nap_and_wake(seconds, threads, nap=0.0001)
    perf.send_signal(2)
    _, err = perf.communicate(timeout=600)
    if perf.returncode not in (0, -2) or not out.exists():
        raise SystemExit(f"perf record failed: {err.decode(errors='replace')[-400:]}")


def best(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--input", type=Path)
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: apt-get install linux-perf)")
    path = args.input
    if path is None:
        OUT.mkdir(exist_ok=True)
        path = OUT / f"sched_switch_{int(args.seconds)}s.data"
        if args.fresh or not path.exists():
            print(f"recording {args.seconds:.0f} s of sched_switch into {path} ...", flush=True)
            record(path, args.seconds, args.threads)
    size = path.stat().st_size

    t0 = time.perf_counter()
    cap = read_perf_data(path)
    first = time.perf_counter() - t0
    samples = cap.metadata.extra["records"].get("SAMPLE", 0)
    rows = sum(t.num_rows for n, t in cap.tables.items() if n not in ("tasks", "topology"))

    def ours() -> None:
        read_perf_data(path)

    def perf_script() -> None:
        with open(os.devnull, "wb") as devnull:
            subprocess.run(
                ["perf", "script", "-i", str(path)], stdout=devnull, stderr=devnull, check=True
            )

    load_before = os.getloadavg()
    t_ours = best(ours, args.runs)
    t_perf = best(perf_script, args.runs)
    load_after = os.getloadavg()
    ours_rate, perf_rate = samples / t_ours, samples / t_perf
    print(f"input: {path} ({size / 1e6:.1f} MB, {samples} samples, {rows} table rows)")
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} (2 cores)")
    print(f"pmu-replay import: first {first:.2f} s, best of {args.runs} {t_ours:.3f} s "
          f"= {ours_rate:,.0f} samples/s")  # fmt: skip
    print(f"perf script > /dev/null: best of {args.runs} {t_perf:.3f} s "
          f"= {perf_rate:,.0f} samples/s")  # fmt: skip
    print(f"ratio (ours / perf script): {ours_rate / perf_rate:.1f}x")


if __name__ == "__main__":
    main()
