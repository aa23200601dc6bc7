"""The task spans fold (pid, comm) groups exactly as Arrow's Acero ``Table.group_by`` does.

Below :data:`importers.tasks.GROUP_BY_ROWS` rows, :mod:`importers.tasks` groups by hashing
(``dictionary_encode``), not with ``Table.group_by``, whose first call imports Acero and
``pyarrow.dataset`` (issue 17, start-up time); from it on, with ``group_by``. Both engines
(the threshold moved to make each run) are held to the reference, ``group_by`` itself: min/max of the times, the first non-null ``tgid`` and
``source`` of each group in row order (``use_threads=False``). The order of the groups is not
compared (Acero's, on dictionary keys, is not their order of appearance): ``name_spans``
sorts its result, and ``(pid, comm)`` is unique in it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from importers import tasks
from importers.detect import load
from importers.tasks import NAMED_IN, SPAN_SCHEMA, name_spans, sightings, table_spans

#: GROUP_BY_ROWS making every table go through one engine
ENGINES = {"hashed": 1 << 62, "group_by": 0}


def acero_fold(part: pa.Table) -> pa.Table:
    """One row per (pid, comm), by ``Table.group_by`` (spans: earliest first, nulls first)."""
    if "first_ts" in part.column_names:
        part = part.select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)
        part = part.take(pc.sort_indices(pc.fill_null(part["first_ts"], -(1 << 63))))
        first, last = ("first_ts", "min"), ("last_ts", "max")
    else:
        first, last = ("ts", "min"), ("ts", "max")
    out = part.group_by(["pid", "comm"], use_threads=False).aggregate(
        [("tgid", "first"), ("source", "first"), first, last]
    )
    columns = [
        out["pid"],
        out["tgid_first"],
        out["comm"],
        out["_".join(first)],
        out["_".join(last)],
        out["source_first"],
    ]
    return pa.Table.from_arrays(columns, names=SPAN_SCHEMA.names).cast(SPAN_SCHEMA)


def acero_name_spans(parts: list[pa.Table]) -> pa.Table:
    spans = acero_fold(pa.concat_tables([acero_fold(p) for p in parts if p.num_rows]))
    return spans.sort_by([("pid", "ascending"), ("first_ts", "ascending"), ("comm", "ascending")])


def acero_table_spans(tables: dict[str, pa.Table]) -> list[pa.Table]:
    parts = []
    for name, pid, comm in NAMED_IN:
        if name in tables and tables[name].num_rows:
            named = tables[name].select(["ts", pid, comm]).unify_dictionaries()
            named = named.filter(named[comm].is_valid())
            spans = named.group_by([pid, comm], use_threads=False).aggregate(
                [("ts", "min"), ("ts", "max")]
            )
            n = spans.num_rows
            parts.append(
                pa.table(
                    {
                        "pid": spans[pid].cast(pa.int32()),
                        "tgid": pa.nulls(n, pa.int32()),
                        "comm": spans[comm].cast(pa.string()),
                        "first_ts": spans["ts_min"],
                        "last_ts": spans["ts_max"],
                        "source": pa.repeat(name, n),
                    }
                )
            )
    return parts


def small(values: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), values)


ROW = st.tuples(
    small(st.integers(-2, 4)),  # pid
    small(st.sampled_from(["a", "b", "kworker/0:1", ""])),  # comm
    small(st.integers(0, 3)),  # tgid
    small(st.integers(-5, 5)),  # ts (or first_ts)
    small(st.integers(-5, 5)),  # last_ts of a span
    small(st.sampled_from(["line", "sched_switch", "saved_cmdlines"])),  # source
)


def table_of(rows: list[tuple[object, ...]], spans: bool) -> pa.Table:
    pid, comm, tgid, first, last, source = (list(c) for c in zip(*rows, strict=True))
    times = {"first_ts": first, "last_ts": last} if spans else {"ts": first}
    return pa.table(
        {
            "pid": pa.array(pid, pa.int32()),
            "comm": pa.array(comm, pa.string()),
            "tgid": pa.array(tgid, pa.int32()),
            **{k: pa.array(v, pa.int64()) for k, v in times.items()},
            "source": pa.array(source, pa.string()),
        }
    )


@pytest.mark.parametrize("engine", ENGINES)
@given(
    parts=st.lists(st.lists(ROW, min_size=1, max_size=12), min_size=1, max_size=3),
    spans=st.booleans(),
)
def test_name_spans_fold_like_group_by(
    engine: str, parts: list[list[tuple[object, ...]]], spans: bool
) -> None:
    tables = [table_of(rows, spans) for rows in parts]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks, "GROUP_BY_ROWS", ENGINES[engine])
        folded = name_spans(tables)
    assert folded.equals(acero_name_spans(tables))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "rel",
    [
        "juno-sched-load/trace.dat",
        "exynos-hmp-2014/trace.dat",
        "kvm-x86-hostguest-v7/trace-Salamander4.dat",
        "perfetto-galaxy-j5/trace_file.perfetto-trace",
    ],
)
def test_real_spans_as_group_by_makes_them(
    shared_traces: Path, monkeypatch: pytest.MonkeyPatch, rel: str, engine: str
) -> None:
    """Each typed table's spans are Acero's (in some order), and so are the folded spans."""
    capture = load(shared_traces / rel)
    tables = {name: capture.table(name) for name, _, _ in NAMED_IN}
    monkeypatch.setattr(tasks, "GROUP_BY_ROWS", ENGINES[engine])
    ours, reference = table_spans(tables), acero_table_spans(tables)
    assert len(ours) == len(reference) > 0
    keys = [("pid", "ascending"), ("comm", "ascending")]
    for got, want in zip(ours, reference, strict=True):
        assert got.sort_by(keys).equals(want.sort_by(keys))
    assert name_spans(ours).equals(acero_name_spans(reference))
    # the capture's tasks add the names known from elsewhere (saved cmdlines, process tree)
    assert 0 < name_spans(ours).num_rows <= capture.table("tasks").num_rows


@pytest.mark.parametrize("encoded", [True, False])
@pytest.mark.parametrize("engine", ENGINES)
@given(chunks=st.lists(st.lists(ROW, min_size=1, max_size=12), min_size=1, max_size=3))
def test_sightings_of_chunked_names_fold_as_their_strings(
    engine: str, encoded: bool, chunks: list[list[tuple[object, ...]]]
) -> None:
    """Names come in chunks (text chunks, Perfetto packet groups): a typed table's as
    dictionary columns, each chunk with its own dictionary, a text line's as strings. Their
    sightings (in either engine) fold into the spans Acero makes of the same names joined as
    plain strings."""
    typed = pa.concat_tables(
        [
            pa.table(
                {
                    "ts": table_of(rows, spans=False)["ts"],
                    "pid": table_of(rows, spans=False)["pid"],
                    "comm": (
                        table_of(rows, spans=False)["comm"].dictionary_encode()
                        if encoded
                        else table_of(rows, spans=False)["comm"]
                    ),
                }
            )
            for rows in chunks
        ]
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks, "GROUP_BY_ROWS", ENGINES[engine])
        folded = name_spans([sightings(typed, "pid", "comm", "sched_switch")])
    plain = typed.filter(typed["comm"].is_valid())
    reference = pa.table(
        {
            "pid": plain["pid"],
            "comm": plain["comm"].cast(pa.string()),
            "tgid": pa.nulls(plain.num_rows, pa.int32()),
            "ts": plain["ts"],
            "source": pa.repeat("sched_switch", plain.num_rows),
        }
    )
    named = reference.num_rows > 0  # else every name was null
    assert folded.equals(acero_name_spans([reference]) if named else SPAN_SCHEMA.empty_table())


def _dictionary_holding_null(codes: list[int], values: list[str | None]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values))


EDGE_FRAMES = {
    # polars' Categorical reaches Arrow with uint32 codes
    "polars categorical": lambda: pl.DataFrame(
        {"pid": [1, 2, 1], "comm": ["a", "b", None], "ts": [1, 2, 3]}
    ).with_columns(pl.col("comm").cast(pl.Categorical)),
    # a null among a dictionary's values: Arrow unifies no such dictionaries
    "dictionary holding a null": lambda: pa.table(
        {
            "pid": pa.chunked_array([pa.array([1, 2], pa.int32()), pa.array([2, 2], pa.int32())]),
            "comm": pa.chunked_array(
                [
                    _dictionary_holding_null([0, 1], ["a", None]),
                    _dictionary_holding_null([1, 0], ["b", None]),
                ]
            ),
            "ts": pa.chunked_array([[1, 2], [3, 4]]),
        }
    ),
    # a pid no int32 holds, in a row without a name: never read
    "unnamed row out of range": lambda: pa.table(
        {"pid": pa.array([1, 2, 1 << 40], pa.int64()), "comm": ["a", "b", None], "ts": [1, 2, 3]}
    ),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("frame", EDGE_FRAMES)
def test_sightings_of_odd_name_columns(engine: str, frame: str) -> None:
    """Name columns as other libraries hand them over fold as their strings do: pid 1 was
    ``a`` at 1, pid 2 ``b`` at 2 (or later); unnamed rows count for nothing."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks, "GROUP_BY_ROWS", ENGINES[engine])
        spans = name_spans([sightings(EDGE_FRAMES[frame](), "pid", "comm", "x")])
    assert spans.select(["pid", "comm", "first_ts"]).to_pylist()[:1] == [
        {"pid": 1, "comm": "a", "first_ts": 1}
    ]
    assert [(r["pid"], r["comm"]) for r in spans.to_pylist()] == [(1, "a"), (2, "b")]
