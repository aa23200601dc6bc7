"""The ``events`` payload column, its common fields, and the page buffer that gives pages back
as they are copied.

The column is checked against plain slicing of the bytes (with view windows of a few bytes,
so that rows are addressed through many of them), the common fields against reading
each record with its own format in Python; the page buffer against the rule it
exists for (a page goes back to the kernel only once no row still to be copied lies in it)
and against the kernel's own account of the mapping (``/proc/self/smaps``).
"""

from __future__ import annotations

import mmap
import platform
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from importers import binary_views
from importers.arrow_compute import cast
from importers.detect import load
from importers.tracedat import payload
from importers.tracedat.buffer import PageBuffer
from importers.tracedat.events import _common_fields
from importers.tracedat.payload import payload_column
from importers.tracefs.event_format import parse_event_format

PAGE = mmap.PAGESIZE


def reference(raw: bytes, starts: list[int], lengths: list[int]) -> list[bytes]:
    """The column's values as plain Python would cut them."""
    return [raw[s : s + n] for s, n in zip(starts, lengths, strict=True)]


@st.composite
def rows(draw: st.DrawFn) -> tuple[bytes, list[int], list[int]]:
    """Rows of a byte buffer: 4-byte aligned and sized like ring-buffer records, or anywhere
    and any length like perf's raw samples; some held in their view (12 bytes or fewer)."""
    raw = draw(st.binary(min_size=0, max_size=600))  # shorter than a word, too
    aligned = draw(st.booleans())
    unit = 4 if aligned else 1
    n = draw(st.integers(0, 40))
    starts, lengths = [], []
    for _ in range(n):
        start = draw(st.integers(0, len(raw) // unit)) * unit
        starts.append(start)
        lengths.append(draw(st.integers(0, (len(raw) - start) // unit)) * unit)
    return raw, starts, lengths


@settings(deadline=None)
@given(rows(), st.sampled_from([1, 3, 1 << 16]), st.sampled_from([1, 8, 100, 1 << 31]))
@example(case=(bytes(range(40)), [4, 1, 30], [20, 13, 10]), step_rows=2, window=8)  # past windows
def test_payload_column_is_the_rows_bytes_in_row_order(
    case: tuple[bytes, list[int], list[int]], step_rows: int, window: int
) -> None:
    raw, starts, lengths = case

    def checked_cast(views: pa.Array, target: pa.DataType) -> pa.Array:
        views.validate(full=True)  # every view lies inside its buffer and shows its prefix
        return cast(views, target)

    with pytest.MonkeyPatch.context() as patch:  # steps of a few rows, windows of a few bytes
        patch.setattr(payload, "ROWS", step_rows)
        patch.setattr(binary_views, "WINDOW", window)
        patch.setattr(payload, "cast", checked_cast)
        column = payload_column(
            np.frombuffer(raw, np.uint8),
            np.array(starts, np.int64),
            np.array(lengths, np.int32),
        )
    assert column.type == pa.large_binary()
    assert column.to_pylist() == reference(raw, starts, lengths)
    assert column.num_chunks == -(-len(starts) // step_rows)


class Spy(PageBuffer):
    """A page buffer that records what it gives back, and when."""

    copied: int = 0
    given_back: list[tuple[int, int, int]]

    def consumed(self, offsets: NDArray[np.int64]) -> None:
        self.copied += len(offsets)
        super().consumed(offsets)

    def release(self, start: int, end: int) -> None:
        self.given_back.append((self.copied, start, end))
        super().release(start, end)


@settings(deadline=None)
@given(st.data())
def test_a_page_goes_back_once_no_row_still_to_copy_lies_in_it(draw: st.DataObject) -> None:
    npages = draw.draw(st.integers(1, 6))
    raw = bytes(np.random.default_rng(npages).integers(1, 256, npages * PAGE, np.uint8))
    n = draw.draw(st.integers(0, 30))
    starts = [draw.draw(st.integers(0, len(raw) // 4 - 2)) * 4 for _ in range(n)]
    lengths = [4 * draw.draw(st.integers(1, min(8, (PAGE - s % PAGE) // 4))) for s in starts]
    pages = Spy.anonymous(len(raw))
    assert isinstance(pages, Spy)
    pages.given_back = []
    pages.array[:] = np.frombuffer(raw, np.uint8)
    page_starts = np.arange(npages, dtype=np.int64) * PAGE
    pages.track(page_starts, page_starts + PAGE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(payload, "ROWS", draw.draw(st.sampled_from([1, 2, 5])))
        column = payload_column(
            pages.array, np.array(starts, np.int64), np.array(lengths, np.int32), pages
        )
    assert column.to_pylist() == reference(raw, starts, lengths)  # nothing read after release
    for copied, start, end in pages.given_back:
        assert not any(start <= s < end for s in starts[copied:])
    if starts:  # every page is given back by the end, and reads as zeros since
        released = np.zeros(len(raw), bool)
        for _, start, end in pages.given_back:
            released[start:end] = True
        assert released.all()
        assert not pages.array.any()


def resident_kib(array: NDArray[np.uint8]) -> int:
    """Rss of the mapping that holds ``array`` (with any the kernel merged it with)."""
    address = array.ctypes.data
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            low, high = (int(x, 16) for x in head.split("-"))
            inside = low <= address < high
        elif inside and head == "Rss:":
            return int(line.split()[1])
    raise AssertionError("mapping not found")


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/self/smaps")
def test_released_pages_leave_the_process() -> None:
    pages = PageBuffer.anonymous(64 * PAGE)
    pages.array[:] = 1
    before = resident_kib(pages.array)
    pages.release(PAGE // 2, 40 * PAGE + 1)  # whole pages only: 1..39
    assert before - resident_kib(pages.array) == 39 * PAGE // 1024
    assert pages.array[:PAGE].all() and pages.array[40 * PAGE :].all()
    assert not pages.array[PAGE : 40 * PAGE].any()


def test_an_imported_capture_keeps_none_of_its_pages(
    shared_traces: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After importing a compressed capture, every inflated page has been given back (reads
    as zeros), and the tables hold every event of it."""
    kept: list[PageBuffer] = []
    anonymous = PageBuffer.anonymous.__func__  # type: ignore[attr-defined]

    def keep(cls: type[PageBuffer], size: int) -> PageBuffer:
        kept.append(anonymous(cls, size))
        return kept[-1]

    monkeypatch.setattr(PageBuffer, "anonymous", classmethod(keep))
    capture = load(shared_traces / "kvm-x86-hostguest-v7/trace-Salamander4.dat")
    assert sum(capture.event_counts().values()) == 90029  # traces/README.md
    assert len(kept) == 1 and len(kept[0].array) > 1 << 20
    assert not kept[0].array.any()


def format_text(tid: int, common: list[tuple[str, int, int]]) -> str:
    """An event format with the ``common`` fields (name, offset, size) it is drawn with."""
    lines = "".join(
        f"\tfield:int {name};\toffset:{offset};\tsize:{size};\tsigned:1;\n"
        for name, offset, size in common
    )
    return f'name: e{tid}\nID: {tid}\nformat:\n{lines}\nprint fmt: ""\n'


COMMON = (("common_pid", 4), ("common_flags", 1), ("common_preempt_count", 1))


@settings(deadline=None)
@given(st.data(), st.booleans())
def test_common_fields_are_read_by_each_records_own_format(draw: st.DataObject, big: bool) -> None:
    """Each record's common_pid (int32), common_flags and common_preempt_count, at its own
    format's offsets; 0 for a field the format lacks or that runs past the record's end."""
    formats = {}
    for tid in (1, 2, 3):  # each format has some of the fields, anywhere in its first 12 bytes
        common = [
            (name, draw.draw(st.integers(0, 12 - size)), size)
            for name, size in COMMON
            if draw.draw(st.booleans())
        ]
        formats[tid] = parse_event_format(format_text(tid, common))
    raw, starts, lengths = draw.draw(rows())
    types = [draw.draw(st.sampled_from([1, 2, 3])) for _ in starts]
    t = np.array(types, np.uint16)
    pid, flags, preempt = _common_fields(
        formats,
        t,
        np.frombuffer(raw, np.uint8),
        np.array(starts, np.int64),
        np.array(lengths, np.int32),
        big,
    )
    expected: dict[str, list[int]] = {name: [] for name, _ in COMMON}
    for i, tid in enumerate(types):
        record = raw[starts[i] : starts[i] + lengths[i]]
        for name, size in COMMON:
            field = formats[tid].field(name)
            inside = field is not None and field.offset + size <= len(record)
            value = record[field.offset : field.offset + size] if field and inside else b""
            expected[name].append(
                int.from_bytes(value, "big" if big else "little", signed=size == 4)
            )
    assert pid.dtype == np.int32 and pid.tolist() == expected["common_pid"]
    assert flags.dtype == np.uint8 and flags.tolist() == expected["common_flags"]
    assert preempt.dtype == np.uint8 and preempt.tolist() == expected["common_preempt_count"]
