"""Runs: a table's rows grouped side by side (a sequence's packets, a CPU's bundles), each
group keeping its rows in trace order, and the scans over each run that per-sequence and
per-CPU state needs (counts so far, the last row marked so far), all in numpy: a stable sort
and running maxima instead of a data-frame library's window functions.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from importers.perfetto.wire import I64

_T = TypeVar("_T", bound=np.generic)


def grouped(key: NDArray[np.generic]) -> tuple[I64, NDArray[np.bool_]]:
    """The order that puts the rows of each ``key`` side by side (in their own order), and
    where in that order each key's run starts."""
    order = np.argsort(key, kind="stable")
    return order, run_starts(key[order])


def run_starts(*keys: NDArray[np.generic]) -> NDArray[np.bool_]:
    """Where a run of rows equal in every one of ``keys`` starts."""
    starts = np.zeros(keys[0].shape[0], np.bool_)
    starts[:1] = True
    for key in keys:
        starts[1:] |= key[1:] != key[:-1]
    return starts


def counts_so_far(marked: NDArray[np.bool_], starts: NDArray[np.bool_]) -> I64:
    """Per row, the marked rows of its run up to it, itself included."""
    total = np.cumsum(marked, dtype=np.int64)
    return total - (total - marked)[_start_of_run(starts)]


def last_marked(
    marked: NDArray[np.bool_], starts: NDArray[np.bool_], *, strictly_before: bool = False
) -> I64:
    """Per row, the last marked row of its run up to it (itself included unless
    ``strictly_before``); -1 where there is none."""
    last = np.maximum.accumulate(np.where(marked, np.arange(marked.shape[0]), -1))
    if strictly_before:
        last = np.concatenate([[-1], last[:-1]])
    return np.where(last >= _start_of_run(starts), last, -1)


def in_trace_order(order: I64, values: NDArray[_T]) -> NDArray[_T]:
    """``values`` given in ``order`` (of :func:`grouped`) put back in the rows' own order."""
    out = np.empty_like(values)
    out[order] = values
    return out


def _start_of_run(starts: NDArray[np.bool_]) -> I64:
    """Per row, the first row of its run."""
    return np.maximum.accumulate(np.where(starts, np.arange(starts.shape[0]), 0))
