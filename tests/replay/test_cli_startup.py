"""What the command line loads before it runs a command (issue 17: start-up is most of the wait).

``--help`` and a usage error load no command module and none of the libraries a command needs
(numpy, pyarrow, polars, numba); a command loads its own module only. Each check runs in a fresh
interpreter, so what another test imported does not count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from importers.capture import Capture
from importers.detect import load
from importers.host.vcpus import discover_vcpus
from replay.commands import COMMANDS
from tests.conftest import ROOT

LOADED = """
import sys
from replay.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
wanted = {"numpy", "pyarrow", "polars", "numba", "rich"}
heavy = sorted(wanted & {m.split(".")[0] for m in sys.modules})
commands = sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("replay.commands."))
print(" ".join(heavy) or "-", " ".join(commands) or "-", sep="\\n", file=sys.stderr)
"""


def _run(*argv: str) -> tuple[str, list[str], list[str]]:
    """stdout, the heavy libraries and the command modules loaded by ``pmu-replay ARGV``."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *argv],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "100"},
        check=True,
    )
    heavy, commands = (
        line.split() if line != "-" else [] for line in done.stderr.splitlines()[-2:]
    )
    return done.stdout, heavy, commands


def test_help_lists_every_command_and_loads_none_of_them() -> None:
    out, heavy, commands = _run("--help")
    assert heavy == []
    assert commands == []
    for name, (_, summary) in COMMANDS.items():
        assert name in out
        assert summary.split()[0] in out


def test_a_mistyped_command_loads_no_command_module() -> None:
    _, heavy, commands = _run("improt", "x")
    assert (heavy, commands) == ([], [])


def test_a_command_loads_its_own_module_only() -> None:
    out, _, commands = _run("import", "--help")
    assert commands == ["console", "import_cmd"]
    assert "--vcpu" in out  # its options are there: the module registered them


IMPORTING = """
import sys
from replay.cli import main
assert main(["import", *sys.argv[1:]]) == 0
print(" ".join(sorted(m for m in sys.modules if m in {unwanted!r})) or "-", file=sys.stderr)
"""
#: what a small trace.dat, perf.data, ftrace text or systrace import no longer loads (issue
#: 17): pyarrow.compute (~35 ms: it wraps every kernel at import; importers.arrow_compute
#: calls them without it), Acero and pyarrow.dataset (Table.group_by; importers.tasks hashes
#: instead), rich.progress (no bar is drawn without a terminal), dateutil (Arrow's type
#: inference of an untyped Python value), pyarrow.parquet and the filesystems it loads
#: through pyarrow.fs (14 MiB resident; importers.parquet_files writes without them)
UNWANTED = {
    "pyarrow.compute",
    "pyarrow.acero",
    "pyarrow.dataset",
    "rich.progress",
    "dateutil",
    "pyarrow.parquet",
    "pyarrow.fs",
}


def _import(capture: Path, out: Path, options: list[str]) -> subprocess.CompletedProcess[str]:
    """``pmu-replay import CAPTURE -o OUT OPTIONS`` in a fresh interpreter; its last line of
    stderr lists the UNWANTED modules it loaded (``-``: none)."""
    return subprocess.run(
        [sys.executable, "-c", IMPORTING.format(unwanted=UNWANTED), capture, "-o", out, *options],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=True,
    )


@pytest.mark.parametrize("options", [[], ["--json"]])
@pytest.mark.parametrize(
    "rel",
    [
        "juno-sched-load/trace.dat",
        "simpleperf-android/perf_with_tracepoint_event.data",  # tracepoints: typed tables
        "quipper-perfdata/perf.data.armv7-3.4",  # PMU samples and task records
        "juno-trace-txt/trace.txt",  # ftrace text (trace-cmd report)
        "trappy-surfaceflinger/trace_systrace.html",  # systrace: ftrace text in HTML
    ],
)
def test_a_small_import_loads_no_compute_module(
    shared_traces: Path, tmp_path: Path, options: list[str], rel: str
) -> None:
    """Without ``--json``, no VM is found in the capture, so the stand-in advice runs too
    (where it has sched_switch events to choose from)."""
    capture = shared_traces / rel
    out = tmp_path / "out"
    done = _import(capture, out, options)
    assert done.stderr.split()[-1] == "-"
    switches = load(capture).tables.get("sched_switch")
    advised = not options and switches is not None
    assert ("stand-ins" in done.stdout) is advised
    # the import ran to the end: its tasks are those of an import in this process
    assert Capture.load(out).table("tasks").equals(load(capture).table("tasks"))


@pytest.mark.parametrize(
    "rel", ["arm64-kvm-excerpts/qemu-48core-host.txt", "kvm-x86-host-report-txt/host_report.txt"]
)
def test_a_small_kvm_text_import_loads_no_compute_module(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    """ftrace text of a KVM host: its vCPU threads are found, and their table built, without
    pyarrow.compute or dateutil either."""
    capture = shared_traces / rel
    out = tmp_path / "out"
    assert _import(capture, out, []).stderr.split()[-1] == "-"
    vcpus = Capture.load(out).table("vcpus")
    assert vcpus.num_rows > 0
    assert vcpus.equals(discover_vcpus(load(capture)))
