"""Records whose data lies outside ``header.size``, framed by both engines of the record walk.

TRACING_DATA (66) is ``{header; u32 size}``: perf writes the record with ``header.size`` 16
and the blob after it, padded to 8 bytes (``perf_event__synthesize_tracing_data``);
simpleperf writes the blob inside the record, padded to 64 bytes
(``TracingDataRecord::TracingDataRecord``: ``header.size = 8 + 4 + Align(size, 64)``), so a
blob whose size is a multiple of 64 ends exactly at ``header.size``. AUXTRACE (71) is
``{header; u64 size; ...}`` with ``size`` bytes of trace data after it
(``perf_event__process_auxtrace``). The offsets below are worked out by hand from those
layouts.
"""

from __future__ import annotations

import numpy as np
import pytest

from importers.perf.records import STREAM_OK, walk
from tests.importers.perf.abi import (
    PERF_RECORD_AUXTRACE,
    PERF_RECORD_FINISHED_ROUND,
    PERF_RECORD_HEADER_TRACING_DATA,
)
from tests.importers.test_byte_loops import each_engine


def header(rtype: int, size: int, big: bool) -> bytes:
    e = ">" if big else "<"
    return np.array([rtype], f"{e}u4").tobytes() + np.array([0, size], f"{e}u2").tobytes()


def u32(v: int, big: bool) -> bytes:
    return np.array([v], ">u4" if big else "<u4").tobytes()


@pytest.mark.parametrize("big", [False, True])
def test_tracing_data_inside_or_after_its_record_and_auxtrace_data(big: bool) -> None:
    round_ = header(PERF_RECORD_FINISHED_ROUND, 8, big)
    stream = (
        # simpleperf: a 128-byte blob inside a record of exactly 8 + 4 + 128 bytes
        header(PERF_RECORD_HEADER_TRACING_DATA, 140, big) + u32(128, big) + bytes(128)  # 0
        + round_  # 140
        # perf: a 20-byte blob after a 16-byte record, padded to 24
        + header(PERF_RECORD_HEADER_TRACING_DATA, 16, big) + u32(20, big) + bytes(4)  # 148
        + bytes(24)
        + round_  # 188
        # simpleperf: a 100-byte blob inside 8 + 4 + 128 bytes (padding inside too)
        + header(PERF_RECORD_HEADER_TRACING_DATA, 140, big) + u32(100, big) + bytes(128)  # 196
        # AUXTRACE with 12 bytes of trace data after its 48 bytes
        + header(PERF_RECORD_AUXTRACE, 48, big)  # 336
        + np.array([12], ">u8" if big else "<u8").tobytes() + bytes(32) + bytes(12)
        + round_  # 396
    )  # fmt: skip
    data = np.frombuffer(stream, np.uint8)
    for records, stop, status in each_engine(walk, data, 0, len(stream), big):
        assert (stop, status) == (len(stream), STREAM_OK) == (404, STREAM_OK)
        assert records.offset.tolist() == [0, 140, 148, 188, 196, 336, 396]
        assert records.type.tolist() == [66, 68, 66, 68, 66, 71, 68]
        assert records.size.tolist() == [140, 8, 16, 8, 140, 48, 8]


@pytest.mark.parametrize("big", [False, True])
def test_data_after_a_record_cut_by_the_end_of_the_stream_is_damage(big: bool) -> None:
    """The record fits, the data said to follow it does not: the walk stops at that record
    (STREAM_DAMAGE 3, "record runs past the end of the stream"), as perf stops there."""
    round_ = header(PERF_RECORD_FINISHED_ROUND, 8, big)
    for record, follows in (
        (header(PERF_RECORD_HEADER_TRACING_DATA, 16, big) + u32(20, big) + bytes(4), 24),
        (header(PERF_RECORD_AUXTRACE, 48, big)
         + np.array([12], ">u8" if big else "<u8").tobytes() + bytes(32), 12),
    ):  # fmt: skip
        stream = round_ + record + bytes(follows - 8)  # 8 bytes of its data missing
        data = np.frombuffer(stream, np.uint8)
        for records, stop, status in each_engine(walk, data, 0, len(stream), big):
            assert (stop, status) == (8, 3)
            assert records.offset.tolist() == [0]
