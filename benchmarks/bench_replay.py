"""Benchmark: replay of every compare scenario on a >= 10 million sched-event history.

The history is built at run time from a real capture, ../shared/traces/juno-trace-txt. Every
non-idle thread stands in for a vCPU (VMs of four), so most switches move a vCPU; the
topology is the capture's own plat_info.yml (Juno: A53 x4 + A57 x2).

Whole process first (what a user runs): the capture's text is repeated with shifted
timestamps (as bench_text_import builds it, cached under benchmarks/out/) until it holds
>= ``--events`` sched events; ``pmu-replay import BIG -o D`` and ``pmu-replay compare D
--topology plat_info.yml --vcpu ...`` (every scenario of the matrix, from the imported
tables) are timed interleaved, medians over ``--runs`` (see ``whole_process``). Target
(issue 17): compare within 2x of the import.

Then in-process (``--whole-process-only`` skips it): its sched_switch and sched_wakeup tables
repeated with shifted timestamps (and thread ids kept, so every copy continues the same
threads); sched events/s per scenario for the vectorized path (prepare + one scenario), the
same for the reference path on a 100k-event prefix (the peer: the model stepped event by
event), their ratio, and peak RSS.

Usage: python benchmarks/bench_replay.py [--events 10000000] [--runs 3] [--whole-process-only]
    [--baseline CHECKOUT]
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_text_import import build as build_text
from whole_process import (
    Contender,
    add_arguments,
    fresh,
    interleave,
    machine_line,
    median_wall,
    pmu_replay,
    run_measured,
    table,
)

from importers.capture import Capture
from importers.detect import load
from importers.host.resolve import load_topology
from importers.host.vcpus import discover_vcpus, parse_vcpu_specs
from replay.compare import scenario_matrix
from replay.engine import prepare, replay
from replay.profiles import PROFILES

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "traces" / "juno-trace-txt"


def build(events: int) -> Capture:
    """The real capture's scheduling tables repeated to >= ``events`` sched events."""
    cap = load(SOURCE / "trace.txt")
    switch = cap.frame("sched_switch")
    wakeup = cap.frame("sched_wakeup")
    per_copy = switch.height + wakeup.height
    copies = -(-events // per_copy)
    t0, t1 = cap.metadata.first_ts or 0, cap.metadata.last_ts or 0
    span = t1 - t0 + 1_000
    lines = switch.height + wakeup.height + 100

    def tile(frame: pl.DataFrame) -> pl.DataFrame:
        k = pl.DataFrame({"copy": pl.int_range(0, copies, dtype=pl.Int64, eager=True)})
        return (
            frame.join(k, how="cross")
            .with_columns(
                (pl.col("ts") + pl.col("copy") * span).alias("ts"),
                (pl.col("seq") + pl.col("copy") * lines).alias("seq"),
            )
            .drop("copy")
            .sort("ts", "seq")
        )

    tables = dict(cap.tables)
    tables["sched_switch"] = tile(switch).to_arrow()
    tables["sched_wakeup"] = tile(wakeup).to_arrow()
    big = Capture(metadata=replace(cap.metadata, last_ts=t0 + copies * span), tables=tables)
    threads = sorted(set(switch["next_pid"].to_list()) - {0})
    specs = [f"{tid}=vm{i // 4}:{i % 4}" for i, tid in enumerate(threads)]
    big.tables["vcpus"] = discover_vcpus(big, parse_vcpu_specs(specs))
    return big


def prefix(cap: Capture, n: int) -> Capture:
    """The first ``n`` sched_switch events of ``cap`` (for the reference path)."""
    switch = pl.from_arrow(cap.tables["sched_switch"])
    assert isinstance(switch, pl.DataFrame)
    head = switch.head(n)
    tables: dict[str, pa.Table] = {**cap.tables, "sched_switch": head.to_arrow()}
    tables.pop("sched_wakeup", None)
    return Capture(
        metadata=replace(cap.metadata, last_ts=int(head["ts"].max() or 0)), tables=tables
    )


def whole_process(args: argparse.Namespace) -> None:
    """``pmu-replay import`` of the repeated text and ``pmu-replay compare`` of its tables."""
    text = SOURCE / "trace.txt"
    lines = text.read_text().splitlines()
    per_copy = sum(" sched_switch: " in x or " sched_wakeup: " in x for x in lines)
    big = build_text(text, math.ceil(args.events / per_copy) * text.stat().st_size)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        imported, again = Path(tmp) / "imported", Path(tmp) / "again"
        cmd, env = pmu_replay()
        run_measured([*cmd, "import", str(big), "-o", str(imported)], env=env)
        tables = Capture.load(imported).tables
        sched = tables["sched_switch"].num_rows + tables["sched_wakeup"].num_rows
        threads = sorted(set(tables["sched_switch"].column("next_pid").to_pylist()) - {0})
        vcpus = [
            a for i, tid in enumerate(threads) for a in ("--vcpu", f"{tid}=vm{i // 4}:{i % 4}")
        ]
        topology = str(SOURCE / "plat_info.yml")
        compare = ["compare", str(imported), "--topology", topology, *vcpus]
        group = []
        for label, checkout in (("", None), (" baseline", args.baseline)):
            if label and checkout is None:
                continue
            cmd, env = pmu_replay(checkout) if checkout else pmu_replay()
            name = checkout.name if checkout else "pmu-replay"
            group += [
                Contender(
                    f"{name} import{label}",
                    [*cmd, "import", str(big), "-o", str(again)],
                    env,
                    fresh(again),
                ),
                Contender(f"{name} compare{label}", [*cmd, *compare], env),
            ]
        interleave(group, args.runs)
    print(
        f"input: {big.name} ({big.stat().st_size / 1e9:.2f} GB), {sched:,} sched events, "
        f"{len(threads)} vCPU threads; whole process, {args.runs} interleaved runs, medians:"
    )
    print("\n".join(table(group, sched)))
    for k in range(0, len(group), 2):
        imp, cmp_ = group[k], group[k + 1]
        ratio = median_wall(cmp_) / median_wall(imp)
        print(f"  {cmp_.name} / {imp.name}: {ratio:.2f}x the import's wall time (target <= 2x)")
    print(machine_line())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--whole-process-only", action="store_true", help="skip the in-process part")
    add_arguments(ap, runs=3)
    args = ap.parse_args()
    whole_process(args)
    if args.whole_process_only:
        return
    topo = load_topology(SOURCE / "plat_info.yml")
    start = time.perf_counter()
    cap = build(args.events)
    n = cap.tables["sched_switch"].num_rows + cap.tables["sched_wakeup"].num_rows
    threads = cap.tables["vcpus"].num_rows
    built = time.perf_counter() - start
    print(f"history: {n:,} sched events ({threads} vCPU threads), built in {built:.1f} s")

    start = time.perf_counter()
    work = prepare(cap, topo, PROFILES["windows"])
    prep = time.perf_counter() - start
    pieces = work.pieces.height
    print(f"prepare (timeline, ticks, cycles): {prep:.2f} s, {pieces:,} pieces")
    scenarios = scenario_matrix(work.host)
    for scenario in scenarios:
        start = time.perf_counter()
        obs = replay(work, scenario).observations
        took = time.perf_counter() - start
        rate = n / (took + prep / len(scenarios))
        print(
            f"  {scenario.name:28s} {took:6.2f} s  {obs.height:,} observations  "
            f"{rate:,.0f} sched events/s"
        )

    small = prefix(cap, 100_000)
    small_n = small.tables["sched_switch"].num_rows
    ref_work = prepare(small, topo, PROFILES["windows"])
    start = time.perf_counter()
    replay(ref_work, scenarios[0], "reference")
    ref = time.perf_counter() - start
    start = time.perf_counter()
    replay(ref_work, scenarios[0], "vectorized")
    vec = time.perf_counter() - start
    print(
        f"peer on a {small_n:,}-event prefix ({scenarios[0].name}): "
        f"reference {small_n / ref:,.0f} events/s, vectorized {small_n / vec:,.0f} events/s, "
        f"ratio {ref / vec:.1f}x"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"peak RSS {rss / 1e9:.2f} GB; target >= 5,000,000 sched events/s per scenario")


if __name__ == "__main__":
    main()
