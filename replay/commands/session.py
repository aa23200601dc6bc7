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
from replay.compare import PREFER_CHOICES, Prefer
from replay.costs import DEFAULT_RECREATE_COST_US
from replay.engine import Path_
from replay.profiles import PROFILES
from replay.results import Results
from replay.scenarios import Scenario
from replay.verdict import DEFAULT_MAX_UNKNOWN
from replay.work import Work, describe_absent

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
    p.add_argument(
        "--recreate-cost-us",
        type=float,
        default=DEFAULT_RECREATE_COST_US,
        metavar="US",
        help="host CPU time one perf-event re-creation costs (default "
        f"{DEFAULT_RECREATE_COST_US:g} us: close + perf_event_open of a task-bound event, "
        "measured by benchmarks/bench_recreate.py; run it on your host)",
    )
    add_host_options(p)


def add_verdict_options(p: argparse.ArgumentParser) -> None:
    """--max-unknown / --prefer / --explain, for the commands that rank (compare, demo)."""
    p.add_argument(
        "--max-unknown",
        type=float,
        default=DEFAULT_MAX_UNKNOWN * 100,
        metavar="PCT",
        help="the verdict is inconclusive when any vCPU has more than PCT %% of its time on "
        "CPUs unknown (lost, truncated or contradictory records; default "
        f"{DEFAULT_MAX_UNKNOWN * 100:g}%%)",
    )
    p.add_argument(
        "--prefer",
        choices=PREFER_CHOICES,
        default="counters",
        help="after counters the guest programs and would lose: rank the guest's stalls before "
        "the host capacity pinning takes (counters, default) or the reverse (capacity)",
    )
    p.add_argument("--explain", action="store_true", help="print the ranking rule, key by key")


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
    recreate_cost_us: float = DEFAULT_RECREATE_COST_US,
    prefer: Prefer = "counters",
    max_unknown_pct: float = DEFAULT_MAX_UNKNOWN * 100,
) -> Results:
    """Replay the scenarios (objects or names) with a progress bar; rank them unless told not
    (the options are :func:`replay.api.what_if`'s, the unknown limit in percent)."""
    with count_progress("replaying scenarios", len(scenarios)) as advance:

        def step(scenario: Scenario) -> None:
            advance(f"replaying {scenario.name}")

        return what_if(
            capture,
            scenarios,
            path=path,
            work=work,
            on_scenario=step,
            rank=rank,
            recreate_cost_us=recreate_cost_us,
            prefer=prefer,
            max_unknown=max_unknown_pct / 100,
        )


def print_report(results: Results, title: str) -> None:
    """Per scenario and vCPU numbers, then the worst stall episodes."""
    for note in results.meta["notes"]:
        stdout.print(f"[yellow]note:[/] {note}")
    for vcpu in results.meta.get("vcpus_without_rows", []):
        stdout.print(f"[yellow]note:[/] {describe_absent(vcpu)}")
    table = Table(title=title, title_justify="left")
    for col in (
        "scenario",
        "vCPU",
        "guest s",
        "stalled s",
        "risky ticks",
        "fail-entries",
        "counted/true cycles",
        "cross-PMU loads",
        "re-created events",
        "unknown s (share)",
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
            str(r["cross_pmu_loads"]),
            str(r["event_recreations"]),
            f"{r['unknown_ns'] / 1e9:.3f} ({r['unknown_share']:.1%})",
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


def print_comparison(results: Results, title: str, *, explain: bool = False) -> None:
    """The report, then the ranked scenarios and their costs, the ranking rule (``explain``)
    and the verdict (ranked results)."""
    ranking, verdict = results.ranking, results.verdict
    assert ranking is not None and verdict is not None, "run_scenarios(..., rank=True) ranks"
    print_report(results, title)
    table = Table(title="ranking (best first)", title_justify="left")
    for col in (
        "#",
        "scenario",
        "kernel",
        "stalled",
        "risky ticks",
        "pinned off (capacity)",
        "re-creations (CPU ms)",
        "lost counters",
        "assessment",
    ):
        table.add_column(col)
    for r in ranking.table.iter_rows(named=True):
        pinned = r["pinned_off_cpus"]
        table.add_row(
            str(r["rank"]),
            r["scenario"],
            "proposed" if r["proposed"] else "mainline",
            f"{r['stalled_share']:.1%}",
            str(r["risky_ticks"]),
            f"CPUs {pinned} ({r['pinned_capacity_share']:.0%})" if pinned else "-",
            f"{r['event_recreations']} ({r['recreate_cpu_ns'] / 1e6:.3f})",
            r["lost_counters"] or "-",
            r["assessment"],
        )
    stdout.print(table)
    if explain:
        stdout.print("[bold]ranking rule[/] (each key breaks the ties of the ones before):")
        for i, key in enumerate(ranking.rule, 1):
            stdout.print(f"  {i}. {key}")
    stdout.print(f"[bold]verdict:[/] {verdict.status}")
    for reason in verdict.reasons:
        stdout.print(f"  - {reason}")
    stdout.print(f"[bold]recommendation:[/] {verdict.text}")
