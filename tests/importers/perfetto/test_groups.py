"""A trace read as many groups of bundles (decoded side by side, taken in trace order) gives
the tables it gives read as one group, and the same bytes on every run.

Large traces are read in groups of about ``CHUNK_EVENTS`` events
(:func:`importers.perfetto.bundles.groups`); the shared captures fit in one, so here the
groups are made small enough to cut each capture into dozens.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from importers.capture import Capture
from importers.detect import load
from importers.perfetto import bundles
from tests.importers.perfetto.test_real import GALAXY, PIXEL6A, imported

#: events per group here: dozens of groups for either capture
SMALL_GROUP = 2000


def _in_small_groups(path: Path, monkeypatch: pytest.MonkeyPatch) -> Capture:
    with monkeypatch.context() as m:
        m.setattr(bundles, "CHUNK_EVENTS", SMALL_GROUP)
        return load(path)


@pytest.mark.parametrize("name", [PIXEL6A, GALAXY])
def test_small_groups_give_the_tables_of_one(
    shared_traces: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    split = _in_small_groups(shared_traces / name, monkeypatch)
    whole = imported(name)
    # one group by default, dozens here
    assert whole.tables["sched_switch"].column("ts").num_chunks == 1
    assert split.tables["sched_switch"].column("ts").num_chunks > 10
    assert sorted(split.tables) == sorted(whole.tables)
    for table, expected in whole.tables.items():
        got = split.tables[table]
        assert got.num_rows == expected.num_rows, table
        # dictionary columns compared as their strings (chunks carry their own dictionaries)
        assert _plain(got).equals(_plain(expected)), table
    assert split.metadata.skipped == whole.metadata.skipped
    assert split.metadata.extra == whole.metadata.extra


def test_compact_task_names_are_coded_in_trace_order(
    shared_traces: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each name's first place among the bundles' intern tables, read by python-protobuf
    trace = pb.Trace.FromString((shared_traces / PIXEL6A).read_bytes())
    first_seen = list(
        dict.fromkeys(
            name
            for p in trace.packet
            if p.HasField("ftrace_events")
            for name in p.ftrace_events.compact_sched.intern_table
        )
    )
    for _ in range(2):  # the order the groups are decoded in varies from run to run
        split = _in_small_groups(shared_traces / PIXEL6A, monkeypatch)
        for table, column in (("sched_switch", "next_comm"), ("sched_waking", "comm")):
            chunks = split.tables[table].column(column).chunks
            assert len(chunks) > 10
            names = chunks[-1].dictionary.to_pylist()
            assert names == first_seen, (table, column)
            # each group's dictionary is the names known by then: a start of the whole list
            for chunk in chunks:
                known = chunk.dictionary.to_pylist()
                assert known == first_seen[: len(known)]


def _plain(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary columns decoded, in one chunk."""
    columns = [
        c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns
    ]
    return pa.table(columns, names=table.column_names).combine_chunks()
