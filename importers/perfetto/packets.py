"""The ``TracePacket``s of a Perfetto trace, with compressed packets inflated in place.

A trace file is a ``Trace`` message: nothing but field 1, one ``TracePacket`` each
[protos/perfetto/trace/trace.proto]. A packet may instead carry ``compressed_packets``
(deflate, zlib framing) or ``zstd_compressed_packets``: the bytes of a further ``Trace``,
whose packets take the compressed packet's place in the order
[protos/perfetto/trace/trace_packet.proto; Perfetto never nests them]. Inflated bytes are
appended after the file's bytes, so every packet is a span of one array.

The packet-level fields (timestamp, sequence, flags, which payload) come from one scan of all
packets; the payloads are decoded by the modules that own them.
"""

from __future__ import annotations

import mmap
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zstandard
from numpy.typing import NDArray

from importers.decompress import IN_MEMORY_RATIO, OutputLimit, inflate
from importers.errors import CaptureFormatError
from importers.perfetto.wire import I64, LEN, U8, U64, Fields, last_of, scan_fields
from importers.skips import SkipLog

#: Trace.packet [protos/perfetto/trace/trace.proto]
TRACE_PACKET = 1
# TracePacket fields [protos/perfetto/trace/trace_packet.proto]
FTRACE_EVENTS = 1
PROCESS_TREE = 2
CLOCK_SNAPSHOT = 6
TIMESTAMP = 8
PROCESS_STATS = 9
SEQUENCE_ID = 10  # trusted_packet_sequence_id
INTERNED_DATA = 12
SEQUENCE_FLAGS = 13
FTRACE_STATS = 34
TRACE_STATS = 35
INCREMENTAL_STATE_CLEARED = 41  # deprecated form of SEQ_INCREMENTAL_STATE_CLEARED
PREVIOUS_PACKET_DROPPED = 42
SYSTEM_INFO = 45
COMPRESSED_PACKETS = 50
TIMESTAMP_CLOCK_ID = 58
TRACE_PACKET_DEFAULTS = 59
CPU_INFO = 67
FIRST_PACKET_ON_SEQUENCE = 87
ZSTD_COMPRESSED_PACKETS = 133
#: fields every packet may carry besides its payload (the "data" oneof)
_ENVELOPE = frozenset(
    {3, TIMESTAMP, SEQUENCE_ID, INTERNED_DATA, SEQUENCE_FLAGS, INCREMENTAL_STATE_CLEARED,
     PREVIOUS_PACKET_DROPPED, TIMESTAMP_CLOCK_ID, TRACE_PACKET_DEFAULTS, 79,
     FIRST_PACKET_ON_SEQUENCE, 98}
)  # fmt: skip
#: payload field number -> name, for the packet tally in the metadata (others by number)
PAYLOAD_NAMES = {
    FTRACE_EVENTS: "ftrace_events", PROCESS_TREE: "process_tree", 5: "chrome_events",
    CLOCK_SNAPSHOT: "clock_snapshot", 7: "sys_stats", PROCESS_STATS: "process_stats",
    11: "track_event", 33: "trace_config", FTRACE_STATS: "ftrace_stats",
    TRACE_STATS: "trace_stats", 36: "synchronization_marker", 38: "battery",
    39: "android_log", 40: "power_rails", SYSTEM_INFO: "system_info", 47: "packages_list",
    60: "track_descriptor", 66: "perf_sample", CPU_INFO: "cpu_info", 69: "service_event",
    78: "ui_state",
}  # fmt: skip


@dataclass
class Packets:
    """Every packet, in trace order (inflated ones where their compressed packet was).

    ``origin`` is the file offset of each packet, or of the compressed packet it came from;
    ``fields`` holds the packet-level fields (``fields.msg`` indexes the packets).
    """

    data: U8
    start: I64
    end: I64
    origin: I64
    inflated: NDArray[np.bool_]
    fields: Fields

    @property
    def count(self) -> int:
        return int(self.start.shape[0])

    def last(self, number: int) -> tuple[U64, NDArray[np.bool_], I64]:
        """Per packet: field ``number`` (see :func:`~importers.perfetto.wire.last_of`)."""
        return last_of(self.fields, self.count, number)

    def payload(self, number: int) -> tuple[I64, I64, I64]:
        """``(packet, start, end)`` of every LEN field ``number``, in packet order."""
        rows = np.flatnonzero(self.fields.of(number, LEN))
        at = self.fields.at[rows]
        return self.fields.msg[rows], at, at + self.fields.value[rows].astype(np.int64)

    def where(self, packet: int) -> str:
        """A packet's place for messages: ``offset 0x1f40`` (inside compressed packets)."""
        inside = " (in compressed packets)" if self.inflated[packet] else ""
        return f"offset {int(self.origin[packet]):#x}{inside}"

    def tally(self) -> dict[str, int]:
        """Packets per payload kind (``ftrace_events``: 162, ...), for the metadata."""
        f = self.fields
        payload = ~np.isin(f.number, list(_ENVELOPE))
        kinds = np.full(self.count, -1, np.int64)
        kinds[f.msg[payload]] = f.number[payload]
        numbers, counts = np.unique(kinds, return_counts=True)
        return {
            ("none" if k < 0 else PAYLOAD_NAMES.get(int(k), f"field {int(k)}")): int(c)
            for k, c in zip(numbers.tolist(), counts.tolist(), strict=True)
        }


def map_file(path: Path) -> U8:
    """The file's bytes as a read-only array over a mapping (no copy)."""
    with open(path, "rb") as fh:
        try:
            mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise CaptureFormatError(f"{path}: empty file; nothing to import") from None
    return np.frombuffer(mapping, np.uint8)


def release(data: U8, start: int, end: int) -> None:
    """Give back the memory of ``data[start:end]`` (whole pages inside it) when ``data`` maps
    a file: the pages are read again from the page cache if touched, so this is always
    safe, and the bytes of a large trace are not all resident at once."""
    mapping = getattr(data.base, "obj", None)
    if not isinstance(mapping, mmap.mmap):
        return  # inflated packets: the bytes are a copy in memory
    first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
    last = end // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first:
        mapping.madvise(mmap.MADV_DONTNEED, first, last - first)


def read_packets(data: U8, skips: SkipLog) -> Packets:
    """The packets of the trace in ``data``, compressed ones inflated (see module docstring).

    Raises
    ------
    CaptureFormatError
        When not even the first packet can be read.
    """
    starts, ends = _trace_packets(data, 0, data.shape[0], skips, "")
    if starts.shape[0] == 0:
        raise CaptureFormatError(
            f"{skips.path}: no complete TracePacket at offset 0; not a Perfetto trace, or cut "
            "short before its first packet"
        )
    fields = scan_fields(data, starts, ends)
    zipped = fields.of(COMPRESSED_PACKETS, LEN) | fields.of(ZSTD_COMPRESSED_PACKETS, LEN)
    origin = starts.copy()
    inflated = np.zeros(starts.shape[0], np.bool_)
    if zipped.any():
        data, starts, ends, origin, inflated = _inflate(data, starts, ends, fields, zipped, skips)
        fields = scan_fields(data, starts, ends)
    damaged = np.flatnonzero(fields.damage != -1)
    if damaged.size:
        skips.add(
            "damaged TracePacket (dropped whole)",
            [f"offset {int(fields.damage[m]):#x}" for m in damaged[:5]],
            count=int(damaged.size),
        )
        keep = fields.damage == -1
        starts, ends, origin, inflated = starts[keep], ends[keep], origin[keep], inflated[keep]
        fields = scan_fields(data, starts, ends)
    return Packets(data, starts, ends, origin, inflated, fields)


def _trace_packets(data: U8, start: int, end: int, skips: SkipLog, inside: str) -> tuple[I64, I64]:
    """Spans of the packets of the ``Trace`` at ``data[start:end]``; the rest is counted."""
    f = scan_fields(data, np.array([start], np.int64), np.array([end], np.int64))
    is_packet = f.of(TRACE_PACKET, LEN)
    if (~is_packet).any():
        skips.add(
            "Trace field other than packet (ignored)",
            [f"offset {int(a):#x}{inside}" for a in f.at[~is_packet][:5]],
            count=int((~is_packet).sum()),
        )
    if f.damage[0] != -1:
        skips.add(
            "trace cut short: its last packet is incomplete (dropped)",
            [f"offset {int(f.damage[0]):#x}{inside}"],
        )
    at = f.at[is_packet]
    return at, at + f.value[is_packet].astype(np.int64)


def _inflate(
    data: U8, starts: I64, ends: I64, fields: Fields, zipped: NDArray[np.bool_], skips: SkipLog
) -> tuple[U8, I64, I64, I64, NDArray[np.bool_]]:
    """Replace each compressed packet by the packets it holds (see module docstring)."""
    limit = OutputLimit(f"{skips.path} (compressed packets)", int(data.shape[0]), IN_MEMORY_RATIO)
    blobs: list[U8] = [data]
    size = int(data.shape[0])
    held = np.unique(fields.msg[zipped])
    plain = np.setdiff1d(np.arange(starts.shape[0]), held)
    # (place in the outer order, span start, span end, origin) of every packet, plain first
    place, s, e, origin = [plain], [starts[plain]], [ends[plain]], [starts[plain]]
    for row in np.flatnonzero(zipped).tolist():
        packet = int(fields.msg[row])
        at, length = int(fields.at[row]), int(fields.value[row])
        codec = "zstd" if fields.number[row] == ZSTD_COMPRESSED_PACKETS else "deflate"
        try:
            blob = np.frombuffer(inflate(data[at : at + length].tobytes(), codec, limit), np.uint8)
        except (zlib.error, zstandard.ZstdError) as exc:
            skips.add(f"compressed packets that do not inflate ({exc})", [f"offset {at:#x}"])
            continue
        inner_s, inner_e = _trace_packets(
            blob, 0, blob.shape[0], skips, f" in the compressed packets at {at:#x}"
        )
        place.append(np.full(inner_s.shape[0], packet))
        s.append(inner_s + size)
        e.append(inner_e + size)
        origin.append(np.full(inner_s.shape[0], starts[packet]))
        blobs.append(blob)
        size += int(blob.shape[0])
    places = np.concatenate(place)
    order = np.argsort(places, kind="stable")  # inner packets keep their own order
    return (
        np.concatenate(blobs),
        np.concatenate(s)[order],
        np.concatenate(e)[order],
        np.concatenate(origin)[order].astype(np.int64),
        np.isin(places[order], held),
    )
