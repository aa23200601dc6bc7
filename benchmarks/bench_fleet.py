"""Benchmark: fleet throughput on Dask with 1 and 2 workers, and the engine's per-capture overhead.

The fleet is built at run time: copies of the embedded demo recording (fixtures/demo/capture,
recorded by `pmu-replay record` on a real host) repeated ``--scale`` times with every timestamp
shifted, so each member is a distinct capture of production-like length, plus the real Juno
capture from ../shared/traces. The same fleet runs:

* in a plain in-process loop (``replay_member`` one after the other: the peer);
* on a local Dask cluster with 1 worker, then 2 workers (POLARS_MAX_THREADS=1 each).

Reported: captures/s and events/s of each, the 2-vs-1 worker scaling ratio (target >= 1.7x on
this 2-core machine) and the per-capture overhead of the Dask run versus the plain loop. The
clusters are started and warmed (one member replayed on every worker, as in the loop) before
the clock starts: that one-off cost is not per capture.

Usage: python benchmarks/bench_fleet.py [--members 24] [--scale 20]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replay.fleet import Member, Settings, dask_client, replay_member, run_fleet
from tests.importers.textcap import shift_text, split_header

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
JUNO = ROOT.parent / "shared" / "traces" / "juno-trace-txt"


def build(root: Path, n: int, scale: int) -> list[Member]:
    topo = str(DEMO / "two-cluster-what-if.json")
    header, body = split_header((DEMO / "capture" / "trace.txt").read_text())
    members = []
    for k in range(n - 1):
        dst = root / f"demo-{k}"
        shutil.copytree(DEMO / "capture", dst, ignore=shutil.ignore_patterns("trace.txt"))
        # the recording repeated `scale` times, 10 s apart, then the whole member moved by k
        copies = [shift_text(body, 10 * (k * scale + j)) for j in range(scale)]
        (dst / "trace.txt").write_text(header + "".join(copies))
        members.append(Member(str(dst), f"host-{k % 8}", topology=topo))
    members.append(
        Member(
            str(JUNO / "trace.txt"),
            "juno",
            topology=str(JUNO / "plat_info.yml"),
            vcpus="1706=vm0:0;8=vm0:1",
        )
    )
    return members


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--members", type=int, default=24)
    ap.add_argument(
        "--scale",
        type=int,
        default=20,
        help="copies of the demo recording in each member (20: ~110k events, 85 s of trace)",
    )
    args = ap.parse_args()
    settings = Settings("windows", None)
    with tempfile.TemporaryDirectory() as tmp:
        members = build(Path(tmp), args.members, args.scale)
        replay_member(members[0], settings)
        start = time.perf_counter()
        events = sum(replay_member(m, settings).events for m in members)
        plain = time.perf_counter() - start
        print(f"fleet: {len(members)} captures, {events:,} events, every compare scenario")
        print(
            f"plain in-process loop: {plain:.2f} s = {len(members) / plain:.2f} captures/s, "
            f"{events / plain:,.0f} events/s"
        )
        timings = {}
        for workers in (1, 2):
            out = Path(tmp) / f"out-{workers}"
            with dask_client(None, None, workers) as client:
                # warm every worker (imports, numba's cached kernels) as the plain loop is warm
                client.run(replay_member, members[0], settings)
                start = time.perf_counter()
                fleet = run_fleet(members, settings, out, client=client)
                took = time.perf_counter() - start
            assert fleet.failures.is_empty(), fleet.failures
            timings[workers] = took
            print(
                f"dask, {workers} worker(s): {took:.2f} s = {len(members) / took:.2f} captures/s, "
                f"{events / took:,.0f} events/s"
            )
        print(f"scaling 2 vs 1 workers: {timings[1] / timings[2]:.2f}x (target >= 1.7x)")
        overhead = (timings[1] - plain) / len(members)
        print(
            f"per-capture cost of a 1-worker Dask run over the plain loop: {overhead * 1e3:.0f} ms "
            "(the worker runs polars on 1 thread, the loop on every core)"
        )


if __name__ == "__main__":
    main()
