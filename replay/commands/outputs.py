"""What a run writes: the results directory (``-o DIR``) and the files beside or inside it.

The results directory is whole or absent (:func:`importers.output.whole_directory`). A Perfetto
trace or HTML report asked for inside it (``demo`` always writes both there; ``replay -o cmp
--perfetto cmp/t.perfetto-trace`` may) is written in the same step, into the directory before
it is renamed into place: nothing is added to a finished results directory, so an interrupted
run never leaves one that has some of its files. Files elsewhere are whole files of their own,
written after it. What was written is said once it is in place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from replay.commands.export_cmd import say_exported, write_trace
from replay.commands.report_cmd import say_reported, write_report_timed
from replay.results import Results

#: ``(results, path it is written to) -> say(path it is named by)``, per kind of file.
Writer = Callable[[Results, str], Callable[[str], None]]


def trace_writer(to_stderr: bool) -> Writer:
    """The Perfetto trace (``--perfetto``)."""

    def write(results: Results, path: str) -> Callable[[str], None]:
        stats = write_trace(results, path)
        return lambda name: say_exported(stats, name, to_stderr=to_stderr)

    return write


def report_writer(to_stderr: bool) -> Writer:
    """The HTML report (``--html``)."""

    def write(results: Results, path: str) -> Callable[[str], None]:
        stats, took = write_report_timed(results, path)
        return lambda name: say_reported(stats, took, name, to_stderr=to_stderr)

    return write


def save_all(results: Results, directory: str | None, files: list[tuple[str, Writer]]) -> None:
    """Save ``results`` as ``directory`` (if given) and write ``files`` (path, writer), those
    inside the directory in the same whole-directory step (module docstring)."""
    root = Path(os.path.abspath(directory)) if directory else None
    inside = [(p, w) for p, w in files if root and Path(os.path.abspath(p)).is_relative_to(root)]
    outside = [(p, w) for p, w in files if (p, w) not in inside]
    said: list[tuple[Callable[[str], None], str]] = []

    def in_step(tmp: Path) -> None:
        assert root is not None
        for path, write in inside:
            into = tmp / Path(os.path.abspath(path)).relative_to(root)
            into.parent.mkdir(parents=True, exist_ok=True)
            said.append((write(results, str(into)), path))

    if directory:
        results.save(directory, also=in_step)
    for path, write in outside:
        said.append((write(results, path), path))
    for say, name in said:
        say(name)
