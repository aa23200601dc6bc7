"""Importers: every capture format into the canonical Arrow tables of :mod:`importers.schema`.

``Capture``, ``CaptureMetadata`` and ``load`` are loaded on first use: importing a light core
module such as :mod:`importers.errors` (as the command line does before anything else) does not
load polars and pyarrow with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importers.capture import Capture, CaptureMetadata
    from importers.detect import load

__all__ = ["Capture", "CaptureMetadata", "load"]


def __getattr__(name: str) -> object:
    if name in ("Capture", "CaptureMetadata"):
        from importers import capture

        return getattr(capture, name)
    if name == "load":
        from importers.detect import load

        return load
    raise AttributeError(f"module 'importers' has no attribute {name!r}")
