"""NumPy's transparent huge pages are off while a Perfetto import runs, and NumPy's own
setting is back afterwards (``importers.perfetto.read._small_pages``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from numpy._core import multiarray

from importers.detect import load
from tests.importers.perfetto.test_real import PIXEL6A

switch = getattr(multiarray, "_set_madvise_hugepage", None)


def _current() -> bool:
    """NumPy's huge-page setting, read by setting it and putting it back."""
    assert switch is not None
    before = bool(switch(False))
    switch(before)
    return before


@pytest.mark.skipif(switch is None, reason="this NumPy has no huge-page switch")
@pytest.mark.parametrize("setting", [True, False])
def test_huge_pages_off_during_the_import_and_restored(shared_traces: Path, setting: bool) -> None:
    assert switch is not None
    previous = switch(setting)
    seen: list[bool] = []
    try:
        load(shared_traces / PIXEL6A, progress=lambda done, total: seen.append(_current()))
        assert seen and not any(seen)  # off for every group of bundles
        assert _current() is setting
    finally:
        switch(previous)
