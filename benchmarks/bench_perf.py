"""Benchmark: pmu-replay's perf.data importer vs ``perf script > /dev/null`` on the same file.

The input is recorded at run time (never committed) and cached under ``benchmarks/out/``:
``perf record -e sched:sched_switch -a`` while worker threads sleep and wake for
``--seconds`` (a busy scheduler: every switch is one tracepoint sample with RAW data). Pass
``--input FILE`` to time an existing perf.data instead, ``--fresh`` to record again.

Both tools read the same file as whole processes, interleaved (see ``whole_process``):
``pmu-replay import F -o D`` against ``perf script -i F > /dev/null``; medians of wall and CPU
time, rows/s (samples of the typed tables), the ratio and both peak RSS. Target (issue 17):
>= 3x faster than perf script on the 400 k-sample recording.

    python benchmarks/bench_perf.py [--seconds 30] [--runs 5] [--input FILE] [--fresh]
        [--baseline CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sched_load import nap_and_wake
from whole_process import (
    ROOT,
    add_arguments,
    contenders_of,
    fresh,
    interleave,
    machine_line,
    pmu_replay,
    ratio_line,
    run_measured,
    table,
)

OUT = ROOT / "benchmarks" / "out"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--input", type=Path)
    ap.add_argument("--fresh", action="store_true")
    add_arguments(ap)
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
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        out = Path(tmp) / "out"
        cmd, env = pmu_replay()
        _, _, _, summary = run_measured([*cmd, "import", str(path), "-o", str(out), "--json"],
                                        env=env)  # fmt: skip
        counts = json.loads(summary)["events"]
        samples = sum(n for name, n in counts.items() if name != "perf_switches")
        peer = ("perf script", ["perf", "script", "-i", str(path)])
        group = contenders_of(args, ["import", str(path), "-o", str(out)], peer, fresh(out))
        interleave(group, args.runs)
    print(f"input: {path} ({size / 1e6:.1f} MB, {samples:,} sample rows)")
    print(f"whole process, {args.runs} interleaved runs, medians [range]:")
    print("\n".join(table(group, samples)))
    print(ratio_line(group[0], group[-1]))
    print(machine_line())


if __name__ == "__main__":
    main()
