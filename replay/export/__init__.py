"""Exports of replay results: Perfetto protobuf traces (:func:`write_perfetto`).

The writer (and the Perfetto protobuf classes it needs) loads on first use, so commands that
only touch :mod:`replay.export.viewer` start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replay.export.perfetto import ExportStats, write_perfetto

__all__ = ["ExportStats", "write_perfetto"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from replay.export import perfetto

        return getattr(perfetto, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
