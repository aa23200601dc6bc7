"""``pmu-replay fleet``: many captures on Dask, one partitioned Parquet dataset, one summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from replay.commands import summary
from replay.commands.console import count_progress, stdout
from replay.commands.session import add_path_option
from replay.fleet import (
    MemberResult,
    Settings,
    fleet_summary,
    read_dataset,
    read_members,
    run_fleet,
)

HELP = summary("fleet")
EPILOG = """\
SOURCE is a directory of captures, a glob ('caps/*/trace.dat') or a manifest (.csv/.parquet)
with a 'path' column and optionally: host, topology (file), pmus ('a53=0-3;a72=4-7'),
vcpus ('4242=vm0:0;4243=vm0:1') and any metadata columns (region, host_model, ...) that are
carried into every result row.

Runs on a local Dask cluster sized to this machine, or joins an existing one with
--scheduler tcp://HOST:PORT: start its workers with DASK_CONFIG=<dir of replay.fleet.WORKER_CONFIG>
(one polars thread each, glibc malloc left dynamic; see the README). Captures that fail
are listed in DIR/failures.parquet and the run continues; rerunning with the same settings
skips captures already done.

examples:
  pmu-replay fleet manifest.csv -o fleet/
  pmu-replay fleet 'captures/*' -o fleet/ --scheduler tcp://10.0.0.5:8786 --profile linux-perf
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fleet",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SOURCE", help="directory, glob or manifest of captures")
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="fleet results directory")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="existing Dask scheduler to use")
    p.add_argument("--workers", type=int, metavar="N", help="local cluster size (default: CPUs)")
    p.add_argument("--profile", default="windows", help="guest profile (default windows)")
    p.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="SCENARIO",
        help="scenario (repeat; default: the compare matrix)",
    )
    add_path_option(p)
    p.add_argument("--json", action="store_true", help="print the fleet summary as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    members = read_members(args.source)
    settings = Settings(args.profile, tuple(args.scenario) or None, args.path)
    with count_progress("replaying captures", len(members)) as advance:

        def done(result: MemberResult) -> None:
            advance()

        fleet = run_fleet(
            members,
            settings,
            Path(args.output),
            scheduler=args.scheduler,
            workers=args.workers,
            on_done=done,
        )
    table = fleet_summary(read_dataset(fleet.output, "summary"))
    if args.json:
        out = {
            "summary": table.to_dicts(),
            "captures": len(members),
            "replayed": len(fleet.done),
            "skipped_already_done": len(fleet.skipped),
            "failures": fleet.failures.select("path", "error").to_dicts()
            if fleet.failures.height
            else [],
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    stdout.print(
        f"{len(members)} captures: {len(fleet.done)} replayed, {len(fleet.skipped)} already done, "
        f"{fleet.failures.height} failed (see {fleet.output}/failures.parquet)"
    )
    report = Table(title="fleet summary per scenario", title_justify="left")
    for col in (
        "scenario",
        "guest-hours",
        "stalled guest-hours",
        "risky ticks/guest-hour",
        "fail-entries",
        "hosts affected",
    ):
        report.add_column(col, justify="left" if col == "scenario" else "right")
    for r in table.iter_rows(named=True):
        report.add_row(
            r["scenario"],
            f"{r['guest_hours']:.4f}",
            f"{r['stalled_guest_hours']:.4f}",
            f"{r['risky_ticks_per_guest_hour']:.0f}",
            str(r["fail_entries"]),
            f"{r['hosts_affected']}/{r['hosts']}",
        )
    stdout.print(report)
    for row in fleet.failures.head(10).iter_rows(named=True):
        stdout.print(f"[red]failed:[/] {row['path']}: {row['error']}")
    return 0
