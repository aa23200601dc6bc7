"""What the command line loads before it runs a command (issue 17: start-up is most of the wait).

``--help`` and a usage error load no command module and none of the libraries a command needs
(numpy, pyarrow, polars, numba); a command loads its own module only. Each check runs in a fresh
interpreter, so what another test imported does not count.
"""

from __future__ import annotations

import subprocess
import sys

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
