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

from importers.errors import PmuReplayError
from replay.api import open_capture, prepare_replay
from replay.commands import summary
from replay.commands.console import stdout
from replay.commands.export_cmd import export
from replay.commands.report_cmd import write_html
from replay.commands.session import (
    add_verdict_options,
    add_wide_option,
    print_comparison,
    run_scenarios,
)
from replay.compare import scenario_matrix

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "demo"
HELP = summary("demo")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help=HELP,
        # the docstring without its reST markup: --help is plain text
        description=HELP + ".\n\n" + __doc__.split("\n\n", 1)[1].replace("``", "`"),
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
    add_verdict_options(p)
    add_wide_option(p)
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
    capture = open_capture(capture_dir, topology=DEMO / "two-cluster-what-if.json")
    work = prepare_replay(capture, args.profile)
    stdout.print(f"what-if host: {work.topology.describe()}")
    results = run_scenarios(
        work,
        capture,
        scenario_matrix(work.host),
        "vectorized",
        prefer=args.prefer,
        max_unknown_pct=args.max_unknown,
    )
    out = results.save(args.output)
    print_comparison(
        results,
        f"every KVM vPMU mode on the demo schedule ({work.profile.name} guest)",
        explain=args.explain,
        wide=args.wide,
    )
    stdout.print(f"results (Parquet + replay.json): {out}/")
    export(results, str(out / "demo.perfetto-trace"), to_stderr=False)
    write_html(results, str(out / "report.html"), to_stderr=False)
    return 0
