"""``pmu-replay compare``: every KVM vPMU configuration on one capture, ranked."""

from __future__ import annotations

import argparse
import json

import polars as pl
from rich.table import Table

from replay.commands.console import stdout
from replay.commands.export_cmd import export
from replay.commands.session import load_work, print_report, replay_parser, run_scenarios
from replay.compare import rank, scenario_matrix
from replay.scenarios import parse_scenario

HELP = "compare default, set-pmu per host PMU, fixed-counters-only and no-pmu on one capture"
EPILOG = """\
The matrix: default with the first KVM_ARM_VCPU_INIT on a CPU of each cluster, set-pmu for each
host PMU, fixed-counters-only and no-pmu (add more with --scenario). Configurations are ranked
by risky zero-delta ticks, then stalled counter time, then guest time on CPUs the configuration
forbids (failed entries), then counters the guest cannot program.

example:
  pmu-replay compare trace.dat --topology plat_info.yml -o compare/
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = replay_parser(
        sub,
        "compare",
        HELP,
        EPILOG,
        "extra scenario to include",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    capture, work = load_work(args)
    scenarios = scenario_matrix(work.host)
    scenarios += [parse_scenario(s, min(work.host.possible_cpus)) for s in args.scenario]
    results = run_scenarios(work, capture, scenarios, args.path)
    ranking = rank(results.summary)
    if args.output:
        results.save(args.output)
    if args.perfetto:
        export(results, args.perfetto, to_stderr=args.json)
    if args.json:
        out = {
            "ranking": ranking.table.to_dicts(),
            "recommendation": ranking.recommendation,
            "notes": results.meta["notes"],
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    print_report(
        results, f"what-if comparison on {capture.metadata.source_path} ({work.profile.name} guest)"
    )
    print_ranking(ranking.table)
    stdout.print(f"[bold]recommendation:[/] {ranking.recommendation}")
    return 0


def print_ranking(table_df: pl.DataFrame) -> None:
    table = Table(title="ranking (best first)", title_justify="left")
    for col in (
        "#",
        "scenario",
        "stalled",
        "risky ticks",
        "fail-entries",
        "lost counters",
        "verdict",
    ):
        table.add_column(col)
    for r in table_df.iter_rows(named=True):
        table.add_row(
            str(r["rank"]),
            r["scenario"],
            f"{r['stalled_share']:.1%}",
            str(r["risky_ticks"]),
            str(r["fail_entries"]),
            r["lost_counters"] or "-",
            r["verdict"],
        )
    stdout.print(table)
