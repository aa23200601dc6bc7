"""Terminal output shared by the subcommands: the console and progress bars.

Progress goes to stderr and only when stderr is a terminal, so piped ``--json`` output stays
clean and tests see no control characters.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console

from importers.detect import ProgressFn

# Piped output (files, CI logs) gets wide tables instead of rich's 80-column default, unless
# COLUMNS says how wide (rich reads it when the width is left to it).
stdout = Console(
    highlight=False, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
)
stderr = Console(stderr=True, highlight=False)


def say(console: Console, text: str, command: str = "") -> None:
    """``text`` wrapped at the console's width between words, never inside one (a path stays
    whole, to be copied, and stays with the word before it: ``wrote PATH``), then ``command``
    on a line of its own, indented and never wrapped."""
    words = text.split()
    lines = [" ".join(words[:2])]
    for word in words[2:]:
        if len(lines[-1]) + 1 + len(word) <= console.width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    for line in [*lines, *([f"  {command}"] if command else [])]:
        console.print(line, soft_wrap=True, markup=False, highlight=False)


@contextmanager
def byte_progress(label: str) -> Iterator[ProgressFn]:
    """A ``(done, total)`` callback drawing a bar for a long read, or doing nothing."""
    if not stderr.is_terminal:
        yield lambda done, total: None
        return
    # rich.progress only where a bar is drawn: ~6 ms of a piped command's start-up (issue 17)
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class Advance(Protocol):
    """Counts one more item; a ``description`` replaces the bar's label."""

    def __call__(self, description: str | None = None) -> None: ...


@contextmanager
def count_progress(label: str, total: int) -> Iterator[Advance]:
    """An N-of-``total`` bar for items of work (scenarios, captures), drawn only on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal) as bar:
        task = bar.add_task(label, total=total)

        def advance(description: str | None = None) -> None:
            bar.update(task, description=description, advance=1)

        yield advance
