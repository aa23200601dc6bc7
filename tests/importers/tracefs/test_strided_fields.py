"""Records at one stride are read as strided views (``fields.stride_runs``), and the views give
exactly what a gather of every row gives.

perf copies ring buffers into the file a chunk at a time, so the samples of one event lie in
runs at the sample's size apart; each run is read as one view. The property tests compare the
views with the row-by-row gather on arbitrary bytes, rows past the end included, with the
shortest run lowered so that a few rows make runs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importers.perf import records, samples
from importers.perf.data import read_perf_data
from importers.tracefs import fields
from tests.conftest import SHARED_TRACES

#: the modules that look for runs
READERS = (fields, samples, records)
#: the shared perf.data captures with runs of same-sized samples (3 893 samples of one attr;
#: the other captures' samples are too few or carry callchains of every length, so no view
#: would be read and the comparison could not fail)
IN_RUNS = ["quipper-perfdata/perf.data.armv7-3.4"]


def runs_of(*parts: tuple[int, int, int]) -> np.ndarray:
    """Rows of runs given as (first row, stride, count)."""
    return np.concatenate([first + stride * np.arange(n) for first, stride, n in parts])


def test_stride_runs_are_the_rows_between_breaks_of_the_common_stride() -> None:
    n = fields.MIN_ROWS_PER_RUN
    rows = runs_of((0, 128, n), (200_000, 128, n), (500_000, 128, 2 * n))
    runs = fields.stride_runs(rows)
    assert runs == fields.StrideRuns(128, [0, n, 2 * n, 4 * n])


def test_an_odd_row_inside_a_run_breaks_it_into_three() -> None:
    n = fields.MIN_ROWS_PER_RUN
    rows = runs_of((0, 64, 2 * n), (64 * 2 * n + 8, 64, 1), (64 * 2 * n + 200, 64, 2 * n))
    runs = fields.stride_runs(rows)
    assert runs is not None
    assert runs.stride == 64
    # the odd row is a run of its own: its step differs from the stride before and after it
    assert runs.bounds == [0, 2 * n, 2 * n + 1, 4 * n + 1]


@pytest.mark.parametrize(
    "rows",
    [
        np.arange(fields.MIN_ROWS_PER_RUN - 1) * 8,  # too few rows to pay
        np.random.default_rng(7).permutation(np.arange(4096) * 8),  # scattered (delivery order)
        np.zeros(4096, np.int64),  # no stride
        np.arange(4096)[::-1] * 8,  # descending
        runs_of(*((k * 10_000, 16, 512) for k in range(8))),  # runs shorter than the minimum
    ],
    ids=["few", "scattered", "same-row", "descending", "short-runs"],
)
def test_rows_that_do_not_pay_for_views_have_no_runs(rows: np.ndarray) -> None:
    assert fields.stride_runs(rows.astype(np.int64)) is None


@st.composite
def strided_rows(draw: st.DrawFn) -> tuple[bytes, np.ndarray]:
    """Arbitrary bytes and runs of rows at one stride, some reaching past the end."""
    raw = draw(st.binary(min_size=1, max_size=400))
    stride = draw(st.integers(1, 40))
    parts = [
        (draw(st.integers(-4, len(raw) + 4)), stride, draw(st.integers(1, 12)))
        for _ in range(draw(st.integers(1, 4)))
    ]
    return raw, runs_of(*parts).astype(np.int64)


@settings(deadline=None)
@given(strided_rows(), st.integers(0, 9), st.sampled_from([1, 2, 4, 8]), st.booleans())
def test_strided_views_read_what_the_gather_reads(
    case: tuple[bytes, np.ndarray], start: int, size: int, big: bool
) -> None:
    raw, rows = case
    data = np.frombuffer(raw, np.uint8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fields, "MIN_ROWS_PER_RUN", 1)
        runs = fields.stride_runs(rows)
    pairs = [
        (fields.gather_word(data, rows, start, size, big, runs),
         fields.gather_word(data, rows, start, size, big)),
        (fields.gather_uint(data, rows, start, size, big, runs),
         fields.gather_uint(data, rows, start, size, big)),
        (fields.gather_matrix(data, rows, start, size + 3, runs),
         fields.gather_matrix(data, rows, start, size + 3)),
    ]  # fmt: skip
    for viewed, gathered in pairs:
        assert viewed.dtype == gathered.dtype
        assert np.array_equal(viewed, gathered)


@pytest.mark.parametrize("rel", IN_RUNS)
def test_perf_data_imports_the_same_without_views(rel: str) -> None:
    """A shared perf.data whose samples lie in runs gives the same capture with the views
    turned off; runs of a few records already count as runs, so that it is read through
    views (the test fails if none was)."""
    path = SHARED_TRACES / rel
    found = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fields, "MIN_ROWS_PER_RUN", 4)
        stride_runs = fields.stride_runs

        def counted(rows: np.ndarray) -> fields.StrideRuns | None:
            found.append(stride_runs(rows))
            return found[-1]

        for module in READERS:
            patch.setattr(module, "stride_runs", counted)
        viewed = read_perf_data(path)
    assert any(found), "no record was read through a view"
    with pytest.MonkeyPatch.context() as patch:
        for module in READERS:
            patch.setattr(module, "stride_runs", lambda rows: None)
        gathered = read_perf_data(path)
    assert viewed.metadata == gathered.metadata
    assert viewed.tables.keys() == gathered.tables.keys()
    for name, table in viewed.tables.items():
        assert table.equals(gathered.tables[name]), name
