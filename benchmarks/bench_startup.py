"""Benchmark: what a user at a terminal waits for on a typical (small) real capture.

Most real captures are a few MB, so the wait is start-up, not parsing. Timed as whole
processes, interleaved with the peer, medians over ``--runs`` (see ``whole_process``):

* ``pmu-replay --help`` (target <= 0.15 s), beside a bare ``python -c pass`` (the floor);
* ``pmu-replay import F -o D`` on the 4 MB real trace.dat of a Juno board
  (../shared/traces/juno-sched-load/trace.dat) against ``trace-cmd report -i F > /dev/null``
  (target <= 0.35 s, within 4x of trace-cmd), beside a process that only imports numpy,
  pyarrow and pyarrow's Parquet writer (the floor of any import);
* ``pmu-replay import`` of one small real capture per other format, with its peer where one
  exists (``perf script`` for perf.data), for peak RSS (target <= 120 MiB).

    python benchmarks/bench_startup.py [--runs 5] [--baseline /work/main]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from whole_process import (
    ROOT,
    Contender,
    add_arguments,
    contenders_of,
    fresh,
    interleave,
    machine_line,
    ratio_line,
    table,
)

TRACES = ROOT.parent / "shared" / "traces"
TRACE_DAT = TRACES / "juno-sched-load" / "trace.dat"
#: one small real capture per other format, and its peer (None: no C tool reads it)
SMALL = (
    (TRACES / "juno-trace-txt" / "trace.txt", None),
    (TRACES / "trappy-surfaceflinger" / "trace_systrace.html", None),
    (TRACES / "quipper-perfdata" / "perf.data.armv7-3.4", ["perf", "script", "-i"]),
    (TRACES / "perfetto-galaxy-j5" / "trace_file.perfetto-trace", None),
)

#: the libraries a trace.dat import cannot do without: pyarrow.compute is no longer among them,
#: nor pyarrow.parquet and its filesystems (importers.parquet_files writes through _parquet)
LIBRARIES = [sys.executable, "-c", "import numpy, pyarrow, pyarrow._parquet"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    args = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        out = Path(tmp) / "out"
        floor = ("python -c pass", [sys.executable, "-c", "pass"])
        helps = contenders_of(args, ["--help"], floor)
        interleave(helps, args.runs)
        print("pmu-replay --help (target <= 0.15 s)")
        print("\n".join(table(helps)))

        def importing(path: Path) -> list[str]:
            return ["import", str(path), "-o", str(out)]

        have_tc = shutil.which("trace-cmd") is not None
        tc = ("trace-cmd report", ["trace-cmd", "report", "-i", str(TRACE_DAT)])
        dat = contenders_of(args, importing(TRACE_DAT), tc if have_tc else None, fresh(out))
        # the libraries every import needs, loaded and nothing else: the floor of the above
        dat.insert(-1 if have_tc else len(dat), Contender("numpy+pyarrow import", LIBRARIES))
        interleave(dat, args.runs)
        print(f"{TRACE_DAT.relative_to(TRACES)} (target <= 0.35 s, within 4x of trace-cmd)")
        print("\n".join(table(dat)))
        if have_tc:
            print(ratio_line(dat[0], dat[-1]))

        for path, peer in SMALL:
            if not path.exists():
                continue
            runnable = peer is not None and shutil.which(peer[0]) is not None
            group = contenders_of(
                args,
                importing(path),
                (" ".join(peer[:2]), [*peer, str(path)]) if runnable and peer else None,
                fresh(out),
            )
            interleave(group, args.runs)
            print(f"{path.relative_to(TRACES)} ({path.stat().st_size / 1e6:.2f} MB)")
            print("\n".join(table(group)))
            if len(group) > 1 and runnable:
                print(ratio_line(group[0], group[-1]))
    print(machine_line())


if __name__ == "__main__":
    main()
