"""Row order of the result tables: sorting them, and runs of consecutive rows.

The engine gives observations in one order (:func:`replay.work.finish_observations`): a block
of rows per scenario, vCPU and counter, each block in time order. A detector's group (a stall
episode, an entry window, a guest tick) is then a *run* of consecutive rows, found by
comparing each row with the one before it, so no row is hashed or sorted on its string keys.
The result tables are sorted once, by :func:`sort_rows`.

Why not polars' ``group_by`` and ``sort``: on a compare of 2 M sched events (6.9 M observation
rows, benchmarks/bench_replay.py) they took 20 of its 25 s; a multi-column ``DataFrame.sort``
of 1.4 M tick rows took 7-9 s on this 2-core machine, numpy's ``lexsort`` of the same rows
over integer codes 1.3 s, and the runs below a few tenths of a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray


def sort_rows(frame: pl.DataFrame, by: Sequence[str], nulls_last: bool = False) -> pl.DataFrame:
    """``frame.sort(by, nulls_last=...)``: the same rows in the same order, ties kept in input
    order (a stable sort).

    Each key becomes integer codes in its sort order (a string column's codes are the ranks
    of its distinct values; a null sorts first, or last with ``nulls_last``) and numpy's
    ``lexsort`` orders the rows.
    """
    if frame.height < 2:
        return frame
    keys = [_codes(frame.get_column(name), nulls_last) for name in reversed(by)]
    return frame[np.lexsort(keys)]


def _codes(column: pl.Series, nulls_last: bool) -> NDArray[np.int64]:
    if column.dtype == pl.Utf8:
        values = column.unique().drop_nulls().sort()
        column = column.cast(pl.Enum(values.to_list())).to_physical()
    codes = column.cast(pl.Int64)
    if column.null_count():
        present = codes.drop_nulls()
        low, high = (present.min(), present.max()) if len(present) else (0, 0)
        # past either end of the values present: no real value takes the null's place
        codes = codes.fill_null(int(high) + 1 if nulls_last else int(low) - 1)  # type: ignore[arg-type]
    return codes.to_numpy()


def rows_where(frame: pl.DataFrame, mask: pl.Series) -> pl.DataFrame:
    """``frame.filter(mask)``, without the copy when every row is kept.

    A filter copies the columns it keeps even when it keeps every row; a profile whose
    guest reads one counter keeps every observation row for it, 3 GB of them on a compare of
    10 M sched events.
    """
    return frame if mask.all() else frame.filter(mask)


def run_starts(frame: pl.DataFrame, columns: Sequence[str]) -> pl.Series:
    """True on each row whose ``columns`` differ from the previous row's, and on the first.

    Nulls compare equal, as ``group_by`` groups them.
    """
    changed = [pl.col(c).ne_missing(pl.col(c).shift(1)) for c in columns]
    starts = frame.select(pl.any_horizontal(*changed).alias("starts")).get_column("starts")
    # the first row set afterwards: a null there equals the shifted-in null
    return starts.scatter(0, True) if len(starts) else starts


def in_blocks(
    frame: pl.DataFrame, key: Sequence[str], by: Sequence[str]
) -> tuple[pl.DataFrame, pl.Series]:
    """``frame`` with the rows of each ``key`` together, each block in ``by`` order, and
    where each block starts (:func:`run_starts` of ``key``).

    The engine's observations already are (one comparison per row checks it, and they are
    returned as they are); a table built otherwise (by hand, or reordered) is sorted by
    ``key`` then ``by``.
    """
    starts = run_starts(frame, key)
    if _distinct(frame.filter(starts).select(key)) and not (by and _steps_back(frame, by, ~starts)):
        return frame, starts
    ordered = sort_rows(frame, [*key, *by])
    return ordered, run_starts(ordered, key)


def _distinct(heads: pl.DataFrame) -> bool:
    """Whether no two rows of ``heads`` (run starts, so no two neighbours are equal) are
    equal: rows that never step back in key order are, and only others are hashed (millions
    of refused entries' keys took seconds to hash)."""
    after_first = pl.Series(np.arange(heads.height) > 0)
    return not _steps_back(heads, heads.columns, after_first) or (heads.n_unique() == heads.height)


def _steps_back(frame: pl.DataFrame, by: Sequence[str], within: pl.Series) -> bool:
    """Whether a ``within`` row comes before the previous row in ``by`` order (a null: yes)."""
    backwards = pl.lit(False)
    for name in reversed(by):  # lexicographic: an earlier column decides, equality defers
        now, before = pl.col(name), pl.col(name).shift(1)
        backwards = (now < before) | ((now == before) & backwards)
    steps = frame.select(backwards.fill_null(True).alias("back")).get_column("back")
    return bool((steps & within).any())


def blocks_in_order(frame: pl.DataFrame, block: str, heads: pl.DataFrame) -> pl.DataFrame:
    """``frame``'s blocks of rows reordered by their keys, each block's rows kept in order.

    ``block`` numbers each row's block from 1 (a running count of block starts); ``heads``
    holds the key of block 1, 2, ... in its rows, in the order to sort by (nulls first).
    """
    if frame.height < 2:
        return frame
    rank = np.empty(heads.height + 1, np.int64)
    rank[sort_rows(heads.with_row_index("_block", 1), heads.columns)["_block"].to_numpy()] = (
        np.arange(heads.height)
    )
    rows = rank[frame.get_column(block).to_numpy()]
    return frame[np.argsort(rows, kind="stable")]


def run_totals(
    rows: pl.DataFrame, starts: pl.Series, first: Sequence[str], last: Sequence[str],
    sums: dict[str, pl.Expr],
) -> pl.DataFrame:  # fmt: skip
    """One row per run of ``rows`` (``starts`` marks each run's first row): the ``first``
    columns of its first row, the ``last`` columns of its last row, and ``sums`` (name ->
    expression over ``rows``) summed over the run.

    The same as ``group_by(run, maintain_order=True)`` with ``first()``, ``last()`` and
    ``sum()`` aggregates (a null adds nothing), summed in 64-bit integers by numpy's
    ``add.reduceat`` over the runs' first rows: nanoseconds and cycle counts of a replay stay
    far below 2**63. (Running totals, the earlier way, allocated three copies of every summed
    column: 3 GB on the 34 M observation rows of a 10 M-event compare.)
    """
    if rows.is_empty():
        return rows.select(*first, *last, *(e.alias(n) for n, e in sums.items()))
    ends = starts.shift(-1, fill_value=True)
    heads = np.flatnonzero(starts.to_numpy())
    values = rows.select(e.fill_null(0).alias(n) for n, e in sums.items())
    totals = pl.DataFrame(
        {
            n: np.add.reduceat(v.to_numpy(), heads, dtype=np.int64)
            for n, v in values.to_dict().items()
        }
    )
    # the columns chosen before the rows: a filter copies every column it is given
    ends_of = [rows.select(c).filter(m) for c, m in ((first, starts), (last, ends)) if c]
    return pl.concat([*ends_of, totals], how="horizontal")
