"""The scans over runs (:mod:`importers.perfetto.runs`) against the same scans written as
plain loops over each group's rows, on drawn keys and marks."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from importers.perfetto.runs import (
    counts_so_far,
    grouped,
    in_trace_order,
    last_marked,
    run_starts,
)

rows = st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=40)


def _by_loop(keys: list[int], marks: list[bool]) -> tuple[list[int], list[int], list[int]]:
    """Per row in its own order: marked rows of its key up to it, and the last marked row of
    its key up to it and strictly before it (-1: none), as row numbers of the grouped order."""
    order = sorted(range(len(keys)), key=lambda r: keys[r])
    place = {row: at for at, row in enumerate(order)}
    counts, last, before = [], [], []
    for row, key in enumerate(keys):
        mine = [r for r in range(row + 1) if keys[r] == key and marks[r]]
        counts.append(len(mine))
        last.append(place[mine[-1]] if mine else -1)
        earlier = [r for r in mine if r < row]
        before.append(place[earlier[-1]] if earlier else -1)
    return counts, last, before


@given(rows)
def test_scans_over_runs_match_a_loop_over_each_group(drawn: list[tuple[int, bool]]) -> None:
    keys = np.array([k for k, _ in drawn], np.int64)
    marks = np.array([m for _, m in drawn], np.bool_)
    order, starts = grouped(keys)
    assert order.tolist() == sorted(range(len(drawn)), key=lambda r: drawn[r][0])  # stable
    assert starts.tolist() == [at == 0 or keys[order][at] != keys[order][at - 1]
                               for at in range(len(drawn))]  # fmt: skip
    counts, last, before = _by_loop(keys.tolist(), marks.tolist())
    assert in_trace_order(order, counts_so_far(marks[order], starts)).tolist() == counts
    assert in_trace_order(order, last_marked(marks[order], starts)).tolist() == last
    strictly = last_marked(marks[order], starts, strictly_before=True)
    assert in_trace_order(order, strictly).tolist() == before


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=30))
def test_run_starts_where_any_key_changes(pairs: list[tuple[int, int]]) -> None:
    a = np.array([x for x, _ in pairs], np.int64)
    b = np.array([y for _, y in pairs], np.int64)
    expected = [i == 0 or pairs[i] != pairs[i - 1] for i in range(len(pairs))]
    assert run_starts(a, b).tolist() == expected
