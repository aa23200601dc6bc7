"""A ``compact_sched`` message the importer cannot trust leaves nothing behind: not its
events, not its task names, and not a shift in the names of the messages after it
(:func:`importers.perfetto.bundle_kernels.compact_sched` decodes a group's messages into
shared arrays, so a dropped message must give back the room it took)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from importers.capture import Capture
from importers.detect import load
from tests.importers.perfetto.builder import Builder, compact_switches, compact_wakings

S = 1_000_000_000

REASON = (
    "compact_sched arrays of unequal length or comm index past the intern table (its "
    "events dropped)"
)

# every test here runs on each engine of the byte loops (numba, numpy twins)
pytestmark = pytest.mark.usefixtures("each_engine")


def _imported(tmp_path: Path, t: Builder) -> Capture:
    path = tmp_path / "t.perfetto-trace"
    path.write_bytes(t.bytes())
    return load(path)


@pytest.mark.parametrize("past", [0, 5])
def test_a_comm_index_past_the_intern_table_drops_only_its_message(
    tmp_path: Path, past: int
) -> None:
    t = Builder()
    compact_switches(t.bundle(0), [(1 * S, "a", 100, 1)])
    bad = t.bundle(0)
    compact_switches(bad, [(2 * S, "b", 200, 1), (3 * S, "c", 300, 1)])
    compact_wakings(bad, [(2 * S, "c", 300, 0)])
    # the intern table holds b and c: index 2 is its end, ``past`` further on
    bad.compact_sched.switch_next_comm_index[1] = len(bad.compact_sched.intern_table) + past
    good = t.bundle(0)
    compact_switches(good, [(4 * S, "d", 400, 1)])
    compact_wakings(good, [(4 * S, "a", 100, 0)])
    cap = _imported(tmp_path, t)
    sw = cap.frame("sched_switch").select("ts", "next_pid", pl.col("next_comm").cast(pl.Utf8))
    assert sw.rows() == [(1 * S, 100, "a"), (4 * S, 400, "d")]
    wk = cap.frame("sched_waking").select("ts", "pid", pl.col("comm").cast(pl.Utf8))
    assert wk.rows() == [(4 * S, 100, "a")]
    assert cap.metadata.skipped[REASON]["count"] == 1
    # the dropped message's names are not among the trace's task names either
    names = cap.tables["sched_switch"].column("next_comm").chunks[-1].dictionary
    assert names.to_pylist() == ["a", "d"]
