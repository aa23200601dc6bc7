"""``pmu-replay record``: record a capture directory on this Linux host (root, tracefs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from replay.commands import summary
from replay.commands.console import stdout
from replay.record import EVENTS, RecordError, record

HELP = summary("record")
EPILOG = f"""\
Records into its own tracefs instance (the host's tracing setup is left untouched and the
instance is removed afterwards, also on Ctrl-C), then writes DIR/trace.dat (trace-cmd extract)
or DIR/trace.txt, DIR/topology.json, DIR/threads.json and DIR/capture.json.
Events: {", ".join(e.split("/")[1] for e in EVENTS)} (kvm ones when the kernel has them).

examples:
  sudo pmu-replay record -o cap/ --duration 30            # 30 s of whatever runs
  sudo pmu-replay record -o cap/ -- ./start-my-vm.sh      # while a command runs
  pmu-replay compare cap/                                  # topology and vCPUs come along
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "record",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-o", "--output", metavar="DIR", required=True, help="capture directory to write"
    )
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    p.add_argument(
        "--buffer-kb",
        type=int,
        default=8192,
        metavar="KB",
        help="ring buffer per CPU (default 8192)",
    )
    p.add_argument(
        "--text", action="store_true", help="write tracefs text even if trace-cmd is installed"
    )
    p.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- CMD", help="run CMD while recording"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.duration is not None and args.duration <= 0:
        raise RecordError("--duration must be positive")
    stdout.print(f"recording to {args.output} ... (Ctrl-C stops cleanly)")
    rec = record(
        Path(args.output),
        duration=args.duration,
        command=command,
        buffer_kb=args.buffer_kb,
        use_trace_cmd=not args.text,
    )
    stdout.print(
        f"recorded {rec.duration_s:.1f} s into {rec.directory}/{rec.trace_file}; events: "
        f"{', '.join(e.split('/')[1] for e in rec.events)}"
    )
    if rec.missing_events:
        stdout.print(f"not available on this kernel: {', '.join(rec.missing_events)}")
    for note in rec.notes:
        stdout.print(f"[yellow]note:[/] {note}")
    if rec.command_status:
        stdout.print(f"[yellow]the command exited with status {rec.command_status}[/]")
    return 0
