"""COMPRESSED2 records as ``perf record -z`` writes them: one zstd stream flushed into a record
at a time (``zstd_compress_stream_to_records`` calls ``ZSTD_compressStream2`` with
``ZSTD_e_flush``), so a record of the stream may straddle two COMPRESSED records, and damage
to one of them leaves the rest of the stream undecodable (formats.md §4.3).

The files are written by :mod:`tests.importers.perf.builder`; every expected value is the one
the test wrote.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import zstandard

from importers.perf import records
from tests.importers.perf.abi import PERF_RECORD_COMPRESSED2
from tests.importers.perf.builder import Attr, Writer, bits
from tests.importers.perf.test_data_synthetic import load

#: seven u64 fields: a sample record of 64 bytes
SAMPLE_TYPE = bits("IDENTIFIER", "IP", "TID", "TIME", "ADDR", "CPU", "PERIOD")
SAMPLE_SIZE = 64


def samples(n: int) -> Writer:
    """``n`` samples of one attr: ip ``0x1000 + i`` at time ``100 + i`` on CPU ``i % 4``."""
    w = Writer()
    a = Attr(1, 0, SAMPLE_TYPE, [7])
    w.attrs = [a]
    for i in range(n):
        w.sample(a, ip=0x1000 + i, pid=5, tid=6, time=100 + i, cpu=i % 4, period=1)
    assert all(len(r) == SAMPLE_SIZE for r in w.records)
    return w


def compress_into(w: Writer, cuts: list[int]) -> None:
    """Replace the records by COMPRESSED2 records of one zstd stream, flushed at each byte
    position of ``cuts`` (anywhere, inside a record too)."""
    stream = b"".join(w.records)
    zc = zstandard.ZstdCompressor().compressobj()
    bounds = [0, *cuts, len(stream)]
    frames = [
        zc.compress(stream[a:b]) + zc.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        for a, b in pairwise(bounds)
    ]
    w.records = []
    for frame in frames:
        body = w.p("Q", len(frame)) + frame + bytes(-len(frame) % 8)
        w.record(PERF_RECORD_COMPRESSED2, body)


def test_records_straddling_compressed_records_are_taken_whole(tmp_path: Path) -> None:
    w = samples(40)
    # cuts inside the 3rd, 11th and 30th sample, and one on a record boundary
    compress_into(w, [2 * SAMPLE_SIZE + 5, 10 * SAMPLE_SIZE + 63, 20 * SAMPLE_SIZE,
                      29 * SAMPLE_SIZE + 8])  # fmt: skip
    cap = load(tmp_path, w.file())
    s = cap.frame("pmu_samples")
    assert s["ip"].to_list() == [0x1000 + i for i in range(40)]
    assert s["ts"].to_list() == [100 + i for i in range(40)]
    assert s["cpu"].to_list() == [i % 4 for i in range(40)]
    assert cap.metadata.skipped == {}


def test_a_compressed_record_that_does_not_inflate_loses_the_rest_of_the_stream(
    tmp_path: Path,
) -> None:
    w = samples(12)
    compress_into(w, [4 * SAMPLE_SIZE, 8 * SAMPLE_SIZE])
    first, second, third = w.records
    # the second record's zstd block header says "reserved block type" (3): not a zstd stream
    damaged = second[:16] + bytes([second[16] | 0x06]) + second[17:]
    w.records = [first, damaged, third]
    blob = w.file()
    cap = load(tmp_path, blob)
    assert cap.frame("pmu_samples")["ip"].to_list() == [0x1000 + i for i in range(4)]
    skipped = cap.metadata.skipped
    (reason,) = [r for r in skipped if r.startswith("compressed stream does not inflate (")]
    assert skipped[reason] == {"count": 1, "first": [f"file offset {blob.index(damaged):#x}"]}
    # one COMPRESSED record follows the broken one: counted, at its own offset
    assert skipped["COMPRESSED record after a broken compressed stream"] == {
        "count": 1,
        "first": [f"file offset {blob.index(third):#x}"],
    }
    assert len(skipped) == 2


def test_a_compressed_stream_that_ends_inside_a_record_is_counted(tmp_path: Path) -> None:
    w = samples(6)
    w.records[-1] = w.records[-1][:40]  # the last sample cut: 40 of its 64 bytes
    compress_into(w, [3 * SAMPLE_SIZE + 10])
    cap = load(tmp_path, w.file())
    assert cap.frame("pmu_samples")["ip"].to_list() == [0x1000 + i for i in range(5)]
    assert cap.metadata.skipped == {
        "compressed stream ends inside a record": {
            "count": 1,
            "first": ["end of the data section"],
        }
    }


@pytest.mark.parametrize("n", [1024, 1025])
def test_one_compressed_record_inflates_to_at_most_max_inflate_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    """A record inflating to exactly the limit is taken whole (the last of the stream, so
    nothing the decompressor held back could arrive later); one byte more is refused."""
    limit = 1024 * SAMPLE_SIZE
    monkeypatch.setattr(records, "MAX_INFLATE", limit)
    w = samples(n)
    compress_into(w, [])
    cap = load(tmp_path, w.file())
    ips = cap.frame("pmu_samples")["ip"].to_list()
    if n * SAMPLE_SIZE <= limit:
        assert ips == [0x1000 + i for i in range(n)]
        assert cap.metadata.skipped == {}
    else:
        assert ips == []
        reason = f"compressed stream does not inflate (one record inflates past {limit} bytes)"
        assert list(cap.metadata.skipped) == [reason]
