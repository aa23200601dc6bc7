"""A capture saved while it is imported (``CaptureWriter``): the files ``Capture.save`` writes,
byte for byte, and no directory at all when the import or a write fails."""

from __future__ import annotations

import errno
import json
import random
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from importers import capture, capture_writer
from importers.capture import Capture, CaptureMetadata
from importers.capture_writer import saving
from importers.detect import load
from importers.ftrace import source
from importers.parquet_files import ParquetFileWriter
from importers.perfetto import bundles
from importers.schema import DICT, conform
from importers.tracedat.tables import MODELLED
from tests.importers.perfetto.test_real import GALAXY, PIXEL6A, PIXEL7

#: rows per row group here: parts cross several row-group boundaries
SMALL_ROW_GROUP = 1000


@pytest.fixture
def small_row_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Row groups of :data:`SMALL_ROW_GROUP` rows for ``Capture.save`` and the writer."""
    monkeypatch.setattr(capture, "ROW_GROUP_ROWS", SMALL_ROW_GROUP)
    monkeypatch.setattr(capture_writer, "ROW_GROUP_ROWS", SMALL_ROW_GROUP)


def _meta() -> CaptureMetadata:
    return CaptureMetadata(
        source_path="x.perfetto-trace", source_sha256="0" * 64, format="perfetto", importer="t"
    )


def _events_part(rng: random.Random, first: int, n: int) -> pa.Table:
    """``n`` events rows from seq ``first``; each part's own event-name dictionary."""
    names = rng.sample(["print", "rss_stat", "ion_stat", "sched_blocked_reason"], 3)
    return conform(
        "events",
        pa.table(
            {
                "ts": [1000 * (first + i) for i in range(n)],
                "seq": list(range(first, first + n)),
                "cpu": [rng.randrange(8) for _ in range(n)],
                "common_pid": [rng.randrange(5000) for _ in range(n)],
                "event": pa.array([rng.choice(names) for _ in range(n)]).cast(DICT),
                "payload": [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)],
                "args": [None if rng.random() < 0.5 else f"B|{i}" for i in range(n)],
            }
        ),
    )


def test_parts_written_as_they_come_are_the_file_of_the_whole_table(
    tmp_path: Path, small_row_groups: None
) -> None:
    rng = random.Random(16)
    # part sizes below, at and across row-group boundaries, an empty part among them
    sizes = [1, 999, 1000, 0, 2501, 37, 1463, 4000, 12]
    parts, first = [], 0
    for n in sizes:
        parts.append(_events_part(rng, first, n))
        first += n
    switch = conform(
        "sched_switch", pa.table({"ts": [5], "seq": [0], "cpu": [1], "common_pid": [9]})
    )
    idle = [conform("cpu_idle", pa.table({"ts": [t], "seq": [t], "cpu": [0], "common_pid": [0]}))
            for t in range(7)]  # fmt: skip
    whole = Capture(
        _meta(),
        {
            "events": pa.concat_tables(parts),
            "sched_switch": switch,
            "cpu_idle": pa.concat_tables(idle),
        },
    )
    whole.save(tmp_path / "saved")
    with saving(tmp_path / "streamed") as writer:
        for part in parts:
            writer.append("events", part)
        for part in idle:  # a typed table streamed, not kept
            writer.append("cpu_idle", part)
        streamed = Capture(_meta(), {"sched_switch": switch}, writer.streamed)
        writer.finish(streamed)
    for name in ("events.parquet", "sched_switch.parquet", "cpu_idle.parquet", "metadata.json"):
        assert (tmp_path / "streamed" / name).read_bytes() == (
            tmp_path / "saved" / name
        ).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == [
        "cpu_idle.parquet",
        "events.parquet",
        "metadata.json",
        "sched_switch.parquet",
    ]
    groups = pq.ParquetFile(tmp_path / "streamed" / "events.parquet").metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [1000] * 10 + [
        sum(sizes) - 10_000
    ]
    # what the summary and later readers see of the streamed table
    assert streamed.event_counts() == whole.event_counts()
    assert streamed.table("events").equals(Capture.load(tmp_path / "saved").table("events"))
    assert "events" not in streamed.tables and streamed.streamed["events"].rows == sum(sizes)
    streamed.save(tmp_path / "again")  # a streamed table is read back, not left out
    again = Capture.load(tmp_path / "again").table("events")
    assert again.to_pylist() == whole.tables["events"].to_pylist()


def same_files(saved: Path, streamed: Path) -> list[str]:
    """The names of the files in ``saved``, once each is asserted byte-identical in
    ``streamed`` (which holds no other file)."""
    files = sorted(p.name for p in saved.iterdir())
    assert sorted(p.name for p in streamed.iterdir()) == files
    for file in files:
        assert (streamed / file).read_bytes() == (saved / file).read_bytes(), file
    return files


@pytest.mark.parametrize("name", [PIXEL6A, GALAXY, PIXEL7])
@pytest.mark.parametrize("events_per_group", [None, 2000])
def test_a_perfetto_import_saved_as_it_goes_is_the_saved_import(
    shared_traces: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_row_groups: None,
    name: str,
    events_per_group: int | None,
) -> None:
    if events_per_group is not None:  # dozens of groups, each streamed as it is decoded
        monkeypatch.setattr(bundles, "CHUNK_EVENTS", events_per_group)
    trace = shared_traces / name
    saved = load(trace)
    saved.save(tmp_path / "saved")
    with saving(tmp_path / "streamed") as writer:
        streamed = load(trace, writer=writer)
        assert "events" not in streamed.tables  # written, not kept
        # every decoded table written as it came; those of a row group or more are on disk
        decoded = set(saved.tables) - {"tasks"}
        assert set(writer.streamed) == decoded
        on_disk = {p.stem for p in writer.out.iterdir()}
        assert on_disk == {n for n in decoded if saved.tables[n].num_rows >= SMALL_ROW_GROUP}
        writer.finish(streamed)
    assert "events.parquet" in same_files(tmp_path / "saved", tmp_path / "streamed")
    assert streamed.event_counts() == saved.event_counts()
    assert streamed.metadata == saved.metadata
    assert pq.ParquetFile(tmp_path / "streamed" / "events.parquet").metadata.num_row_groups > 1


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("earlier", [False, True])
def test_an_import_that_fails_mid_stream_leaves_no_capture(
    tmp_path: Path, small_row_groups: None, earlier: bool
) -> None:
    target = tmp_path / "cap"
    if earlier:
        Capture(_meta(), {"events": _events_part(random.Random(1), 0, 10)}).save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()} if earlier else None
    rng = random.Random(2)
    with pytest.raises(Interrupted), saving(target) as writer:
        for k in range(5):
            writer.append("events", _events_part(rng, 1500 * k, 1500))
        assert any(p.suffix == ".partial" for p in tmp_path.iterdir())  # written meanwhile
        raise Interrupted
    # the earlier capture as it was, or nothing; no partial copy beside it, no writer thread
    assert [p.name for p in tmp_path.iterdir()] == (["cap"] if earlier else [])
    assert not [t.name for t in threading.enumerate() if t.name.startswith("parquet")]
    if earlier:
        assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_a_failed_row_group_write_is_an_error_naming_the_capture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_row_groups: None
) -> None:
    writes = 0
    real = ParquetFileWriter.write_table

    def full_disk_on_the_third(self: ParquetFileWriter, table: pa.Table, **kw: object) -> None:
        nonlocal writes
        writes += 1
        if writes == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, table, **kw)

    monkeypatch.setattr(ParquetFileWriter, "write_table", full_disk_on_the_third)
    target = tmp_path / "cap"
    rng = random.Random(3)
    with pytest.raises(OSError, match="No space left on device") as err, saving(target) as w:
        for k in range(10):
            w.append("events", _events_part(rng, 1000 * k, 1000))
        w.finish(Capture(_meta()))
    assert err.value.filename == str(target) and err.value.errno == errno.ENOSPC
    assert writes == 3  # the rows after the failed write were not written
    assert list(tmp_path.iterdir()) == []


def test_a_capture_never_finished_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="capture not finished"), saving(tmp_path / "c") as w:
        w.append("events", _events_part(random.Random(4), 0, 10))
    assert list(tmp_path.iterdir()) == []


def test_a_table_kept_in_memory_is_written_once_and_must_not_change(tmp_path: Path) -> None:
    rng = random.Random(5)
    part, more = _events_part(rng, 0, 10), _events_part(rng, 10, 5)
    with saving(tmp_path / "c") as writer:
        writer.append("events", part)
        writer.append("events", more)
        kept = Capture(_meta(), {"events": pa.concat_tables([part, more])})
        writer.finish(kept)
    assert kept.streamed == {}  # in memory: read from there
    Capture(_meta(), kept.tables).save(tmp_path / "saved")
    for name in ("events.parquet", "metadata.json"):
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "saved" / name).read_bytes()
    refused = pytest.raises(ValueError, match="table events: 10 rows in memory, 15 written")
    with refused, saving(tmp_path / "d") as writer:
        writer.append("events", part)
        writer.append("events", more)
        writer.finish(Capture(_meta(), {"events": part}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "saved"]


def test_pmu_replay_import_streams_a_perfetto_trace(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from replay.cli import main

    trace = shared_traces / PIXEL6A
    assert main(["import", str(trace), "-o", str(tmp_path / "cap"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    whole = load(trace)
    assert summary["events"] == whole.event_counts()
    assert summary["events"]["print"] == whole.tables["events"].column("event").to_pylist().count(
        "print"
    )
    assert summary["first_ts"] == whole.metadata.first_ts
    assert summary["last_ts"] == whole.metadata.last_ts
    assert summary["cpus"] == whole.metadata.cpu_count == 8
    back = Capture.load(tmp_path / "cap")
    assert back.table("events").equals(whole.tables["events"])


def test_parts_are_conformed_to_the_schema_as_save_does(tmp_path: Path) -> None:
    """A part with other column types and order, or columns missing, is cast to the table's
    schema first (as ``Capture.save`` casts a whole table), not refused by the writer."""
    raw = pa.table({"cpu": [1, 2], "seq": [0, 1], "ts": [10, 20], "common_pid": [5, 6]})
    Capture(_meta(), {"cpu_idle": raw}).save(tmp_path / "saved")
    with saving(tmp_path / "streamed") as writer:
        writer.append("cpu_idle", raw.slice(0, 1))
        writer.append("cpu_idle", raw.slice(1))
        writer.finish(Capture(_meta()))
    for name in ("cpu_idle.parquet", "metadata.json"):
        assert (tmp_path / "streamed" / name).read_bytes() == (
            tmp_path / "saved" / name
        ).read_bytes()


@pytest.mark.parametrize(
    "rel",
    [
        "simpleperf-android/perf_with_tracepoint_event.data",  # perf.data tracepoints
        "juno-sched-load/trace.dat",  # v6
        "exynos-hmp-2014/trace.dat",
        "kvm-x86-host-v7-kvmevents/trace.dat",  # v7, compressed sections
        "kvm-x86-hostguest-v7/trace.dat",
    ],
)
def test_a_binary_import_writes_its_decoded_tables_as_it_goes(
    shared_traces: Path, tmp_path: Path, small_row_groups: None, rel: str
) -> None:
    """perf.data's tracepoint tables, and trace.dat's typed tables then ``events``, are handed
    to the writer as soon as they are decoded (their encoding overlaps the rest of the
    import), kept in the capture, and the saved files are those of ``Capture.save``."""
    path = shared_traces / rel
    saved = load(path)
    saved.save(tmp_path / "saved")
    decoded = {n for n in saved.tables if n in MODELLED or n == "events"}
    assert decoded
    with saving(tmp_path / "streamed") as writer:
        streamed = load(path, writer=writer)
        assert set(writer.streamed) == decoded
        assert decoded <= set(streamed.tables)  # kept for the steps after the import
        writer.finish(streamed)
    assert same_files(tmp_path / "saved", tmp_path / "streamed")


@pytest.mark.parametrize(
    ("rel", "chunk_bytes"),
    [
        ("juno-trace-txt/trace.txt", 1 << 14),  # ftrace text, in 28 chunks
        ("kvm-x86-host-report-txt/host_report.txt", 1 << 16),  # trace-cmd report, 25 chunks
        ("trappy-surfaceflinger/trace_systrace.html", 1 << 20),  # systrace, one chunk
    ],
)
def test_a_text_import_writes_each_chunks_tables_as_it_goes(
    shared_traces: Path,
    tmp_path: Path,
    small_row_groups: None,
    monkeypatch: pytest.MonkeyPatch,
    rel: str,
    chunk_bytes: int,
) -> None:
    """Each text chunk's typed tables and events go to the writer as soon as the chunk is
    parsed (row groups cut across chunks), are kept in the capture, and the saved files are
    those of ``Capture.save``."""
    monkeypatch.setattr(source, "CHUNK_BYTES", chunk_bytes)
    path = shared_traces / rel
    saved = load(path)
    saved.save(tmp_path / "saved")
    parsed = {n for n in saved.tables if n not in ("tasks", "lost_events")}
    assert "events" in parsed and len(parsed) > 1
    with saving(tmp_path / "streamed") as writer:
        streamed = load(path, writer=writer)
        assert set(writer.streamed) == parsed
        assert parsed <= set(streamed.tables)
        writer.finish(streamed)
    assert same_files(tmp_path / "saved", tmp_path / "streamed")
