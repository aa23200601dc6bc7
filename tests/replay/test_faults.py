"""Faults around the command line: full disks, bad paths, closed pipes, Ctrl-C and kills.

Every OSError and every interrupt is one line and a documented exit code (``replay.cli``), and
an output directory is whole or absent: a run that fails, is interrupted or is killed at any
moment leaves the previous complete output (or nothing) under the target name.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from importers.capture import Capture
from importers.errors import (
    CaptureFormatError,
    DroppedEventsError,
    MissingEventsError,
    TopologyError,
    UsageError,
)
from replay.cli import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OS_ERROR, build_parser, main
from replay.record import RecordError
from replay.results import Results
from replay.validate import DISAGREE_EXIT
from tests.conftest import FIXTURES, ROOT

CAPTURE = FIXTURES / "captures" / "cross-cluster-migration.txt"
OTHER = FIXTURES / "captures" / "lost-events-gap.txt"
TOPOLOGY = FIXTURES / "topologies" / "two-cluster.json"
# as a user runs it: stdout block-buffered to a pipe (no PYTHONUNBUFFERED), this checkout first
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
ENV["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])


CONSOLE = "import sys; from replay.cli import console_main; sys.exit(console_main())"


def cli(*argv: str | Path, group: bool = False) -> subprocess.Popen[bytes]:
    """``pmu-replay ARGV`` in a process of its own (its console entry point, as installed);
    with ``group``, in a process group of its own, as a shell job is."""
    return subprocess.Popen(
        [sys.executable, "-c", CONSOLE, *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        start_new_session=group,
    )


def one_line_error(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and err.startswith("pmu-replay: "), err
    assert "Traceback" not in err and all(w in err for w in words), err


def test_help_documents_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    text = build_parser().format_help()
    table = text.split("exit codes:\n")[1].split("\n\n")[0]
    listed = [int(line.split()[0]) for line in table.splitlines()]
    documented = set(listed)
    assert len(listed) == len(documented), "one meaning per code"
    classes = (UsageError, CaptureFormatError, MissingEventsError, DroppedEventsError)
    errors = [c.exit_code for c in (*classes, TopologyError, RecordError)]
    codes = [0, 1, *errors, EXIT_OS_ERROR, DISAGREE_EXIT, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE]
    assert len(codes) == len(set(codes)), "no two outcomes share a code"
    assert documented == set(codes)
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{code}`" in readme for code in documented), "README lists the same codes"


@pytest.mark.parametrize(
    ("output", "code", "words"),
    [
        # -o naming an existing file gave FileExistsError
        ("file", 2, ["exists and is not a directory"]),
        ("file/sub", 2, ["is a file, not a directory"]),
        # -o /proc/nope gave FileNotFoundError
        ("/proc/nope", EXIT_OS_ERROR, ["cannot write it: No such file or directory"]),
    ],
)
def test_output_paths_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, code: int, words: list[str]
) -> None:
    (tmp_path / "file").write_text("not a directory")
    target = tmp_path / output  # an absolute output stays as it is
    assert main(["import", str(CAPTURE), "-o", str(target)]) == code
    one_line_error(capsys.readouterr().err, str(target), *words)


def test_a_directory_that_is_not_an_output_is_never_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["import", str(CAPTURE), "-o", str(tmp_path)]) == 2
    one_line_error(capsys.readouterr().err, "not an earlier pmu-replay output")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_binary_topology_file_is_a_topology_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "topo.json"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe")  # gave UnicodeDecodeError
    assert main(["import", str(CAPTURE), "--topology", str(binary)]) == TopologyError.exit_code
    one_line_error(capsys.readouterr().err, str(binary), "not a text file (byte 0x8")


@pytest.mark.slow
def test_json_into_a_closed_pipe(tmp_path: Path) -> None:
    # `pmu-replay import CAP --json | true` gave a BrokenPipeError traceback
    shell = f"{sys.executable} -c '{CONSOLE}' import {CAPTURE} --json | true; echo $?"
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {shell}"], capture_output=True, env=ENV, text=True
    )
    # 0 when the JSON fit in the pipe before `true` was gone
    assert done.stdout.strip() in (str(EXIT_BROKEN_PIPE), "0"), done.stdout
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    for argv in (["import", CAPTURE, "--json"], ["--version"]):  # written at once / at exit
        with cli(*argv) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()  # the reader is gone before any output
            err = proc.stderr.read().decode()
            assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE
        one_line_error(err, "standard output closed")


def test_an_interrupt_that_surfaces_as_another_exception(tmp_path: Path) -> None:
    # Ctrl-C during a large import once gave "RuntimeError: cannot release un-acquired lock":
    # the KeyboardInterrupt hit inside a lock's release, which raised another exception
    script = (
        "import os, signal, sys\n"
        "import replay.cli as cli\n"
        "def main(argv=None):\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    except KeyboardInterrupt:\n"
        "        raise RuntimeError('cannot release un-acquired lock') from None\n"
        "cli.main = main\n"
        "sys.exit(cli.console_main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, env=ENV)
    assert done.returncode == EXIT_INTERRUPTED
    one_line_error(done.stderr.decode(), "pmu-replay: interrupted")


def _loading(pid: int) -> bool:
    """Whether process ``pid`` has begun to load numpy: it is in ``main``, past the start-up
    of the interpreter (whose own ``site`` hooks a Ctrl-C can break before any of our code
    runs)."""
    try:
        return "numpy" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.slow
def test_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path: Path) -> None:
    # also while the modules load (a KeyboardInterrupt traceback from the imports, once)
    rng = random.Random("ctrl-c")
    for attempt in range(6):
        proc = cli("compare", CAPTURE, "--topology", TOPOLOGY, "-o", tmp_path / f"c{attempt}")
        while not _loading(proc.pid) and proc.poll() is None:
            time.sleep(0.001)
        time.sleep(rng.choice([0.0, 0.01, 0.1]) + rng.uniform(0, 1.2))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            continue  # it was done before the signal
        assert proc.returncode == EXIT_INTERRUPTED, err.decode()
        one_line_error(err.decode(), "pmu-replay: interrupted")
        if (tmp_path / f"c{attempt}").exists():  # interrupted after its output was in place
            assert compare_output(tmp_path / f"c{attempt}") == str(CAPTURE)
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


# ---- outputs are whole or absent -----------------------------------------------------------


def listing(directory: Path) -> dict[str, int]:
    """Every file of an output directory and its size (hidden leftovers included)."""
    return {p.name: p.stat().st_size for p in sorted(directory.iterdir())}


def import_output(target: Path) -> str:
    """The source of the complete import output at ``target`` (all its tables load)."""
    return Capture.load(target).metadata.source_path


def compare_output(target: Path) -> str:
    results = Results.load(target)
    assert results.summary.height and results.findings.columns
    return str(results.meta["capture"]["path"])


COMMANDS = {
    "import": (["import"], import_output, []),
    "compare": (["compare"], compare_output, ["--topology", str(TOPOLOGY)]),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_killed_runs_leave_the_previous_output_or_none(tmp_path: Path, command: str) -> None:
    argv, read_back, extra = COMMANDS[command]
    target = tmp_path / "out"
    first = cli(*argv, CAPTURE, "-o", tmp_path / "new", *extra)
    assert first.communicate(timeout=120) and first.returncode == 0
    new = listing(tmp_path / "new")  # what a complete run of the killed command writes
    started = time.monotonic()
    first = cli(*argv, OTHER, "-o", target, *extra)
    assert first.communicate(timeout=120) and first.returncode == 0
    took = time.monotonic() - started
    previous = listing(target)
    assert read_back(target) == str(OTHER)
    rng = random.Random(f"kill-{command}")
    for attempt, sig in enumerate([signal.SIGKILL, signal.SIGINT] * 3):
        left = set(tmp_path.glob(".out.*"))  # what earlier SIGKILLs left beside the name
        proc = cli(*argv, CAPTURE, "-o", target, *extra)
        if attempt % 4 >= 2:  # at a random moment, most of them late in the run
            time.sleep(took * rng.uniform(0.4, 1.1))
        else:  # while the output is being written: once its partial copy appears
            while proc.poll() is None and not set(tmp_path.glob(".out.*.partial")) - left:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.005))
        proc.send_signal(sig)
        proc.communicate(timeout=120)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] in (["out"], [])
        if sig == signal.SIGINT:  # unwound: its partial copy is gone too
            assert set(tmp_path.glob(".out.*")) == left
        if not target.exists():
            continue  # killed between the two renames of the swap
        if read_back(target) == str(OTHER):
            assert listing(target) == previous
        else:  # done before the signal: the new output, complete and nothing else
            assert read_back(target) == str(CAPTURE) and listing(target) == new
            done = cli(*argv, OTHER, "-o", target, *extra)  # back to the previous output
            assert done.communicate(timeout=120) and done.returncode == 0
            previous = listing(target)


# ---- a full disk ---------------------------------------------------------------------------


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``; skips the test when it cannot be mounted."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or 'not root'}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


BIG = "kvm-x86-host-report-txt/host_report.txt"


def test_full_disk_is_a_clean_error_and_keeps_the_previous_import(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_tmpfs(tmp_path / "disk", "100k") as disk:  # the small output fits, not both
        target = disk / "cap"
        assert main(["import", str(CAPTURE), "-o", str(target)]) == 0
        previous = listing(target)
        capsys.readouterr()
        assert main(["import", str(shared_traces / BIG), "-o", str(target)]) == EXIT_OS_ERROR
        one_line_error(capsys.readouterr().err, str(target), "No space left on device")
        assert listing(target) == previous and import_output(target) == str(CAPTURE)
        assert [p.name for p in disk.iterdir()] == ["cap"]  # no partial copy left


def test_full_disk_in_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with small_tmpfs(tmp_path / "disk", "32k") as disk:
        code = main(["compare", str(CAPTURE), "--topology", str(TOPOLOGY), "-o", str(disk / "c")])
        assert code == EXIT_OS_ERROR
        one_line_error(capsys.readouterr().err, str(disk / "c"), "No space left on device")
        assert list(disk.iterdir()) == []


def test_read_only_file_system(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with small_tmpfs(tmp_path / "ro", "64k") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        assert main(["import", str(CAPTURE), "-o", str(disk / "c")]) == EXIT_OS_ERROR
        one_line_error(capsys.readouterr().err, str(disk / "c"), "read-only file system")


@pytest.mark.slow
def test_full_disk_in_a_fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,host,topology\n{CAPTURE},h1,{TOPOLOGY}\n{OTHER},h2,{TOPOLOGY}\n")
    with small_tmpfs(tmp_path / "disk", "24k") as disk:
        code = main(["fleet", str(manifest), "-o", str(disk / "f"), "--workers", "1"])
        assert code == EXIT_OS_ERROR
        one_line_error(capsys.readouterr().err.splitlines()[-1] + "\n", "No space left on device")
        assert not list(disk.rglob("*.partial"))


@pytest.mark.slow
def test_fleet_stops_its_workers_on_ctrl_c(tmp_path: Path) -> None:
    # a fleet killed mid-run left defunct worker processes behind
    manifest = tmp_path / "m.csv"
    rows = "".join(f"{CAPTURE},h{i},{TOPOLOGY}\n" for i in range(60))
    manifest.write_text("path,host,topology\n" + rows)
    proc = cli("fleet", manifest, "-o", tmp_path / "f", "--workers", "2", group=True)
    deadline = time.monotonic() + 90
    while not list((tmp_path / "f" / "done").glob("*.json")):  # workers are up and busy
        assert time.monotonic() < deadline and proc.poll() is None, "no member was replayed"
        time.sleep(0.1)
    # the state Ctrl-C must find, whatever the workers are doing when it lands (it used to
    # land in a polars query now and then, under load, and end in a worker's traceback)
    others = [int(line.split()[0]) for line in _group(proc.pid) if int(line.split()[0]) != proc.pid]
    status = [Path(f"/proc/{pid}/status").read_text() for pid in others]
    assert others and all(_ignores_sigint(text) for text in status), others
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    _, raw = proc.communicate(timeout=90)
    assert proc.returncode == EXIT_INTERRUPTED
    err = raw.decode()
    assert "KeyboardInterrupt" not in err and err.rstrip().endswith("pmu-replay: interrupted")
    deadline = time.monotonic() + 30
    while _group(proc.pid):
        assert time.monotonic() < deadline, f"left behind: {_group(proc.pid)}"
        time.sleep(0.2)


def _ignores_sigint(status: str) -> bool:
    """The kernel discards SIGINT for the process of this ``/proc/PID/status`` text (its
    ``SigIgn`` mask), whatever the process's Python believes."""
    mask = next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1]
    return bool(int(mask, 16) >> (signal.SIGINT - 1) & 1)


def test_fleet_workers_ignore_ctrl_c_after_loading_polars() -> None:
    # a worker runs the preload, then the replay imports polars, which installs its own SIGINT
    # handler (over SIG_IGN) and raises KeyboardInterrupt in the query it runs at a Ctrl-C
    probe = "import os, replay.fleet_worker, polars; print(open('/proc/self/status').read())"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=ENV, check=True)
    assert _ignores_sigint(run.stdout.decode())


def _group(pgid: int) -> list[str]:
    """``pid state`` of the live processes of process group ``pgid`` (zombies included)."""
    ps = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True)
    return ps.stdout.decode().split("\n")[:-1]


def test_a_ctrl_c_once_the_exit_code_is_known_changes_nothing() -> None:
    """Interpreter shutdown (numba's and polars' teardown after a large replay) runs with
    SIGINT back at its default action: a Ctrl-C then killed the process with status -2 and
    no message. Once ``console_main`` has its exit code, a Ctrl-C is ignored."""
    after_main = (
        "import os, signal, sys\n"
        "from replay.cli import console_main\n"
        "code = console_main()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", after_main, "--version"], capture_output=True, env=ENV, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.startswith(b"pmu-replay")
