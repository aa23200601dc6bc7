"""Helpers for text-capture tests: write a snippet to a file and import it."""

from __future__ import annotations

from pathlib import Path

from importers.capture import Capture
from importers.detect import load


def import_text(tmp_path: Path, text: str, name: str = "trace.txt", **kw: object) -> Capture:
    path = tmp_path / name
    path.write_text(text)
    return load(path, **kw)  # type: ignore[arg-type]


def rows(cap: Capture, table: str) -> list[dict[str, object]]:
    return cap.frame(table).to_dicts()
