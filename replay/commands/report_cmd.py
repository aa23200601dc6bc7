"""``pmu-replay report``: replay results -> one self-contained HTML file (also ``--html``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from replay.commands import summary
from replay.commands.console import say, stderr, stdout
from replay.commands.export_cmd import results_parser
from replay.results import Results

if TYPE_CHECKING:
    from replay.export.report import ReportStats

HELP = summary("report")
EPILOG = """\
The report is one HTML file with everything inline: the verdict with its status and reasons,
the host PMUs, the ranking, and SVG charts of what each mode costs, how long stall episodes
last, where each vCPU ran (coloured by cluster) and the worst vCPU's counted vs true cycles.
It fetches nothing and runs no script, so it opens from disk or as a mail attachment, in the
reader's light or dark colour scheme. The same results always give the same bytes.

examples:
  pmu-replay compare trace.dat --topology plat_info.yml -o cmp/
  pmu-replay report cmp/ -o cmp.html
  pmu-replay compare trace.dat --topology plat_info.yml --html cmp.html   # in one go
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = results_parser(
        sub, "report", HELP, EPILOG, "HTML", "file to write (default: RESULTS/report.html)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    results = Results.load(args.results)
    out = args.output or str(Path(args.results) / "report.html")
    write_html(results, out, to_stderr=False)
    return 0


def add_html_option(p: argparse.ArgumentParser) -> None:
    """``--html FILE`` for the commands that produce results."""
    p.add_argument(
        "--html",
        metavar="FILE",
        help="also write the results as an HTML report (see `pmu-replay report --help`)",
    )


def write_html(results: Results, path: str, *, to_stderr: bool) -> None:
    """Write the report and say what was written (on stderr when stdout carries ``--json``)."""
    stats, took = write_report_timed(results, path)
    say_reported(stats, took, path, to_stderr=to_stderr)


def write_report_timed(results: Results, path: str) -> tuple[ReportStats, float]:
    """Write the report (:func:`replay.export.report.write_report`); and the seconds it took."""
    from replay.export.report import write_report  # matplotlib loads only when a report is made

    started = time.perf_counter()
    stats = write_report(results, path)
    return stats, time.perf_counter() - started


def say_reported(stats: ReportStats, took: float, name: str, *, to_stderr: bool) -> None:
    """Say that the report ``stats`` describe was written, as ``name``."""
    say(
        stderr if to_stderr else stdout,
        f"wrote {name} ({stats.charts} charts, {stats.bytes / 1e3:.1f} kB, {took:.1f} s)",
    )
