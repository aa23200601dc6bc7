"""The ``pmu-replay`` command line.

Each subcommand is a thin layer over the public API; errors of the :class:`PmuReplayError`
hierarchy are turned into a one-line message and an exit code here, in one place.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

from importers.errors import PmuReplayError
from replay import __version__
from replay.commands import (
    compare_cmd,
    demo_cmd,
    export_cmd,
    fleet_cmd,
    import_cmd,
    record_cmd,
    replay_cmd,
    report_cmd,
    validate_cmd,
    view_cmd,
)
from replay.heap import keep_freed_blocks

DESCRIPTION = """\
Replay real Linux scheduling traces through a model of KVM's arm64 PMU emulation, and see when
and for how long each guest PMU counter would stall under each KVM mode.

typical session:
  pmu-replay import trace.dat -o cap/                      # any capture -> Parquet + summary
  pmu-replay compare cap/ --topology plat_info.yml -o cmp/ # every KVM mode, ranked
  pmu-replay replay cap/ --scenario fixed-counters-only    # one mode, stall episodes
  pmu-replay export cmp/ -o cmp.perfetto-trace             # results -> Perfetto trace
  pmu-replay view cmp.perfetto-trace                       # ... in the Perfetto UI
  pmu-replay report cmp/ -o cmp.html                       # results -> one HTML file

captures read: ftrace text (kernel trace / trace_pipe), trace-cmd report text, Android systrace
HTML (plain or zipped), trace-cmd trace.dat v6/v7, perf.data, perf script, perf stat -x, / -j.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmu-replay",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pmu-replay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import_cmd.register(sub)
    replay_cmd.register(sub)
    compare_cmd.register(sub)
    export_cmd.register(sub)
    report_cmd.register(sub)
    view_cmd.register(sub)
    record_cmd.register(sub)
    demo_cmd.register(sub)
    fleet_cmd.register(sub)
    validate_cmd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except PmuReplayError as exc:
        print(f"pmu-replay: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pmu-replay: interrupted", file=sys.stderr)
        return 130
    return code


def console_main() -> int:
    """Entry point of the ``pmu-replay`` script: process-wide settings, :func:`main`, exit.

    The heap keeps freed blocks (:mod:`replay.heap`). At the end, the objects still alive are
    about to go with the process. Collecting them one by one at interpreter shutdown took
    ~0.4 s after a 1 GB import (numba's and polars' object graphs), so they are frozen out of
    the final collection; atexit handlers and stream flushes still run.
    """
    keep_freed_blocks()
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
