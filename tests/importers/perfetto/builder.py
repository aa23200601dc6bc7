"""Small Perfetto traces for layouts the shared captures do not have, written with the
``perfetto`` package's own message classes (so the wire bytes are protobuf's, not ours):
compressed packets, incremental state, other clocks, loss signals, compact_sched edge cases,
process trees with VMM threads, CPU info."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import zstandard
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
    FtraceEventBundle,
    Trace,
    TracePacket,
)

SEQ = 7  # the ftrace writer's sequence


@dataclass
class Builder:
    """Packets in trace order; ``bytes()`` gives the trace file."""

    packets: list[TracePacket] = field(default_factory=list)

    def packet(self, seq: int = SEQ, **fields: Any) -> TracePacket:
        p = TracePacket()
        p.trusted_packet_sequence_id = seq
        for name, value in fields.items():
            setattr(p, name, value)
        self.packets.append(p)
        return p

    def bundle(self, cpu: int, seq: int = SEQ, **fields: Any) -> FtraceEventBundle:
        b = self.packet(seq).ftrace_events
        b.cpu = cpu
        for name, value in fields.items():
            setattr(b, name, value)
        return b

    def bytes(self) -> bytes:
        t = Trace()
        t.packet.extend(self.packets)
        return t.SerializeToString()

    def compressed(self, keep_first: int = 0, zstd: bool = False) -> bytes:
        """The trace with every packet after the first ``keep_first`` deflated into one
        ``compressed_packets`` packet (as traced does with compression_type DEFLATE), or
        compressed with zstd into ``zstd_compressed_packets``."""
        inner = Trace()
        inner.packet.extend(self.packets[keep_first:])
        outer = Trace()
        outer.packet.extend(self.packets[:keep_first])
        wrapper = outer.packet.add()
        wrapper.trusted_packet_sequence_id = 1
        raw = inner.SerializeToString()
        if zstd:
            wrapper.zstd_compressed_packets = zstandard.ZstdCompressor().compress(raw)
        else:
            wrapper.compressed_packets = zlib.compress(raw)
        return outer.SerializeToString()


def switch(b: FtraceEventBundle, ts: int, prev: tuple[str, int], nxt: tuple[str, int],
           state: int = 1, prio: int = 120) -> None:  # fmt: skip
    """A plain sched_switch event in bundle ``b``, logged by the task switched out."""
    e = b.event.add()
    e.timestamp = ts
    e.pid = prev[1]
    s = e.sched_switch
    s.prev_comm, s.prev_pid, s.prev_prio, s.prev_state = prev[0], prev[1], prio, state
    s.next_comm, s.next_pid, s.next_prio = nxt[0], nxt[1], prio


def _compact(b: FtraceEventBundle, kind: str, rows: list[tuple[int, str, int, int]],
             columns: tuple[str, str], comm: str) -> None:  # fmt: skip
    """Compact rows ``(ts, comm, a, b)`` of ``kind`` (``switch``/``waking``): absolute
    times, delta-encoded; ``a`` and ``b`` go to ``columns``; prio 120."""
    c = b.compact_sched
    names = list(c.intern_table)
    last = 0
    for ts, name, first, second in rows:
        if name not in names:
            names.append(name)
            c.intern_table.append(name)
        getattr(c, f"{kind}_timestamp").append(ts - last)
        last = ts
        getattr(c, f"{kind}_{columns[0]}").append(first)
        getattr(c, f"{kind}_{columns[1]}").append(second)
        getattr(c, f"{kind}_{'next_' if kind == 'switch' else ''}prio").append(120)
        getattr(c, f"{kind}_{comm}").append(names.index(name))


def compact_switches(b: FtraceEventBundle, rows: list[tuple[int, str, int, int]]) -> None:
    """Compact switches ``(ts, next_comm, next_pid, prev_state)``."""
    _compact(b, "switch", rows, ("next_pid", "prev_state"), "next_comm_index")


def compact_wakings(b: FtraceEventBundle, rows: list[tuple[int, str, int, int]]) -> None:
    """Compact wakings ``(ts, comm, pid, target_cpu)``."""
    _compact(b, "waking", rows, ("pid", "target_cpu"), "comm_index")


def idle(b: FtraceEventBundle, ts: int, pid: int, state: int, cpu: int) -> None:
    e = b.event.add()
    e.timestamp = ts
    e.pid = pid
    e.cpu_idle.state = state
    e.cpu_idle.cpu_id = cpu
