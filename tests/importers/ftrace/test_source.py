"""Chunked reading of plain ftrace text: chunk bounds, line numbers, hashing, page release."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from importers.detect import load, sniff
from importers.errors import CaptureFormatError
from importers.ftrace import source as text_source
from importers.ftrace.source import open_text
from replay.record import RecordError, find_tracefs, tracefs_instance

JUNO = "juno-trace-txt/trace.txt"


def test_small_chunks_cut_on_lines_and_number_them_from_the_file(
    shared_traces: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_traces / JUNO
    whole = path.read_bytes()
    monkeypatch.setattr(text_source, "CHUNK_BYTES", 16 << 10)
    source = open_text(path, "ftrace-text", None)
    chunks = list(source.chunks)
    assert len(chunks) >= len(whole) / (16 << 10)
    assert all(len(c.data) <= 16 << 10 for c in chunks)
    assert b"".join(bytes(c.data) for c in chunks) == whole
    offset = 0
    for chunk in chunks:
        assert bytes(chunk.data).endswith(b"\n")
        assert chunk.first_line == whole.count(b"\n", 0, offset) + 1
        assert chunk.seq_base == chunk.first_line - 1
        offset += len(chunk.data)
    assert source.sha256() == hashlib.sha256(whole).hexdigest()


def test_small_chunks_import_the_same_tables(
    shared_traces: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_traces / JUNO
    reference = load(path)
    monkeypatch.setattr(text_source, "CHUNK_BYTES", 64 << 10)
    chunked = load(path)
    assert sorted(chunked.tables) == sorted(reference.tables)
    for name in reference.tables:
        assert_frame_equal(chunked.frame(name), reference.frame(name))


def test_last_line_without_newline_is_read_and_hashed(tmp_path: Path) -> None:
    text = b"# tracer: nop\n  sh-1 [000] 1.000001: print: a\n  sh-1 [000] 1.000002: print: b"
    path = tmp_path / "trace.txt"
    path.write_bytes(text)
    source = open_text(path, "ftrace-text", None)
    assert b"".join(bytes(c.data) for c in source.chunks) == text + b"\n"
    assert source.sha256() == hashlib.sha256(text).hexdigest()


def test_line_longer_than_a_chunk_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_source, "CHUNK_BYTES", 1 << 10)
    path = tmp_path / "trace.txt"
    path.write_bytes(b"# tracer: nop\n" * 100 + b"x" * 4096 + b"\n")
    with pytest.raises(CaptureFormatError, match=r"trace\.txt:101: a line longer than"):
        list(open_text(path, "ftrace-text", None).chunks)


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


def test_chunks_wait_without_pages_and_give_back_those_they_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = b"  sh-1 [000] 1.000001: print: " + b"x" * 200 + b"\n"
    text = line * (64 << 20 >> 8)  # ~57 MB in ~16 MB chunks
    path = tmp_path / "trace.txt"
    path.write_bytes(text)
    monkeypatch.setattr(text_source, "CHUNK_BYTES", 16 << 20)
    chunks = open_text(path, "ftrace-text", None).chunks
    first = next(chunks)  # (numba's libraries are mapped for the first count of lines)
    before = _rss_file_kib()
    chunk = next(chunks)  # its lines counted: every page read once
    assert _rss_file_kib() - before < 4 << 10  # (2 MiB a chunk stay mapped here)
    start = len(first.data)
    assert bytes(chunk.data) == text[start : start + len(chunk.data)]  # from the page cache
    touched = _rss_file_kib()
    chunk.release()
    released = _rss_file_kib()
    assert touched - before > 12 << 10
    assert touched - released > 12 << 10


@pytest.fixture
def tracefs_trace() -> Iterator[Path]:
    """tracefs's ``trace`` file of a private instance holding half a second of sched_switch."""
    if os.geteuid() != 0:
        pytest.skip("tracefs needs root")
    try:
        root, mounted = find_tracefs()
    except RecordError as exc:
        pytest.skip(f"no tracefs here: {exc}")
    try:
        with tracefs_instance(root, f"pmu-replay-test-{os.getpid()}") as inst:
            (inst / "events/sched/sched_switch/enable").write_text("1")
            for _ in range(20):
                subprocess.run(["sleep", "0.02"], check=True)
            (inst / "tracing_on").write_text("0")
            yield inst / "trace"
    finally:
        if mounted:
            subprocess.run(["umount", str(root)], capture_output=True)


def test_tracefs_trace_file_is_read_though_its_size_is_zero(tracefs_trace: Path) -> None:
    assert tracefs_trace.stat().st_size == 0
    text = tracefs_trace.read_bytes()  # the ring buffer is off: every read gives the same
    switches = sum(b" sched_switch: " in line for line in text.splitlines())
    cap = load(tracefs_trace)
    assert cap.table("sched_switch").num_rows == switches > 20
    assert cap.metadata.source_sha256 == hashlib.sha256(text).hexdigest()


def test_streams_are_refused_without_reading_them(tmp_path: Path) -> None:
    named = tmp_path / "trace_pipe"  # tracefs's trace_pipe blocks until events come, forever
    named.write_text("")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    for path in (named, fifo):
        probe = f"from importers.detect import sniff; sniff({str(path)!r})"
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0 and "a stream, not a file" in done.stderr
    with pytest.raises(CaptureFormatError, match=r"save a stretch of it first"):
        sniff(named)


def _block(lines: list[str], size: int) -> str:
    """``lines`` padded (in the first line's print message) to exactly ``size`` bytes, so that a
    chunk of ``size`` bytes ends exactly after the last of them."""
    text = "\n".join(lines) + "\n"
    pad = size - len(text)
    assert pad >= 0
    return text.replace(": print: ", ": print: " + "x" * pad, 1)


def test_lost_marker_ending_a_chunk_takes_the_next_record_of_its_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marker that ends its chunk is timed by its CPU's first record in the *next* chunk,
    not a later one; a marker no record of its CPU follows keeps no time."""
    size = 1 << 10
    text = (
        _block(
            [
                "# tracer: nop",
                "  sh-5 [000] 1.000000: print: a",
                "  sh-6 [001] 1.000100: print: b",
                "CPU:1 [LOST 7 EVENTS]",
            ],
            size,
        )
        + _block(["  sh-5 [000] 1.000200: print: c", "  sh-6 [001] 1.000300: print: d"], size)
        + _block(["  sh-6 [001] 1.000500: print: e", "CPU:0 [LOST 2 EVENTS]"], size)
    )
    path = tmp_path / "trace.txt"
    path.write_text(text)
    monkeypatch.setattr(text_source, "CHUNK_BYTES", size)
    assert [len(c.data) for c in open_text(path, "ftrace-text", None).chunks] == [size] * 3
    lost = load(path).frame("lost_events")
    assert lost.select("cpu", "count", "ts").rows() == [(1, 7, 1_000_300_000), (0, 2, None)]
