"""The ``pmu-replay`` command line.

Each subcommand is a thin layer over the public API; errors of the :class:`PmuReplayError`
hierarchy, every ``OSError`` (disk full, permission, not a directory, a closed pipe) and
Ctrl-C are turned into a one-line message and an exit code here, in one place (see
:data:`EXIT_CODES`). This module imports only the standard library and the error classes at
load time, so that the console entry point catches a Ctrl-C even while the rest loads.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from importers.errors import PmuReplayError
from replay import __version__
from replay.commands import COMMANDS

EXIT_OS_ERROR = 8
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process killed by it
CLOSED_PIPE = "pmu-replay: standard output closed before all output was written"
EXIT_CODES = """\
exit codes:
  0    done
  1    any other error reported by pmu-replay
  2    a command-line option or value that cannot be used
  3    the input is not a capture pmu-replay reads (the message names file and line/offset)
  4    the capture lacks events the analysis needs
  5    events were lost and --strict forbids continuing
  6    the CPU -> host PMU topology is missing, inconsistent or unreadable
  7    recording is impossible here (record)
  8    a file or directory cannot be read or written (disk full, permission, not a directory)
  9    the model disagrees with a real kernel's recording, or cannot predict it (validate)
  130  interrupted (Ctrl-C); outputs (-o) are left as they were, never half-written
  141  standard output was closed before everything was written (e.g. `| head`)
"""

DESCRIPTION = (
    """\
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
HTML (plain or zipped), trace-cmd trace.dat v6/v7, perf.data, perf script, perf stat -x, / -j,
Perfetto protobuf traces, `pmu-replay record` directories; any file also compressed with gzip,
xz, zstd or bzip2.

"""
    + EXIT_CODES
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command-line parser, with every subcommand listed.

    Only the subcommand ``argv`` runs is loaded with its options (every one when ``argv`` is
    None): a command's module imports what the command needs (``import`` does not load the
    replay engine), and ``--help`` or a mistyped command loads none of them.
    """
    parser = argparse.ArgumentParser(
        prog="pmu-replay",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pmu-replay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, (module, summary) in COMMANDS.items():
        if chosen is None or chosen == name:
            importlib.import_module(f"replay.commands.{module}").register(sub)
        else:
            sub.add_parser(name, help=summary)  # listed; loaded when it is the one run
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (see :data:`EXIT_CODES`)."""
    try:
        argv = sys.argv[1:] if argv is None else argv
        args = build_parser(argv).parse_args(argv)
        code: int = args.run(args)
    except PmuReplayError as exc:
        print(f"pmu-replay: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pmu-replay: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        print(CLOSED_PIPE, file=sys.stderr)
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        print(f"pmu-replay: error: {os_error_message(exc)}", file=sys.stderr)
        return EXIT_OS_ERROR
    return code


_HINTS = {
    errno.ENOSPC: "the disk is full: free space or write somewhere else",
    errno.EDQUOT: "the disk quota is used up: free space or write somewhere else",
    errno.EROFS: "a read-only file system: write somewhere else",
    errno.EACCES: "permission denied: choose a place you may read or write",
    errno.EPERM: "not permitted: choose a place you may read or write",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "a directory where a file was expected",
    errno.EEXIST: "something of that name is already there",
}


def os_error_message(exc: OSError) -> str:
    """One line for an ``OSError``: the path(s) involved, what failed, and what to do."""
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    what = exc.strerror or str(exc)
    hint = _HINTS.get(exc.errno or 0)
    where = f"{paths}: " if paths else ""
    return f"{where}{what}" + (f" ({hint})" if hint else "")


_interrupted = False


def _done_with_interrupts() -> None:
    """Once the exit code is known a Ctrl-C has nothing left to stop: ignore it. Interpreter
    shutdown puts SIGINT back to the default action before it tears down numba and polars, and
    a Ctrl-C then killed the process (status -2) with no message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    """First Ctrl-C: unwind (outputs are cleaned up on the way). A second one: leave now."""
    global _interrupted
    if _interrupted:
        os.write(2, b"pmu-replay: interrupted\n")
        os._exit(EXIT_INTERRUPTED)
    _interrupted = True
    raise KeyboardInterrupt


def console_main() -> int:
    """Entry point of the ``pmu-replay`` script: process-wide settings, :func:`main`, exit.

    Ctrl-C is caught from the first moment (also while the commands' modules load, and where
    it surfaces as another exception from inside a lock) and ignored once the exit code is
    known; output that stdout can no longer take ends the run with :data:`EXIT_BROKEN_PIPE`
    and no traceback. The heap keeps freed blocks and Arrow allocates from it, and polars'
    allocator keeps the pages it frees (:mod:`replay.heap`); numba's first kernel load skips
    its BLAS probe (:func:`importers.byte_loops.skip_blas_probe`). At the end, the objects
    still alive are about to go with the process. Collecting them one by one at interpreter
    shutdown took ~0.4 s after a 1 GB import (numba's and polars' object graphs), so they are
    frozen out of the final collection; atexit handlers and stream flushes still run.
    """
    signal.signal(signal.SIGINT, _on_interrupt)
    code: int | None = None
    try:
        try:
            from importers.byte_loops import skip_blas_probe
            from replay.heap import arrow_on_the_heap, keep_freed_blocks, polars_keeps_freed_pages

            if keep_freed_blocks():
                arrow_on_the_heap()
            polars_keeps_freed_pages()
            skip_blas_probe()
            code = main()
        except SystemExit as exc:  # argparse's --help, --version and usage errors
            if not isinstance(exc.code, int | None):
                raise
            code = exc.code or 0
        sys.stdout.flush()  # what is buffered for a closed pipe fails here, not at exit
        _done_with_interrupts()
    except BrokenPipeError:
        if code != EXIT_BROKEN_PIPE:  # else main said it already
            print(CLOSED_PIPE, file=sys.stderr)
        code = EXIT_BROKEN_PIPE
    except BaseException:
        if not _interrupted:
            raise
        print("pmu-replay: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    _done_with_interrupts()
    if code == EXIT_BROKEN_PIPE:
        # what is still buffered for the closed pipe would fail again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
