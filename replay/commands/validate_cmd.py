"""``pmu-replay validate``: the model's predictions against a guest's own log of its reads."""

from __future__ import annotations

import argparse
import json
from typing import Literal

import polars as pl
from rich.table import Table

from replay.commands import summary
from replay.commands.console import stdout
from replay.commands.session import add_path_option
from replay.validate import (
    CASE_FILE,
    DISAGREE_EXIT,
    FORMAT_HELP,
    Validation,
    load_case,
    validate,
)

HELP = summary("validate")
EPILOG = f"""\
The capture is replayed under the case's scenario. For each guest read of PMCCNTR_EL0 the model
predicts a zero delta since the vCPU's previous read, a counted delta, or no vPMU (UNDEF); every
guest window of the capture must be an entry the replay lets run, and the replay's failed entries
where the capture shows a refused one must be exactly the KVM_EXIT_FAIL_ENTRY exits of the exit
log, on the same CPUs. Exit status 0 when everything agrees, {DISAGREE_EXIT} when a
prediction disagrees or cannot be made (unknown time, a read time inside a guest window).

{FORMAT_HELP}
examples:
  pmu-replay validate fixtures/kernel/default-a53
  pmu-replay validate my-case/ --scenario set-pmu:armv8_cortex_a72 --json
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("case", metavar="CASE_DIR", help=f"directory with a {CASE_FILE}")
    p.add_argument("--scenario", metavar="SCENARIO", help="override the case's scenario")
    p.add_argument(
        "--reads",
        metavar="CSV",
        help="override the case's read log (a path from the current directory, not the case's)",
    )
    p.add_argument(
        "--exits",
        metavar="CSV",
        help="override the case's exit log (a path from the current directory, not the case's)",
    )
    add_path_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    case = load_case(args.case, scenario=args.scenario, reads=args.reads, exits=args.exits)
    result = validate(case, args.path)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print_validation(result)
    return 0 if result.agrees else DISAGREE_EXIT


def print_validation(result: Validation) -> None:
    """The agreement tables, the disagreements (first ten of each kind), the verdict."""
    for note in result.notes:
        stdout.print(f"[yellow]note:[/] {note}")
    tables: tuple[tuple[Literal["reads", "entries"], str], ...] = (
        ("reads", "guest reads of PMCCNTR_EL0"),
        ("entries", "guest entries"),
    )
    for table, what in tables:
        stdout.print(f"[bold]{result.case.name}[/]: {what} under {result.scenario}")
        grid = Table()
        for col in ("guest saw", "model predicted", "count", "outcome"):
            grid.add_column(col, justify="right" if col == "count" else "left")
        for r in result.matrix(table).iter_rows(named=True):
            style = "" if r["outcome"] == "agree" else "[bold red]"
            grid.add_row(r["observed"], r["predicted"], str(r["count"]), style + r["outcome"])
        stdout.print(grid)
    firsts = result.reads.filter(pl.col("outcome") == "first").height
    if firsts:
        stdout.print(f"{firsts} first read(s) of a vCPU: no previous read to compare with")
    ratio = result.cycles_ratio()
    if ratio is not None:
        stdout.print(
            f"observed / predicted cycles over the agreeing counted reads: {ratio:.3f} "
            "(information only: the replay's cycle clock comes from the topology's frequencies)"
        )
    bad = ~pl.col("outcome").is_in(["agree", "first"])
    for table, _ in tables:
        rows = (result.reads if table == "reads" else result.entries).filter(bad)
        if rows.height:
            stdout.print(f"[bold red]{rows.height} {table} do not agree[/] (first ten):")
            stdout.print(str(rows.head(10)))
    verdict = "[green]AGREE[/]" if result.agrees else "[bold red]DISAGREE[/]"
    checked = result.reads.filter(pl.col("outcome") != "first").height
    stdout.print(
        f"{verdict}: {checked} reads and {result.entries.height} entries checked "
        f"({result.case.capture})"
    )
