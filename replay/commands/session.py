"""What `replay`, `compare` and `demo` share: options, loading, running scenarios, reports."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import polars as pl
from rich.table import Table

from importers.capture import Capture
from replay.api import prepare_replay, what_if
from replay.commands.console import count_progress, stdout
from replay.commands.import_cmd import add_host_options, open_from_args
from replay.engine import Path_
from replay.host_report import host_lines
from replay.profiles import PROFILES
from replay.results import Results
from replay.scenarios import Scenario
from replay.work import Work

PROFILE_HELP = (
    "what the guest does with its vPMU: "
    + "; ".join(f"{name}: {p.description}" for name, p in PROFILES.items())
    + "; or a JSON profile file (default: windows)"
)


def replay_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    epilog: str,
    scenario_help: str,
) -> argparse.ArgumentParser:
    """The parser of a command that replays a capture (replay, compare)."""
    from replay.commands.export_cmd import add_perfetto_option

    p = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_replay_options(p)
    p.add_argument(
        "--scenario", action="append", default=[], metavar="SCENARIO", help=scenario_help
    )
    add_perfetto_option(p)
    return p


def add_replay_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "capture", metavar="CAPTURE", help="capture file or `pmu-replay import` directory"
    )
    p.add_argument(
        "-o", "--output", metavar="DIR", help="write Parquet tables and replay.json to DIR"
    )
    p.add_argument("--profile", default="windows", metavar="PROFILE", help=PROFILE_HELP)
    p.add_argument(
        "--path",
        choices=["vectorized", "reference"],
        default="vectorized",
        help="engine path: vectorized (fast) or reference (steps the model event by event)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--strict", action="store_true", help="fail on undecodable input or lost events")
    add_host_options(p)


def load_work(args: argparse.Namespace) -> tuple[Capture, Work]:
    """Import (or reload) the capture, settle host and vCPUs, and prepare the replay."""
    capture = open_from_args(args)
    return capture, prepare_replay(capture, args.profile)


def run_scenarios(
    work: Work,
    capture: Capture,
    scenarios: Sequence[str | Scenario],
    path: Path_,
    *,
    rank: bool = True,
) -> Results:
    """Replay the scenarios (objects or names) with a progress bar; rank them unless told not."""
    with count_progress("replaying scenarios", len(scenarios)) as advance:

        def step(scenario: Scenario) -> None:
            advance(f"replaying {scenario.name}")

        return what_if(capture, scenarios, path=path, work=work, on_scenario=step, rank=rank)


def print_report(results: Results, title: str) -> None:
    """The host assumed, per scenario and vCPU numbers, then the worst stall episodes."""
    if "host" in results.meta:  # results saved before the host block existed have none
        for line in host_lines(results.meta["host"]):
            stdout.print(line, markup=False)
    for note in results.meta["notes"]:
        stdout.print(f"[yellow]note:[/] {note}")
    table = Table(title=title, title_justify="left")
    for col in (
        "scenario",
        "vCPU",
        "guest s",
        "stalled s",
        "risky ticks",
        "fail-entries",
        "counted/true cycles",
        "unknown s",
        "lost counters",
    ):
        table.add_column(
            col, justify="left" if col in ("scenario", "vCPU", "lost counters") else "right"
        )
    for r in results.summary.iter_rows(named=True):
        cyc = f"{r['counted_cycles'] / r['true_cycles']:.1%}" if r["true_cycles"] else "-"
        risky = (
            "-" if r["ticks_with_guest"] is None else f"{r['risky_ticks']}/{r['ticks_with_guest']}"
        )
        table.add_row(
            r["scenario"],
            f"{r['vm']}/{r['vcpu_index'] if r['vcpu_index'] is not None else '?'} ({r['vcpu']})",
            f"{r['guest_ns'] / 1e9:.3f}",
            f"{r['stalled_ns'] / 1e9:.3f}",
            risky,
            str(r["fail_entries"]),
            cyc,
            f"{r['unknown_ns'] / 1e9:.3f}",
            r["lost_counters"] or "-",
        )
    stdout.print(table)
    worst = (
        results.findings.filter(pl.col("kind") == "stall").sort("duration", descending=True).head(5)
    )
    if worst.height:
        episodes = Table(title="longest stall episodes", title_justify="left")
        for col in ("scenario", "vCPU", "start s", "duration ms", "CPU", "cause"):
            episodes.add_column(col)
        t0 = results.meta["start"]
        for e in worst.iter_rows(named=True):
            episodes.add_row(
                e["scenario"],
                f"{e['vm']}/{e['vcpu_index']}",
                f"{(e['start'] - t0) / 1e9:.6f}",
                f"{e['duration'] / 1e6:.3f}",
                str(e["cpu"]),
                e["cause"],
            )
        stdout.print(episodes)


def print_comparison(results: Results, title: str) -> None:
    """The report, then the ranked scenarios and the recommendation (ranked results)."""
    assert results.ranking is not None, "run_scenarios(..., rank=True) ranks the results"
    print_report(results, title)
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
    for r in results.ranking.table.iter_rows(named=True):
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
    stdout.print(f"[bold]recommendation:[/] {results.ranking.recommendation}")
