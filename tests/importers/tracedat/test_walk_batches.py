"""The numpy page walk a batch of pages at a time gives the walk of all pages at once.

The batches bound the memory the walk's steps hold (``pages.WALK_PAGES`` pages each); their
records are joined by :meth:`Records.concat`, which consumes its parts an array at a time.
The property runs on the arbitrary pages of the byte-loop tests (damaged pages included),
with batches of one page and up.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importers.tracedat import pages
from importers.tracedat.pages import PageLayout, Records
from tests.importers.test_byte_loops import ENGINES, PAGE, engine
from tests.importers.test_byte_loops import pages as page_bytes


@settings(deadline=None)
@given(page_bytes(), st.integers(1, 3))
def test_a_walk_in_batches_is_the_walk_at_once(
    case: tuple[bytes, PageLayout, int], batch: int
) -> None:
    raw, layout, n = case
    data = np.frombuffer(raw, np.uint8)
    starts = np.arange(n, dtype=np.int64) * PAGE
    ends = np.minimum(starts + PAGE, len(raw))
    whole, status, missed = pages._walk_numpy(data, starts, ends, layout)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pages, "WALK_PAGES", batch)
        batched, b_status, b_missed = pages._walk_numpy_batches(data, starts, ends, layout)
    for ours, theirs in zip(batched.arrays(), whole.arrays(), strict=True):
        assert np.asarray(ours).dtype == np.asarray(theirs).dtype
        assert np.asarray(ours).tolist() == np.asarray(theirs).tolist()
    assert b_status.tolist() == status.tolist() and b_missed.tolist() == missed.tolist()


def test_no_pages_walked_in_batches_is_the_walk_at_once() -> None:
    layout = PageLayout(PAGE, 8, 8, 16, False)
    data = np.zeros(PAGE, np.uint8)
    none = np.zeros(0, np.int64)
    whole, status, missed = pages._walk_numpy(data, none, none, layout)
    batched, b_status, b_missed = pages._walk_numpy_batches(data, none, none, layout)
    assert [(a.dtype, len(a)) for a in batched.arrays()] == [(a.dtype, 0) for a in whole.arrays()]
    assert (b_status.dtype, b_missed.dtype) == (status.dtype, missed.dtype)
    assert len(b_status) == len(b_missed) == 0


@pytest.mark.parametrize("name", ENGINES)
def test_the_walks_records_are_as_narrow_as_documented(name: str) -> None:
    """The record arrays are held for every record of a capture: ts and offset int64, length
    and page int32, type uint16 (:class:`Records`), from either engine."""
    layout = PageLayout(PAGE, 8, 8, 16, False)
    data = np.zeros(2 * PAGE, np.uint8)
    data[8] = 8  # page 0 commits 8 bytes: one data record (type_len 1) of 4 bytes
    data[16] = 1
    starts = np.array([0, PAGE], np.int64)
    with engine(name):
        records, status, _ = pages.walk_pages(data, starts, starts + PAGE, layout)
    assert [a.dtype for a in records.arrays()] == [
        np.dtype(np.int64), np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.int32),
        np.dtype(np.uint16),
    ]  # fmt: skip
    assert len(records.ts) == 1 and status.tolist() == [0, 0]


def test_concat_joins_the_parts_and_lets_go_of_them() -> None:
    parts = [
        Records(
            np.arange(k, dtype=np.int64) + 10 * k,
            np.arange(k, dtype=np.int64) * 4,
            np.full(k, k, np.int32),
            np.full(k, k, np.int32),
            np.full(k, k, np.uint16),
        )
        for k in (2, 0, 3)
    ]
    expected = [np.concatenate(a).tolist() for a in zip(*(p.arrays() for p in parts), strict=True)]
    joined = Records.concat(parts)
    assert [a.tolist() for a in joined.arrays()] == expected
    assert [a.dtype for a in joined.arrays()] == [a.dtype for a in parts[0].arrays()]
    assert all(len(a) == 0 for p in parts for a in p.arrays())
