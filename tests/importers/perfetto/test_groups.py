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
from tests.importers.perfetto.builder import Builder, compact_switches, compact_wakings, switch
from tests.importers.perfetto.test_real import GALAXY, PIXEL6A, imported

# every test here runs on each engine of the byte loops (numba, numpy twins)
pytestmark = pytest.mark.usefixtures("each_engine")

#: events per group here: dozens of groups for either capture
SMALL_GROUP = 2000
S = 1_000_000_000


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


@pytest.mark.parametrize("events_per_group", [None, 1])
def test_a_name_seen_first_in_two_tables_at_once_is_credited_in_table_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events_per_group: int | None
) -> None:
    """``tasks.source`` is the table of a name's earliest sighting; at a tie, the first in
    ``importers.tasks.NAMED_IN`` (sched_switch before sched_waking), however the bundles are
    grouped: here the waking's bundle comes first, and with one event a group it is decoded
    in a group of its own, before the switch's."""
    t = Builder()
    compact_wakings(t.bundle(0), [(10 * S, "vcpu", 101, 1)])
    switch(t.bundle(1), 10 * S, ("swapper/1", 0), ("vcpu", 101))
    path = tmp_path / "tie.perfetto-trace"
    path.write_bytes(t.bytes())
    if events_per_group is not None:
        monkeypatch.setattr(bundles, "CHUNK_EVENTS", events_per_group)
    tasks = load(path).table("tasks").to_pylist()
    (vcpu,) = [row for row in tasks if row["pid"] == 101]
    assert (vcpu["comm"], vcpu["first_ts"], vcpu["source"]) == ("vcpu", 10 * S, "sched_switch")


@pytest.mark.parametrize("events_per_group", [None, 1])
def test_plain_and_compact_switches_of_one_group_are_in_trace_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events_per_group: int | None
) -> None:
    """A group's compact rows come after its plain ones in decoding, not in the trace: the
    table is in ``seq`` order (bundle by bundle) whether both bundles are one group or two."""
    t = Builder()
    compact_switches(t.bundle(0), [(5 * S, "a", 100, 1), (6 * S, "b", 200, 1)])
    switch(t.bundle(1), 4 * S, ("swapper/1", 0), ("c", 300))
    path = tmp_path / "mixed.perfetto-trace"
    path.write_bytes(t.bytes())
    if events_per_group is not None:
        monkeypatch.setattr(bundles, "CHUNK_EVENTS", events_per_group)
    table = load(path).table("sched_switch")
    assert table.column("next_pid").to_pylist() == [100, 200, 300]  # bundle 0, then bundle 1
    seq = table.column("seq").to_pylist()
    assert seq == sorted(seq) and len(set(seq)) == 3
