"""``pmu-replay demo``: the whole job on the embedded capture, in one command.

The embedded capture (fixtures/demo/capture) was recorded with ``pmu-replay record`` on a real
Linux host: a stand-in VMM whose threads are named like QEMU vCPU threads ran a guest-like duty
cycle under competing load, and the real scheduler moved them between the host's two CPUs. The
host has no CPU PMU, so the demo states a what-if two-cluster topology for it
(fixtures/demo/two-cluster-what-if.json: CPU 0 a Cortex-A53, CPU 1 a Cortex-A72).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from importers.detect import load
from importers.errors import PmuReplayError
from importers.topology import load_topology
from importers.vcpus import discover_vcpus
from replay.commands.compare_cmd import print_ranking
from replay.commands.console import stdout
from replay.commands.session import print_report, run_scenarios
from replay.compare import rank, scenario_matrix
from replay.engine import prepare
from replay.profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "demo"
HELP = "replay the embedded capture under every KVM vPMU mode and recommend one"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help=HELP,
        description=HELP + ".\n\n" + __doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-o",
        "--output",
        default="pmu-replay-demo",
        metavar="DIR",
        help="where to write results (default ./pmu-replay-demo)",
    )
    p.add_argument("--profile", default="windows", help="guest profile (default windows)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    capture_dir = DEMO / "capture"
    if not capture_dir.is_dir():
        raise PmuReplayError(
            f"the demo capture is not at {capture_dir}; `pmu-replay demo` runs from a source "
            "checkout installed with `pip install -e .`"
        )
    stdout.print(
        f"[bold]pmu-replay demo[/]: {capture_dir}\n"
        "(recorded by `pmu-replay record` on a 2-CPU Linux host; see fixtures/README.md)"
    )
    capture = load(capture_dir)
    topology = load_topology(DEMO / "two-cluster-what-if.json")
    capture.tables["topology"] = topology.to_table()
    if "vcpus" not in capture.tables:
        capture.tables["vcpus"] = discover_vcpus(capture)
    stdout.print(f"what-if host: {topology.describe()}")
    work = prepare(capture, topology, load_profile(args.profile))
    results = run_scenarios(work, capture, scenario_matrix(work.host), "vectorized")
    ranking = rank(results.summary)
    results.meta["ranking"] = ranking.table.to_dicts()
    results.meta["recommendation"] = ranking.recommendation
    out = results.save(args.output)
    print_report(results, f"every KVM vPMU mode on the demo schedule ({work.profile.name} guest)")
    print_ranking(ranking.table)
    stdout.print(f"[bold]recommendation:[/] {ranking.recommendation}")
    stdout.print(f"results (Parquet + replay.json): {out}/")
    return 0
