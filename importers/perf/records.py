"""Walk the perf.data record stream into flat arrays, inflating COMPRESSED records.

Every record starts with ``struct perf_event_header {u32 type; u16 misc; u16 size}``
(formats.md §4.3). Two record types extend past ``size``: the pipe-mode TRACING_DATA (66),
whose blob follows the record (perf's ``perf_event__process_tracing_data``; simpleperf
instead embeds it, told apart by ``size >= 12 + blob size``), and AUXTRACE (71), whose
``u64 size`` bytes of trace data follow it. COMPRESSED (81) and COMPRESSED2 (83) records hold
zstd frames of further records; a record may straddle two of them, so the inflated bytes are
one stream walked as each record arrives (perf's ``perf_session__process_compressed_event``
carries the tail the same way).

The walk checks runs of same-sized records at once in numpy, or, for a large stream, is one
compiled loop (two passes: count, then fill); either way a stream of millions of records
costs no Python per record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zstandard
from numpy.typing import NDArray

from importers.byte_loops import compiled
from importers.perf.file import PerfFile
from importers.skips import SkipLog
from importers.tracefs.fields import gather_word, stride_runs

# perf_event_type / perf_user_event_type (formats.md §4.3)
RECORD_NAMES = {
    1: "MMAP", 2: "LOST", 3: "COMM", 4: "EXIT", 5: "THROTTLE", 6: "UNTHROTTLE", 7: "FORK",
    8: "READ", 9: "SAMPLE", 10: "MMAP2", 11: "AUX", 12: "ITRACE_START", 13: "LOST_SAMPLES",
    14: "SWITCH", 15: "SWITCH_CPU_WIDE", 16: "NAMESPACES", 17: "KSYMBOL", 18: "BPF_EVENT",
    19: "CGROUP", 20: "TEXT_POKE", 21: "AUX_OUTPUT_HW_ID", 64: "ATTR",
    65: "EVENT_TYPE", 66: "TRACING_DATA", 67: "BUILD_ID",
    68: "FINISHED_ROUND", 69: "ID_INDEX", 70: "AUXTRACE_INFO", 71: "AUXTRACE",
    72: "AUXTRACE_ERROR", 73: "THREAD_MAP", 74: "CPU_MAP", 75: "STAT_CONFIG", 76: "STAT",
    77: "STAT_ROUND", 78: "EVENT_UPDATE", 79: "TIME_CONV", 80: "FEATURE",
    81: "COMPRESSED", 82: "FINISHED_INIT", 83: "COMPRESSED2",
}  # fmt: skip
# simpleperf's own record types (system/extras simpleperf/record.h: after
# SIMPLE_PERF_RECORD_TYPE_START = 32768, which is no record itself)
SIMPLEPERF_RECORD_NAMES = {
    32769: "KERNEL_SYMBOL", 32770: "DSO", 32771: "SYMBOL", 32772: "SPLIT", 32773: "SPLIT_END",
    32774: "EVENT_ID", 32775: "CALLCHAIN", 32776: "UNWINDING_RESULT", 32777: "TRACING_DATA",
    32778: "DEBUG",
}  # fmt: skip
#: every record type perf or simpleperf writes; any other is counted, never silently ignored
KNOWN_TYPES = np.array(sorted({*RECORD_NAMES, *SIMPLEPERF_RECORD_NAMES}), np.uint32)
LOST, COMM, EXIT, FORK, READ, SAMPLE = 2, 3, 4, 7, 8, 9
LOST_SAMPLES, SWITCH, SWITCH_CPU_WIDE = 13, 14, 15
HEADER_ATTR, TRACING_DATA, FINISHED_ROUND, EVENT_UPDATE, HEADER_FEATURE = 64, 66, 68, 78, 80
COMPRESSED, COMPRESSED2 = 81, 83
#: kernel record types: below PERF_RECORD_USER_TYPE_START, they carry sample_id_all trailers
USER_TYPE_START = 64

#: walk status codes (index into :data:`STREAM_DAMAGE`)
STREAM_OK = 0
STREAM_DAMAGE = (
    "",
    "record header cut off by the end of the stream",
    "record size smaller than its 8-byte header",
    "record runs past the end of the stream",
)
#: an inflated COMPRESSED record larger than this (or perf's own mmap_len) is corrupt
MAX_INFLATE = 1 << 28


@dataclass
class RecordStream:
    """Every record in processing order (compressed ones followed by what they held).

    ``data`` is the file's bytes, followed by the inflated COMPRESSED payloads when there are
    any; ``offset`` points into it. ``inflated`` is True for records that came out of a
    COMPRESSED record (their offsets are past the file).
    """

    data: NDArray[np.uint8]
    offset: NDArray[np.int64]
    type: NDArray[np.uint32]
    misc: NDArray[np.uint16]
    size: NDArray[np.int32]
    inflated: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.offset.shape[0])


def walk(d: NDArray[np.uint8], start: int, end: int, big: bool) -> tuple[RecordStream, int, int]:
    """Records of ``d[start:end]``: the stream, where the walk stopped, and the status.

    Small streams are walked in numpy, large ones by the compiled kernel
    (:mod:`importers.byte_loops`), in two passes (count, then fill).
    """
    if not compiled(end - start):
        at, sizes, stop, status = _walk_numpy(d, start, end, big)
        runs = stride_runs(at)  # records of one sample type follow each other at its size
        rtype = gather_word(d, at, 0, 4, big, runs)
        second = gather_word(d, at, 4, 4, big, runs)  # {u16 misc, u16 size}
        misc = (second >> 16 if big else second & 0xFFFF).astype(np.uint16)
        inflated = np.zeros(len(at), bool)
        return RecordStream(d, at, rtype, misc, sizes.astype(np.int32), inflated), stop, status
    from importers.perf.kernels_jit import walk as walk_jit

    e64, e32, e16 = np.empty(0, np.int64), np.empty(0, np.uint32), np.empty(0, np.uint16)
    n, _, _ = walk_jit(d, start, end, big, e64, e32, e16, np.empty(0, np.int32), False)
    offset, rtype = np.empty(n, np.int64), np.empty(n, np.uint32)
    misc, size = np.empty(n, np.uint16), np.empty(n, np.int32)
    _, stop, status = walk_jit(d, start, end, big, offset, rtype, misc, size, True)
    return RecordStream(d, offset, rtype, misc, size, np.zeros(n, bool)), stop, status


def _walk_numpy(
    d: NDArray[np.uint8], start: int, end: int, big: bool
) -> tuple[NDArray[np.int64], NDArray[np.int64], int, int]:
    """Offsets and sizes of the records of ``d[start:end]``, where the walk stopped, status.

    Each record's size says where the next one starts. The walk guesses that the records
    ahead have the size of the last one taken, reads all their headers at once and takes them
    up to the first that differs (another size, data past its size, a damaged header); that
    one is taken on its own, as the compiled walk takes every record, and the run's size is
    guessed again after it. Streams are long runs of same-sized samples, so the steps are few.
    """
    e = ">" if big else "<"
    offsets: list[NDArray[np.int64]] = []
    sizes: list[NDArray[np.int64]] = []
    pos, size, ahead = start, 0, 64
    while pos < end:
        run = 0
        if size:  # the run ahead, at most `ahead` records of `size` bytes
            guess = np.arange(pos, min(end, pos + ahead * size), size, dtype=np.int64)
            rsize, extra = _sizes(d, guess, end, e)
            same = (end - guess >= 8) & (rsize == size) & (extra == 0) & (guess + size <= end)
            run = len(guess) if same.all() else int(np.argmin(same))
            offsets.append(guess[:run])
            sizes.append(np.full(run, size, np.int64))
            pos = int(guess[run - 1]) + size if run else pos
            if run == len(guess):
                ahead *= 2
                continue
            ahead = max(64, ahead // 2)
        rsize, extra = _sizes(d, np.array([pos], np.int64), end, e)
        this, more = int(rsize[0]), int(extra[0])
        status = (
            1 if end - pos < 8
            else 2 if this < 8
            else 3 if pos + this > end or more < 0 or pos + this + more > end
            else STREAM_OK
        )  # fmt: skip
        if status != STREAM_OK:
            return _joined(offsets), _joined(sizes), pos, status
        offsets.append(np.array([pos], np.int64))
        sizes.append(np.array([this], np.int64))
        pos = pos + this + more
        # a run broken by one odd record (perf's FINISHED_ROUND after each round of samples)
        # goes on after it: the run's size stays the guess; else this record's size is
        if not run:
            size = this
    return _joined(offsets), _joined(sizes), pos, STREAM_OK


def _sizes(
    d: NDArray[np.uint8], at: NDArray[np.int64], end: int, e: str
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Size of the records at ``at`` and the data that follows each past its size.

    TRACING_DATA's blob follows the record when the record does not hold it (perf, rounded up
    to 8 bytes); AUXTRACE's ``u64 size`` bytes always follow (negative: a huge size, damage).
    Fields past ``end`` read as zeros, and only decide records the checks refuse anyway.
    """
    if len(at) and not (at & 3).any() and at.min() >= 0 and at.max() + 8 <= end:
        # the usual case (records are 8-byte aligned): the header's two u32 words read from
        # one word view of the data, without a (len(at), 8) byte matrix
        words = d[: end // 4 * 4].view(f"{e}u4")
        rtype, second = words[at >> 2].astype(np.int64), words[(at >> 2) + 1].astype(np.int64)
    else:
        head = _words(d, at, 8, f"{e}u4", end).astype(np.int64)
        rtype, second = head[:, 0], head[:, 1]
    rsize = second & 0xFFFF if e == ">" else second >> 16
    extra = np.zeros(len(at), np.int64)
    tracing = np.flatnonzero((rtype == 66) & (rsize >= 12))
    if len(tracing):  # the blob's size, a u32 after the header
        blob = _words(d, at[tracing] + 8, 4, f"{e}u4", end)[:, 0].astype(np.int64)
        extra[tracing] = np.where(rsize[tracing] < 12 + blob, (blob + 7) // 8 * 8, 0)
    aux = np.flatnonzero((rtype == 71) & (rsize >= 16))
    if len(aux):  # the trace data's size, a u64 after the header
        size = _words(d, at[aux] + 8, 8, f"{e}u8", end)[:, 0]
        # in native order before the view: a big-endian word viewed as int64 reads byte-swapped
        extra[aux] = size.astype(np.uint64).view(np.int64)
    return rsize, extra


def _words(
    d: NDArray[np.uint8], at: NDArray[np.int64], width: int, dtype: str, end: int | None = None
) -> NDArray[np.unsignedinteger]:
    """The ``width`` bytes at each of ``at`` as words of ``dtype``, zeros past ``end``."""
    limit = len(d) if end is None else end
    whole = (at >= 0) & (at + width <= limit)
    if len(at) and whole.all():  # the usual case: each a window of the data
        rows = np.lib.stride_tricks.sliding_window_view(d[:limit], width)[at]
    else:
        rows = np.zeros((len(at), width), np.uint8)
        if whole.any():
            rows[whole] = np.lib.stride_tricks.sliding_window_view(d[:limit], width)[at[whole]]
        for k in np.flatnonzero(~whole & (at < limit) & (at >= 0)).tolist():  # cut by the end
            part = d[at[k] : limit]
            rows[k, : len(part)] = part
    words: NDArray[np.unsignedinteger] = rows.view(dtype)
    return words


def _joined(parts: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def read_stream(pf: PerfFile, skips: SkipLog, mmap_len: int | None) -> RecordStream:
    """Walk the data section, inflating COMPRESSED records in place.

    Damage (a record size that breaks the chain) ends the walk: what follows cannot be
    framed, so it is counted as one skip with the offset, as ``perf report`` stops there too.
    """
    r = pf.reader
    file_bytes = np.frombuffer(r.buf, np.uint8)
    start, end = pf.data.offset, pf.data.offset + pf.data.size
    top, stop, status = walk(file_bytes, start, end, pf.big_endian)
    if status != STREAM_OK:
        skips.add(
            f"record stream damaged, rest of the data section skipped: {STREAM_DAMAGE[status]}",
            [f"file offset {stop:#x}"],
            count=1,
        )
    packed = np.flatnonzero((top.type == COMPRESSED) | (top.type == COMPRESSED2))
    if not len(packed):
        return top
    return _inflate(pf, top, packed, skips, mmap_len)


def _inflate(
    pf: PerfFile,
    top: RecordStream,
    packed: NDArray[np.intp],
    skips: SkipLog,
    mmap_len: int | None,
) -> RecordStream:
    r = pf.reader
    outputs: list[bytes] = []
    base = r.size  # inflated bytes are appended after the file in ``data``
    tail = b""
    parts: list[RecordStream] = []
    prev = 0
    # perf compresses with ZSTD_flushStream, not ZSTD_e_end: one zstd stream runs across all
    # COMPRESSED records, so one decompressor must see them in order. Its output buffer is
    # larger than what one record holds (perf's mmap_len), so each write drains completely.
    sink = _Sink(MAX_INFLATE)
    chunk = min(MAX_INFLATE, max(mmap_len or 0, 1 << 22)) + 1
    zstd = zstandard.ZstdDecompressor().stream_writer(sink, write_size=chunk)  # type: ignore[arg-type]
    inflated = 0
    broken: list[int] = []
    for i in packed.tolist():
        parts.append(_slice(top, prev, i + 1))
        prev = i + 1
        off, size = int(top.offset[i]), int(top.size[i])
        if broken:
            broken.append(off)
            continue
        head = 8 if top.type[i] == COMPRESSED else 16
        length = size - head
        if top.type[i] == COMPRESSED2 and size >= 16:
            length = min(length, r.u64(off + 8))
        sink.parts.clear()
        sink.total = 0
        try:
            zstd.write(bytes(r.buf[off + head : off + head + max(0, length)]))
        except (zstandard.ZstdError, ValueError) as exc:
            skips.add(f"compressed stream does not inflate ({exc})", [f"file offset {off:#x}"])
            broken.append(off)
            continue
        out = b"".join(sink.parts)
        segment = np.frombuffer(tail + out, np.uint8)
        seg_base = base + inflated - len(tail)
        outputs.append(out)
        inflated += len(out)
        inner, stop, _ = walk(segment, 0, len(segment), pf.big_endian)
        inner.offset += seg_base
        inner.inflated[:] = True
        parts.append(inner)
        tail = bytes(segment[stop:])
    parts.append(_slice(top, prev, len(top)))
    if len(broken) > 1:
        skips.add(
            "COMPRESSED record after a broken compressed stream",
            [f"file offset {o:#x}" for o in broken[1:6]],
            count=len(broken) - 1,
        )
    if tail:
        skips.add("compressed stream ends inside a record", ["end of the data section"])
    data = np.concatenate([top.data, np.frombuffer(b"".join(outputs), np.uint8)])
    cat = np.concatenate
    return RecordStream(
        data,
        cat([p.offset for p in parts]),
        cat([p.type for p in parts]),
        cat([p.misc for p in parts]),
        cat([p.size for p in parts]),
        cat([p.inflated for p in parts]),
    )


def _slice(s: RecordStream, a: int, b: int) -> RecordStream:
    return RecordStream(
        s.data, s.offset[a:b], s.type[a:b], s.misc[a:b], s.size[a:b], s.inflated[a:b]
    )


class _Sink:
    """Collects one record's inflated bytes; refuses more than ``cap`` (a zstd bomb)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.total = 0

    def write(self, data: bytes) -> int:
        self.total += len(data)
        if self.total > self.cap:
            raise ValueError(f"one record inflates past {self.cap} bytes")
        self.parts.append(bytes(data))
        return len(data)


def delivery_order(stream: RecordStream, ts: NDArray[np.int64]) -> NDArray[np.intp]:
    """Record indices in the order ``perf script`` / ``perf report`` deliver them.

    perf queues every record that has a timestamp and flushes the queue at each
    FINISHED_ROUND up to the largest timestamp seen before the *previous* round
    (``ordered_events__flush`` with ``OE_FLUSH__ROUND``: ``next_flush = max_timestamp``
    after each flush), then everything at the end; within a flush, records go by timestamp,
    ties in arrival order. Records without a timestamp (``ts`` 0 or -1: no sample_id_all)
    are delivered on arrival (``ordered_events__queue`` returns ``-ETIME``).
    """
    n = len(stream)
    rounds = np.cumsum(stream.type == FINISHED_ROUND) - (stream.type == FINISHED_ROUND)
    timed = ts > 0
    n_rounds = int(np.count_nonzero(stream.type == FINISHED_ROUND))
    # threshold used by flush j: max ts of timed records that arrived before round j-1 ended
    if n_rounds:
        per_round = np.full(n_rounds + 1, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(per_round, rounds[timed], ts[timed])
        seen = np.maximum.accumulate(per_round)
        threshold = np.concatenate([np.zeros(1, np.int64), seen[: n_rounds - 1]])
        first_ok = np.searchsorted(threshold, ts, side="left")
        flush = np.maximum(rounds, first_ok)
    else:
        flush = np.zeros(n, np.int64)
    # slots: immediate records of round r -> 2r, flush j -> 2j+1 (the final flush is 2R+1)
    slot = np.where(timed, 2 * np.minimum(flush, n_rounds) + 1, 2 * rounds)
    key_ts = np.where(timed, ts, 0)
    # by time (stable: arrival order on ties; timsort on nearly sorted input), then by slot
    # (stable, a radix sort when the slots fit 16 bits)
    by_ts = np.argsort(key_ts, kind="stable")
    slots = slot[by_ts]
    if n_rounds < 1 << 14:
        slots = slots.astype(np.uint16)
    order: NDArray[np.intp] = by_ts[np.argsort(slots, kind="stable")]
    return order
