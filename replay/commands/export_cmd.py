"""``pmu-replay export``: replay results -> a Perfetto trace (also ``--perfetto`` on replay)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from replay.commands import summary
from replay.commands.console import say, stderr, stdout
from replay.results import Results

if TYPE_CHECKING:
    from replay.export import ExportStats

HELP = summary("export")
EPILOG = """\
The trace (Perfetto protobuf, timestamps in ns on the capture's clock) opens on a "pmu-replay"
group: a "stalls: SCENARIO" group per scenario first, with stall episodes (cause in the args),
fail-entries and risky zero-delta ticks, then the host CPU frequencies the capture measured
(assumed ones are left out; the notes say what was assumed). Each VM is a process (a group,
when the capture does not give its VMM's pid) with one thread per vCPU: slices for where it
ran (CPU and host PMU; guest, host and unknown time) and one counter track per counter and
scenario with the value the guest reads. The same results always give the same bytes. A name
ending in .gz writes a gzipped trace.

examples:
  pmu-replay compare trace.dat --topology plat_info.yml -o cmp/
  pmu-replay export cmp/ -o cmp.perfetto-trace
  pmu-replay export cmp/ -o default.perfetto-trace --scenario default@cpu0
  pmu-replay view cmp.perfetto-trace
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = results_parser(
        sub,
        "export",
        HELP,
        EPILOG,
        "TRACE",
        "trace file to write (default: RESULTS/replay.perfetto-trace)",
    )
    p.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="SCENARIO",
        help="export only this scenario (repeat); default: all",
    )
    p.set_defaults(run=run)


def results_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    epilog: str,
    output: str,
    output_help: str,
) -> argparse.ArgumentParser:
    """The parser of a command that turns a results directory into a file (export, report)."""
    p = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "results", metavar="RESULTS", help="results directory of `pmu-replay replay/compare -o`"
    )
    p.add_argument("-o", "--output", metavar=output, help=output_help)
    return p


def run(args: argparse.Namespace) -> int:
    results = Results.load(args.results)
    out = args.output or str(Path(args.results) / "replay.perfetto-trace")
    export(results, out, args.scenario, to_stderr=False)
    return 0


def add_perfetto_option(p: argparse.ArgumentParser) -> None:
    """``--perfetto FILE`` for the commands that produce results."""
    p.add_argument(
        "--perfetto",
        metavar="TRACE",
        help="also write the results as a Perfetto trace (see `pmu-replay export --help`)",
    )


def export(
    results: Results, path: str, scenarios: list[str] | None = None, *, to_stderr: bool
) -> ExportStats:
    """Write the trace and say what was written (on stderr when stdout carries ``--json``)."""
    stats = write_trace(results, path, scenarios)
    say_exported(stats, path, to_stderr=to_stderr)
    return stats


def write_trace(results: Results, path: str, scenarios: list[str] | None = None) -> ExportStats:
    """Write the trace (:func:`replay.export.write_perfetto`)."""
    from replay.export import write_perfetto  # the protobuf writer loads only when used

    return write_perfetto(results, path, scenarios=scenarios)


def say_exported(stats: ExportStats, name: str, *, to_stderr: bool) -> None:
    """Say that the trace ``stats`` describe was written, as ``name``."""
    say(
        stderr if to_stderr else stdout,
        f"wrote {name}: {stats.packets:,} packets on {stats.tracks:,} tracks, "
        f"{_size(stats.bytes)} (capture clock: {stats.clock}); open it with:",
        f"pmu-replay view {name}",
    )


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
