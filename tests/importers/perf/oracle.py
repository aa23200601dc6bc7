"""Linux perf as the oracle for perf.data imports: its record counts, samples and side records.

``perf report -D`` ends with "Aggregated stats" (records per type); ``perf script --ns`` prints
one line per sample in delivery order, and with ``--show-task-events --show-switch-events
--show-lost-events`` the COMM/FORK/EXIT/SWITCH/LOST records too. Recordings are made on this
machine when perf can record (tracepoints and software events: the VM has no hardware PMU).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

_STAT = re.compile(r"^\s*(\S+) events:\s+(\d+)")
_PREFIX = re.compile(
    r"^\s*(?P<pid>-?\d+)/(?P<tid>-?\d+)\s+(?:\[(?P<cpu>\d+)\]\s+)?(?P<ts>\d+)\.(?P<ns>\d{9}):\s+(?P<rest>.*)$"
)
_SAMPLE = re.compile(r"^(?:(?P<period>\d+)\s+)?(?P<event>\S+):\s*(?P<tail>.*)$")


def perf_exe() -> str:
    exe = shutil.which("perf")
    if exe is None:
        pytest.skip("perf is not installed (CI installs Debian's linux-perf as the oracle)")
    return exe


def run_perf(*args: str, stdin: bytes | None = None) -> str:
    out = subprocess.run(
        [perf_exe(), *args], capture_output=True, input=stdin, timeout=300, check=False
    )
    return out.stdout.decode("utf-8", "replace")


@cache
def record_counts(path: str) -> dict[str, int]:
    """Records per type from ``perf report -D`` (the first block of Aggregated stats)."""
    counts: dict[str, int] = {}
    inside = False
    for line in run_perf("report", "-D", "-i", path).splitlines():
        if line.startswith("Aggregated stats"):
            inside = True
            continue
        if inside:
            m = _STAT.match(line)
            if not m:
                break
            counts[m[1]] = int(m[2])
    return counts


@dataclass(frozen=True)
class Line:
    """One ``perf script --ns`` line: prefix fields and the rest of the line."""

    pid: int
    tid: int
    cpu: int | None
    ts: int
    rest: str

    def sample(self) -> tuple[int | None, str, str]:
        """(period, event, tail) of a sample line."""
        m = _SAMPLE.match(self.rest)
        assert m, self.rest
        period = int(m["period"]) if m["period"] else None
        return period, m["event"], m["tail"].strip()


@cache
def script_lines(path: str, fields: str, *extra: str) -> tuple[Line, ...]:
    """Parsed ``perf script --ns -F FIELDS EXTRA...`` output."""
    out = run_perf("script", "--ns", "-i", path, "-F", fields, *extra)
    rows = []
    for text in out.splitlines():
        m = _PREFIX.match(text)
        if m:
            cpu = int(m["cpu"]) if m["cpu"] is not None else None
            ts = int(m["ts"]) * 1_000_000_000 + int(m["ns"])
            rows.append(Line(int(m["pid"]), int(m["tid"]), cpu, ts, m["rest"].rstrip()))
    return tuple(rows)


def can_record(tmp: Path) -> str | None:
    """None when ``perf record`` works here, else the reason it does not."""
    exe = shutil.which("perf")
    if exe is None:
        return "perf is not installed"
    probe = tmp / "probe.data"
    res = subprocess.run(
        [exe, "record", "-e", "sched:sched_switch", "-a", "-o", str(probe), "--", "true"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if res.returncode != 0 or not probe.exists():
        return f"perf record failed: {res.stderr.decode(errors='replace').strip()[-300:]}"
    return None


def record(out: Path, *args: str, pipe: bool = False) -> Path:
    """``perf record ARGS`` into ``out`` (through a pipe with ``pipe``)."""
    exe = perf_exe()
    if pipe:
        res = subprocess.run(
            [exe, "record", "-o", "-", *args], capture_output=True, timeout=120, check=False
        )
        out.write_bytes(res.stdout)
    else:
        res = subprocess.run(
            [exe, "record", "-o", str(out), *args], capture_output=True, timeout=120, check=False
        )
    if res.returncode != 0:
        pytest.skip(f"perf record {' '.join(args)} failed: {res.stderr.decode(errors='replace')}")
    return out
