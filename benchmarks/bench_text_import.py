"""Benchmark: `pmu-replay import` of a >= 1 GB ftrace text capture, vs an awk one-liner.

The input is built at run time (never committed) by repeating a real capture,
../shared/traces/juno-trace-txt/trace.txt, with each copy's timestamps shifted past the
previous one, so the result is one long, valid, time-ordered trace. It is cached under
benchmarks/out/. Both tools run on the same file in the same run:

* ours: ``pmu-replay import BIG -o OUT --json`` (text -> typed Arrow tables -> Parquet on disk),
  wall time and peak RSS of the process;
* peer: ``awk`` counting events per kind, the floor of any line-oriented tool.

Targets (issue 2): >= 1,000,000 events/s end to end, peak memory < 2x the text size.

Usage: python benchmarks/bench_text_import.py [--size-gb 1.0] [--source PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.importers.textcap import shift_text, span_seconds, split_header

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
DEFAULT_SOURCE = ROOT.parent / "shared" / "traces" / "juno-trace-txt" / "trace.txt"


def build(source: Path, size: int) -> Path:
    """Repeat ``source`` with shifted timestamps until the file is at least ``size`` bytes."""
    target = OUT / f"{source.stem}-x{size >> 20}MiB.txt"
    if target.exists() and target.stat().st_size >= size:
        return target
    OUT.mkdir(parents=True, exist_ok=True)
    header, events = split_header(source.read_text())
    span = span_seconds(events)
    written = 0
    tmp = target.with_suffix(".partial")
    with open(tmp, "w") as fh:
        fh.write(header)
        rep = 0
        while written < size:
            written += fh.write(shift_text(events, rep * span))
            rep += 1
    tmp.rename(target)
    return target


def run_measured(
    cmd: list[str], stdout: int | None = subprocess.PIPE
) -> tuple[float, float, int, bytes]:
    """Wall and CPU seconds, peak RSS in bytes and stdout of ``cmd`` (its rusage, via wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{cmd[0]} failed ({status}): {err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = ap.parse_args()
    big = build(args.source, int(args.size_gb * (1 << 30)))
    size = big.stat().st_size
    print(f"input: {big} ({size / 1e9:.2f} GB), built from {args.source}")

    dest = OUT / "imported"
    shutil.rmtree(dest, ignore_errors=True)
    exe = [sys.executable, "-m", "replay.cli", "import", str(big), "-o", str(dest), "--json"]
    wall, cpu, rss, out = run_measured(exe)
    summary = json.loads(out)
    events = sum(summary["events"].values())
    print(
        f"pmu-replay import: {events:,} events in {wall:.2f} s = {events / wall:,.0f} events/s "
        f"({cpu:.2f} CPU-s); peak RSS {rss / 1e9:.2f} GB = {rss / size:.2f}x the text size"
    )

    awk = shutil.which("mawk") or shutil.which("awk")
    if awk:
        prog = (
            "{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\\.[0-9]+:$/) { c[$(i+1)]++; break } }"
            " END { for (k in c) n += c[k]; print n }"
        )
        awk_wall, _, _, awk_out = run_measured([awk, prog, str(big)])
        awk_events = int(awk_out.decode().strip() or 0)
        print(
            f"{Path(awk).name} event count: {awk_events:,} events in {awk_wall:.2f} s = "
            f"{awk_events / awk_wall:,.0f} events/s"
        )
        print(f"ratio: pmu-replay import is {awk_wall / wall:.2f}x the speed of {Path(awk).name}")
    print(f"cpus: {os.cpu_count()}, target >= 1,000,000 events/s and peak RSS < 2x text size")


if __name__ == "__main__":
    main()
