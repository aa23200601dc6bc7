"""Benchmark: `pmu-replay import` of a >= 1 GB ftrace text capture, vs an awk one-liner.

The input is built at run time (never committed) by repeating a real capture,
../shared/traces/juno-trace-txt/trace.txt, with each copy's timestamps shifted past the
previous one, so the result is one long, valid, time-ordered trace. It is cached under
benchmarks/out/. Both tools run on the same file in the same run:

* ours: ``pmu-replay import BIG -o OUT`` (text -> typed Arrow tables -> Parquet on disk),
  wall and CPU time and peak RSS of the whole process;
* peer: ``awk`` counting events per kind, the floor of any line-oriented tool;

interleaved, medians (see ``whole_process``). Targets (issue 17): >= 1,500,000 events/s end to
end, peak RSS <= 1x the text size.

Usage: python benchmarks/bench_text_import.py [--size-gb 1.0] [--source PATH] [--runs 3]
    [--baseline CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from whole_process import (
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


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    add_arguments(ap, runs=3)
    args = ap.parse_args()
    big = build(args.source, int(args.size_gb * (1 << 30)))
    size = big.stat().st_size
    print(f"input: {big} ({size / 1e9:.2f} GB), built from {args.source}")
    dest = OUT / "imported"
    cmd, env = pmu_replay()
    shutil.rmtree(dest, ignore_errors=True)
    _, _, _, out = run_measured([*cmd, "import", str(big), "-o", str(dest), "--json"], env=env)
    events = sum(json.loads(out)["events"].values())
    awk = shutil.which("mawk") or shutil.which("awk")
    prog = (
        "{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\\.[0-9]+:$/) { c[$(i+1)]++; break } }"
        " END { for (k in c) n += c[k]; print n }"
    )
    peer = (f"{Path(awk).name} event count", [awk, prog, str(big)]) if awk else None
    group = contenders_of(args, ["import", str(big), "-o", str(dest)], peer, fresh(dest))
    interleave(group, args.runs)
    print(f"{events:,} events; whole process, {args.runs} interleaved runs, medians [range]:")
    print("\n".join(table(group, events)))
    for c in group:
        rss = statistics.median(r.rss for r in c.runs)
        print(f"  {c.name}: peak RSS {rss / size:.2f}x the text size")
    if peer:
        print(ratio_line(group[0], group[-1]))
    print("targets (issue 17): >= 1,500,000 events/s, peak RSS <= 1x the text size")
    print(machine_line())


if __name__ == "__main__":
    main()
