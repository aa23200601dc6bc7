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
from replay.commands.outputs import report_writer, save_all, trace_writer
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

EPILOG = """\
examples:
  pmu-replay demo                                  # results in ./pmu-replay-demo/
  pmu-replay demo -o /tmp/demo --prefer capacity   # rank by pinned-off capacity first
  pmu-replay view pmu-replay-demo/demo.perfetto-trace   # then look at the trace
  pmu-replay report pmu-replay-demo/ -o demo.html       # or write the report elsewhere
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help=HELP,
        # the docstring without its reST markup: --help is plain text
        description=HELP + ".\n\n" + __doc__.split("\n\n", 1)[1].replace("``", "`"),
        epilog=EPILOG,
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
    print_comparison(
        results,
        f"every KVM vPMU mode on the demo schedule ({work.profile.name} guest)",
        explain=args.explain,
        wide=args.wide,
    )
    out = Path(args.output)
    # the trace and the report are part of the results directory, written in its one step
    files = [
        (str(out / "demo.perfetto-trace"), trace_writer(False)),
        (str(out / "report.html"), report_writer(False)),
    ]
    save_all(results, args.output, files)
    stdout.print(f"results (Parquet + replay.json): {out}/")
    return 0
