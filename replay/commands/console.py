"""Terminal output shared by the subcommands: the console and progress bars.

Progress goes to stderr and only when stderr is a terminal, so piped ``--json`` output stays
clean and tests see no control characters.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from importers.detect import ProgressFn

# Piped output (files, CI logs) gets wide tables instead of rich's 80-column default.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, highlight=False)


@contextmanager
def byte_progress(label: str) -> Iterator[ProgressFn]:
    """A ``(done, total)`` callback drawing a bar for a long read, or doing nothing."""
    if not stderr.is_terminal:
        yield lambda done, total: None
        return
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
