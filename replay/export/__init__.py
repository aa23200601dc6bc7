"""Exports of replay results: Perfetto protobuf traces (:func:`write_perfetto`)."""

from replay.export.perfetto import ExportStats, write_perfetto

__all__ = ["ExportStats", "write_perfetto"]
