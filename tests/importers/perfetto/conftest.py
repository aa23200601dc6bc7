"""Perfetto's own trace processor for the importer's oracle tests (see tests/perfetto), and the
engines of the Perfetto byte loops for the tests that run on each of them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from importers import byte_loops
from importers.perfetto import kernels_np
from tests.perfetto.conftest import load_trace

__all__ = ["ENGINES", "each_engine", "engine", "load_trace"]

#: the numba kernels; their numpy twins as chosen for a small trace (a few messages read one
#: by one in Python); and the twins stepping every cursor in numpy to the end
ENGINES = ("numba", "numpy", "numpy-stepped")


@contextmanager
def engine(name: str) -> Iterator[None]:
    """Every Perfetto byte loop on engine ``name``, whatever the trace's size."""
    with pytest.MonkeyPatch.context() as patch:
        for limit in ("SMALL_INPUT_BYTES", "SMALL_PERFETTO_BYTES"):
            patch.setattr(byte_loops, limit, -1 if name == "numba" else 1 << 62)
        if name == "numpy-stepped":
            patch.setattr(kernels_np, "FEW", 1)
        yield


@pytest.fixture(scope="module", params=ENGINES)
def each_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """The tests of a module that uses it, run once on each engine (module-scoped, so that
    hypothesis tests may use it too)."""
    with engine(request.param):
        yield request.param
