"""Task names a trace records outside ftrace: ``process_tree`` and ``process_stats``.

``process_tree`` lists processes (``pid``, ``ppid``, ``cmdline``) and threads (``tid``,
``tgid``, ``name``, often empty) as ``/proc`` showed them when the packet was written
[protos/perfetto/trace/ps/process_tree.proto]; each becomes a sighting at the packet's time,
so a VMM's vCPU threads (``crosvm_vcpu 0``) are known even when no scheduling event names
them. ``process_stats`` names nobody, but says which threads belong to which process
[protos/perfetto/trace/ps/process_stats.proto]: it gives the ``tgid`` of tasks that lack one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from importers.perfetto.clocks import Clocks
from importers.perfetto.packets import PROCESS_STATS, PROCESS_TREE, TIMESTAMP, Packets
from importers.perfetto.sequences import Sequences
from importers.perfetto.wire import I64, LEN, pick_fields, scan_fields, text_column
from importers.schema import constant_column

# ProcessTree {processes 1, threads 2}; Process {pid 1, ppid 2, cmdline 3};
# Thread {tid 1, name 2, tgid 3}
_PROCESSES, _THREADS = 1, 2
_PID, _CMDLINE = 1, 3
_TID, _NAME, _TGID = 1, 2, 3
# ProcessStats {processes 1}; Process {pid 1, threads 11}; Thread {tid 1}
_STATS_THREADS = 11


def packet_times(p: Packets, seqs: Sequences, clocks: Clocks, packets: I64) -> I64:
    """BOOTTIME of ``packets`` (their own clock, else their sequence's default); -1 where
    the packet has no timestamp or its clock cannot be converted."""
    ts, has, _ = p.last(TIMESTAMP)
    out = np.full(packets.shape[0], -1, np.int64)
    for clock in np.unique(seqs.clock[packets]).tolist():
        mine = (seqs.clock[packets] == clock) & has[packets]
        converted = clocks.to_boot(clock, ts[packets[mine]].view(np.int64))
        if converted is not None:
            out[mine] = converted
    return out


def _children(p: Packets, parent: I64, start: I64, end: I64, number: int) -> tuple[I64, I64, I64]:
    """``parent`` of, start and end of every LEN field ``number`` of the given messages."""
    f = scan_fields(p.data, start, end)
    rows = np.flatnonzero(f.of(number, LEN))
    at = f.at[rows]
    return parent[f.msg[rows]], at, at + f.value[rows].astype(np.int64)


def tree_sightings(p: Packets, seqs: Sequences, clocks: Clocks) -> pa.Table:
    """``pid, comm, tgid, ts, source`` of every named process (its ``cmdline[0]``) and
    thread of every ``process_tree`` packet; ``ts`` null when the packet has none."""
    packet, start, end = p.payload(PROCESS_TREE)
    owner, s, e = _children(p, packet, start, end, _PROCESSES)
    pid, _, _ = pick_fields(p.data, s, e, [_PID])
    f = scan_fields(p.data, s, e)
    rows = np.flatnonzero(f.of(_CMDLINE, LEN))
    named, first = np.unique(f.msg[rows], return_index=True)  # cmdline[0] names the program
    cmd = rows[first]
    processes = _sightings(
        pid[named, 0], f.at[cmd], f.value[cmd].astype(np.int64), pid[named, 0],
        packet_times(p, seqs, clocks, owner[named]), "process_tree cmdline", p,
    )  # fmt: skip
    owner, s, e = _children(p, packet, start, end, _THREADS)
    value, length, _ = pick_fields(p.data, s, e, [_TID, _NAME, _TGID])
    tgid = np.where(length[:, 2] >= 0, value[:, 2], np.uint64(1 << 63))
    threads = _sightings(value[:, 0], value[:, 1].view(np.int64), length[:, 1], tgid,
                         packet_times(p, seqs, clocks, owner), "process_tree", p)  # fmt: skip
    return pa.concat_tables([processes, threads])


def _sightings(
    pid: NDArray[np.uint64],
    name_at: I64,
    name_len: I64,
    tgid: NDArray[np.uint64],
    ts: I64,
    source: str,
    p: Packets,
) -> pa.Table:
    """Sighting rows of named tasks (empty names dropped); ``tgid`` 2**63 and ``ts`` -1 are
    unknown."""
    name = text_column(p.data, name_at, name_len).dictionary_decode()
    signed = tgid.view(np.int64)
    frame = pa.table(
        {
            "pid": pa.array(pid.view(np.int64).astype(np.int32)),
            "comm": name,
            "tgid": pa.array(signed.astype(np.int32), mask=signed < 0),
            "ts": pa.array(ts, mask=ts < 0),
            "source": constant_column(source, ts.shape[0]),
        }
    )
    return frame.filter(pc.not_equal(name, ""))  # a null name compares null: dropped too


def stats_tgids(p: Packets, pids: pa.ChunkedArray) -> pa.Array:
    """The process ``process_stats`` lists each of ``pids`` under (the first one, if several
    do), null where it lists none."""
    packet, start, end = p.payload(PROCESS_STATS)
    _, s, e = _children(p, packet, start, end, _PROCESSES)
    pid, _, _ = pick_fields(p.data, s, e, [_PID])
    process, ts, te = _children(p, np.arange(s.shape[0]), s, e, _STATS_THREADS)
    tid, _, _ = pick_fields(p.data, ts, te, [_TID])
    member, first = np.unique(tid[:, 0].view(np.int64).astype(np.int32), return_index=True)
    wanted = pids.fill_null(0).to_numpy()
    at = np.searchsorted(member, wanted)
    listed = pids.is_valid().to_numpy(zero_copy_only=False) & (at < member.shape[0])
    listed[listed] = member[at[listed]] == wanted[listed]
    tgid = np.zeros(wanted.shape[0], np.int32)
    tgid[listed] = pid[process[first[at[listed]]], 0].view(np.int64).astype(np.int32)
    return pa.array(tgid, mask=~listed)
