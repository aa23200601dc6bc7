"""What `replay`, `compare` and `demo` share: options, loading, running scenarios, reports."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import polars as pl
from rich.measure import Measurement
from rich.table import Table

from importers.capture import Capture
from replay.api import prepare_replay, what_if
from replay.commands.console import count_progress, stdout
from replay.commands.import_cmd import add_host_options, open_from_args
from replay.commands.short_names import ScenarioNames, print_legend
from replay.compare import PREFER_CHOICES, Prefer
from replay.costs import DEFAULT_RECREATE_COST_US
from replay.engine import Path_
from replay.host_report import host_lines
from replay.profiles import PROFILES
from replay.results import Results
from replay.scenarios import Scenario
from replay.verdict import DEFAULT_MAX_UNKNOWN
from replay.work import Work, describe_absent

PROFILE_HELP = (
    "what the guest does with its vPMU: "
    + "; ".join(f"{name}: {p.description}" for name, p in PROFILES.items())
    + "; or a JSON profile file (see 'guest profile file' in `pmu-replay replay --help`) "
    "(default: windows)"
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
    from replay.commands.report_cmd import add_html_option

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
    add_html_option(p)
    return p


def add_path_option(p: argparse.ArgumentParser) -> None:
    """``--path``: which engine path replays the capture (:mod:`replay.paths`)."""
    p.add_argument(
        "--path",
        choices=["vectorized", "reference"],
        default="vectorized",
        help="engine path: vectorized (fast: probes the vPMU model once per CPU, then applies "
        "the schedule with polars) or reference (steps the model through every event: slow, "
        "the oracle the vectorized path is held equal to)",
    )


def add_replay_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "capture", metavar="CAPTURE", help="capture file or `pmu-replay import` directory"
    )
    p.add_argument(
        "-o", "--output", metavar="DIR", help="write Parquet tables and replay.json to DIR"
    )
    p.add_argument("--profile", default="windows", metavar="PROFILE", help=PROFILE_HELP)
    add_path_option(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_wide_option(p)
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


def add_wide_option(p: argparse.ArgumentParser) -> None:
    """``--wide``: whole scenario names in the tables, whatever the terminal's width."""
    p.add_argument(
        "--wide",
        action="store_true",
        help="print whole scenario names even where they do not fit the terminal (by default "
        "narrow terminals get short names and a legend)",
    )


def load_work(args: argparse.Namespace) -> tuple[Capture, Work]:
    """Import (or reload) the capture, settle host and vCPUs, and prepare the replay.

    The capture comes back without its tables: the work holds what the replays need of them,
    and what follows reads the capture's metadata alone. Kept to the end, the tables of 9.8 M
    sched events held 0.5 GB through the scenarios' peak (benchmarks/README.md).
    """
    capture = open_from_args(args)
    work = prepare_replay(capture, args.profile)
    return Capture(capture.metadata), work


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
    keep_observations: bool = True,
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
            keep_observations=keep_observations,
        )


def writes_files(args: argparse.Namespace) -> bool:
    """Whether the command writes a results directory, trace or report
    (:func:`write_outputs`): only those need every observation row."""
    return bool(args.output or args.perfetto or args.html)


def write_outputs(results: Results, args: argparse.Namespace) -> None:
    """What ``-o``, ``--perfetto`` and ``--html`` ask for (:mod:`replay.commands.outputs`: a
    trace or report inside the ``-o`` directory is part of it); what was written is said on
    stderr when stdout carries ``--json``."""
    from replay.commands.outputs import report_writer, save_all, trace_writer

    files = [
        (path, writer(args.json))
        for path, writer in ((args.perfetto, trace_writer), (args.html, report_writer))
        if path
    ]
    save_all(results, args.output, files)


def print_report(results: Results, title: str, *, wide: bool = False) -> ScenarioNames:
    """The host assumed, per scenario and vCPU numbers, then the worst stall episodes.

    Scenario names are shortened, with a legend, when the table would not fit the terminal
    otherwise (:mod:`replay.commands.short_names`); ``wide`` keeps them whole. Returns the
    names used, for the tables that follow.
    """
    if "host" in results.meta:  # results saved before the host block existed have none
        for line in host_lines(results.meta["host"]):
            stdout.print(line, markup=False)
    for note in results.meta["notes"]:
        stdout.print(f"[yellow]note:[/] {note}")
    for vcpu in results.meta.get("vcpus_without_rows", []):
        stdout.print(f"[yellow]note:[/] {describe_absent(vcpu)}")
    names = ScenarioNames.full()
    table = _vcpu_table(results, title, names)
    # the width the table needs with nothing wrapped (measured as if the terminal were unbounded)
    natural = Measurement.get(stdout, stdout.options.update_width(1 << 16), table).maximum
    if not wide and natural > stdout.width:
        names = ScenarioNames.shortened(
            results.summary["scenario"].unique(maintain_order=True).to_list()
        )
        print_legend(names)
        table = _vcpu_table(results, title, names)
    stdout.print(table)
    worst = (
        results.findings.filter(pl.col("kind") == "stall").sort("duration", descending=True).head(5)
    )
    if worst.height:
        episodes = names.table("longest stall episodes")
        for col in ("scenario", "vCPU", "start s", "duration ms", "CPU", "cause"):
            names.add_column(episodes, col, col)
        t0 = results.meta["start"]
        for e in worst.iter_rows(named=True):
            episodes.add_row(
                names(e["scenario"]),
                f"{e['vm']}/{e['vcpu_index']}",
                f"{(e['start'] - t0) / 1e9:.6f}",
                f"{e['duration'] / 1e6:.3f}",
                str(e["cpu"]),
                e["cause"],
            )
        stdout.print(episodes)
    return names


def _vcpu_table(results: Results, title: str, names: ScenarioNames) -> Table:
    summary = results.summary
    index = [str(i) if i is not None else "?" for i in summary["vcpu_index"]]
    vms = summary["vm"].unique().to_list()
    if names.short and len(vms) == 1:
        # narrow: the one VM in the title, so that a vCPU is a short cell that never folds
        title, vcpus = f"{title}, VM {vms[0]}", index
    else:
        vcpus = [f"{vm}/{i}" for vm, i in zip(summary["vm"], index, strict=True)]
    table = names.table(title)
    for heading, compact in (
        ("scenario", "scenario"),
        ("vCPU", "vCPU"),
        ("guest s", "guest s"),
        ("stalled s", "stall s"),
        ("risky ticks", "risky"),
        ("fail-entries", "fails"),
        ("counted/true cycles", "cycles"),
        ("cross-PMU loads", "x-PMU"),
        ("re-created events", "re-cr."),
        ("unknown s (share)", "unk. s"),
        ("lost counters", "lost"),
    ):
        left = heading in ("scenario", "vCPU", "lost counters")
        whole = max(map(len, vcpus), default=0) if heading == "vCPU" else None
        names.add_column(table, heading, compact, "left" if left else "right", whole)
    for r, vcpu in zip(summary.iter_rows(named=True), vcpus, strict=True):
        cyc = f"{r['counted_cycles'] / r['true_cycles']:.1%}" if r["true_cycles"] else "-"
        risky = (
            "-" if r["ticks_with_guest"] is None else f"{r['risky_ticks']}/{r['ticks_with_guest']}"
        )
        table.add_row(
            names(r["scenario"]),
            # short names: as in the episodes table, the thread id stays in --wide and --json
            vcpu if names.short else f"{vcpu} ({r['vcpu']})",
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
    return table


def print_comparison(
    results: Results, title: str, *, explain: bool = False, wide: bool = False
) -> None:
    """The report, then the ranked scenarios and their costs, the ranking rule (``explain``)
    and the verdict (ranked results)."""
    ranking, verdict = results.ranking, results.verdict
    assert ranking is not None and verdict is not None, "run_scenarios(..., rank=True) ranks"
    names = print_report(results, title, wide=wide)
    table = names.table("ranking (best first)")
    columns = [
        ("#", "#"),
        ("scenario", "scenario"),
        ("kernel", "kernel"),
        ("stalled", "stalled"),
        ("risky ticks", "risky"),
        ("pinned off (capacity)", "pinned off"),
        ("re-creations (CPU ms)", "re-created"),
        ("lost counters", "lost"),
    ]
    # a sentence per row: a column of its own when there is room, else listed under the table
    # (a narrow column would stack it a word per line)
    inline = not names.short
    if inline:
        columns.append(("assessment", "assessment"))
    for heading, compact in columns:
        names.add_column(table, heading, compact)
    for r in ranking.table.iter_rows(named=True):
        pinned = r["pinned_off_cpus"]
        cells = [
            str(r["rank"]),
            names(r["scenario"]),
            "proposed" if r["proposed"] else "mainline",
            f"{r['stalled_share']:.1%}",
            str(r["risky_ticks"]),
            f"CPUs {pinned} ({r['pinned_capacity_share']:.0%})" if pinned else "-",
            f"{r['event_recreations']} ({r['recreate_cpu_ns'] / 1e6:.3f})",
            r["lost_counters"] or "-",
        ]
        table.add_row(*cells, *([r["assessment"]] if inline else []))
    stdout.print(table)
    if not inline:
        for r in ranking.table.iter_rows(named=True):
            stdout.print(f"{r['rank']}. {names(r['scenario'])}: {r['assessment']}")
    if explain:
        stdout.print("[bold]ranking rule[/] (each key breaks the ties of the ones before):")
        for i, key in enumerate(ranking.rule, 1):
            stdout.print(f"  {i}. {key}")
    stdout.print(f"[bold]verdict:[/] {verdict.status}")
    for reason in verdict.reasons:
        stdout.print(f"  - {reason}")
    stdout.print(f"[bold]recommendation:[/] {verdict.text}")
