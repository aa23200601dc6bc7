"""Whole-process timing for the benchmarks: the command a user runs against the peer tool.

Every benchmark times ``pmu-replay`` as a user runs it, a fresh process from the console
script's start to its exit (interpreter, imports, decode, Parquet on disk), against the peer C
tool on the same file. Runs are interleaved (ours, peer, ours, peer, ...; the order alternates
each round) so both see the same machine, and each figure is a median with its range. CPU
seconds (user + sys of the process and its threads) are printed beside wall time: they suffer
less from the other jobs on a shared machine. Peak RSS is the process's own (``wait4``).

The console script is the one installed beside the interpreter running the benchmark
(``bin/pmu-replay``, the entry point a user gets), pointed at a checkout with ``PYTHONPATH``,
so a benchmark run from a work tree times that tree's code; ``--baseline CHECKOUT`` adds
another checkout (e.g. the main branch) as a third contender in the same interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    """One finished process: wall and CPU seconds, peak RSS in bytes."""

    wall: float
    cpu: float
    rss: int


@dataclass
class Contender:
    """A command to time; ``prepare`` runs before each run, untimed (e.g. remove an output)."""

    name: str
    cmd: list[str]
    env: dict[str, str] | None = None
    prepare: Callable[[], None] | None = None
    runs: list[Run] = field(default_factory=list)


def run_measured(
    cmd: Sequence[str], stdout: int | None = subprocess.PIPE, env: dict[str, str] | None = None
) -> tuple[float, float, int, bytes]:
    """Wall and CPU seconds, peak RSS in bytes and stdout of ``cmd`` (its rusage, via wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=stdout, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed ({status}): {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out


def pmu_replay(checkout: Path = ROOT) -> tuple[list[str], dict[str, str]]:
    """The ``pmu-replay`` console script and an environment that runs ``checkout``'s code.

    Bytecode is written as a user's first run writes it (a shell that sets
    ``PYTHONDONTWRITEBYTECODE`` would make every run compile the project's modules again:
    0.1-0.2 s of each small import on the development VM)."""
    script = Path(sys.executable).parent / "pmu-replay"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "replay.cli"]
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return cmd, env


def contenders_of(
    args: argparse.Namespace,
    argv: list[str],
    peer: tuple[str, list[str]] | None,
    prepare: Callable[[], None] | None = None,
) -> list[Contender]:
    """``pmu-replay ARGV`` of this checkout (and of ``--baseline``), then the peer."""
    out = []
    for label, checkout in (("pmu-replay", ROOT), ("baseline", args.baseline)):
        if checkout is None:
            continue
        cmd, env = pmu_replay(checkout)
        out.append(Contender(f"{label} ({checkout.name})", [*cmd, *argv], env, prepare))
    if peer is not None:
        out.append(Contender(peer[0], peer[1]))
    return out


def interleave(contenders: list[Contender], runs: int) -> None:
    """Run each contender ``runs`` times, round-robin, alternating the order every round.

    One untimed round comes first: it fills the page cache with the input and the code, and
    writes the bytecode and numba's kernel cache of a checkout that has none yet (a compile,
    not a start-up).
    """
    for c in contenders:
        if c.prepare is not None:
            c.prepare()
        run_measured(c.cmd, subprocess.DEVNULL, c.env)
    for k in range(runs):
        order = contenders if k % 2 == 0 else contenders[::-1]
        for c in order:
            if c.prepare is not None:
                c.prepare()
            wall, cpu, rss, _ = run_measured(c.cmd, subprocess.DEVNULL, c.env)
            c.runs.append(Run(wall, cpu, rss))


def median_wall(c: Contender) -> float:
    return statistics.median(r.wall for r in c.runs)


def median_cpu(c: Contender) -> float:
    return statistics.median(r.cpu for r in c.runs)


def table(contenders: list[Contender], events: int | None = None) -> list[str]:
    """One line per contender: median wall [range], median CPU, median peak RSS, rate."""
    lines = []
    for c in contenders:
        walls = [r.wall for r in c.runs]
        rss = statistics.median(r.rss for r in c.runs) / 2**20
        rate = f"  {events / median_wall(c) / 1e6:6.2f} M events/s" if events else ""
        lines.append(
            f"  {c.name:28s} wall {median_wall(c):7.3f} s [{min(walls):.3f}-{max(walls):.3f}]"
            f"  CPU {median_cpu(c):7.3f} s  peak RSS {rss:6.0f} MiB{rate}"
        )
    return lines


def ratio_line(ours: Contender, peer: Contender) -> str:
    """How many times faster ours is than the peer (> 1: faster), wall and CPU."""
    return (
        f"  {peer.name} / {ours.name}: wall {median_wall(peer) / median_wall(ours):.2f}x, "
        f"CPU {median_cpu(peer) / median_cpu(ours):.2f}x (> 1: pmu-replay is faster)"
    )


def machine_line() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"machine: {os.uname().nodename}, {os.cpu_count()} CPUs, load average {load}"


def add_arguments(parser: argparse.ArgumentParser, runs: int = 5) -> None:
    """``--runs`` and ``--baseline``, common to every whole-process benchmark."""
    parser.add_argument("--runs", type=int, default=runs, help="interleaved runs per contender")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also time this checkout's pmu-replay in the same rounds (e.g. the main branch)",
    )


def fresh(path: Path) -> Callable[[], None]:
    """A ``prepare`` step that removes ``path`` (an earlier run's output)."""
    return lambda: shutil.rmtree(path, ignore_errors=True)
