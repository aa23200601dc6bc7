"""Helpers for text-capture tests: write a snippet to a file and import it, shift its time."""

from __future__ import annotations

import re
from pathlib import Path

from importers.capture import Capture
from importers.detect import load, sniff
from importers.ftrace.lines import scan_preamble, tokenize
from importers.ftrace.source import open_text


def import_text(tmp_path: Path, text: str, name: str = "trace.txt", **kw: object) -> Capture:
    """Import ``text``; ftrace text must also tokenize alike through the scanner and regex."""
    path = tmp_path / name
    path.write_text(text)
    if sniff(path) == "ftrace-text":
        scanner_agrees_with_regex(path)
    return load(path, **kw)  # type: ignore[arg-type]


def scanner_agrees_with_regex(path: Path) -> None:
    """The byte scanner, in numpy and in numba, and the regex grammar (its reference) tokenize
    every chunk alike."""
    instances: list[str] | None = None
    for chunk in open_text(path, sniff(path), None).chunks:
        if instances is None:
            instances = scan_preamble(bytes(chunk.data[: 1 << 16])).instances
        slow = tokenize(chunk.data, chunk.seq_base, instances, scanner=False)
        for compiled in (False, True):
            fast = tokenize(chunk.data, chunk.seq_base, instances, compiled=compiled)
            assert fast.events.equals(slow.events)
            assert fast.lost.equals(slow.lost)
            assert fast.skipped == slow.skipped


def rows(cap: Capture, table: str) -> list[dict[str, object]]:
    return cap.frame(table).to_dicts()


# An ftrace event line's timestamp: after the CPU field and the optional flags, before ": ".
_TIMESTAMP = re.compile(r"(\] [^ ]* *)(\d+)\.(\d{6}):")


def shift_text(text: str, seconds: int) -> str:
    """Ftrace text with every event timestamp moved by whole ``seconds``."""
    return _TIMESTAMP.sub(lambda m: f"{m[1]}{int(m[2]) + seconds}.{m[3]}:", text)


def split_header(text: str) -> tuple[str, str]:
    """Ftrace text cut before its first event line: the header (tracefs ``#`` lines or
    trace-cmd's ``version``/``cpus``) and the events."""
    first = _TIMESTAMP.search(text)
    cut = text.rfind("\n", 0, first.start()) + 1 if first else len(text)
    return text[:cut], text[cut:]


def span_seconds(events: str) -> int:
    """The whole seconds a copy of ``events`` must be shifted by to start after them."""
    seconds = [int(m[2]) for m in _TIMESTAMP.finditer(events)]
    return seconds[-1] - seconds[0] + 1 if seconds else 0
