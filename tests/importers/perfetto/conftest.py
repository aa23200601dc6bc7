"""Perfetto's own trace processor for the importer's oracle tests (see tests/perfetto)."""

from tests.perfetto.conftest import load_trace

__all__ = ["load_trace"]
