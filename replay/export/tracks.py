"""The tracks of an exported replay: identity (deterministic uuids), names and descriptors.

Layout in the Perfetto UI::

    pmu-replay                          group, first: what the replay found
      stalls: <scenario>                one group per scenario with stall episodes
        <vm> vCPU <n> <counter>         slices: stall episodes, unknown time; instants:
                                        fail-entries, risky zero-delta ticks
      <vm> (VMM process unknown)        a VM whose VMM pid the capture does not give
        vCPU <n> (tid <t>)              as below, without a made-up pid
      host CPU frequency                group, last
        CPU <n> frequency               counter, Hz; only frequencies the capture measured
    <vm> (process, pid = VMM tgid)      one per VM whose VMM pid is known
      vCPU <n> (thread, tid = vCPU thread)  slices: where it ran, guest/host/unknown time
        <scenario> <counter>            counter: the guest-visible value, per scenario

The UI orders top-level tracks by name, and puts processes after them: the one top-level
group, ordered explicitly, keeps the stall tracks first whatever the scenarios are called.

A track's uuid is a hash of its path (the names above), so the same results always give the same
uuids and the same file, whatever order Python iterates in; Python's ``hash()`` of strings is
salted per process and never used.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
    CounterDescriptor,
    TrackDescriptor,
)

from replay.pmu import CYCLE_IDX

#: Linux never hands out pids at or above PID_MAX_LIMIT (2^22, include/linux/threads.h).
PID_MAX_LIMIT = 1 << 22
#: The top-level group holding the stall groups, VMs without a known pid and the frequencies.
ROOT_NAME = "pmu-replay"
#: uuids keep 48 bits: 7-byte varints on every event, and collisions are resolved below.
UUID_BITS = 48


def register_name(counter: int) -> str:
    """The Arm name of guest counter ``counter``: ``PMCCNTR_EL0`` or ``PMEVCNTR<n>_EL0``."""
    return "PMCCNTR_EL0" if counter == CYCLE_IDX else f"PMEVCNTR{counter}_EL0"


def vcpu_label(vm: str, index: int | None, tid: int) -> str:
    """``qemu:4000 vCPU 0``, or the thread id when the vCPU index is unknown."""
    return f"{vm} vCPU {index}" if index is not None else f"{vm} vCPU tid {tid}"


@dataclass
class TrackIds:
    """Deterministic uuids: a hash of each track's path, unique within one export.

    Two paths hashing to the same 48 bits (about one chance in 10^5 at 10^5 tracks) are told
    apart by re-hashing the later one with a counter, so uuids depend only on the paths and the
    (deterministic) order in which tracks are declared.
    """

    _by_path: dict[tuple[str, ...], int] = field(default_factory=dict)
    _used: set[int] = field(default_factory=set)

    def __call__(self, *path: str | int) -> int:
        key = tuple(str(p) for p in path)
        known = self._by_path.get(key)
        if known is not None:
            return known
        salt = 0
        while True:
            text = "\x1f".join(key) + (f"\x1e{salt}" if salt else "")
            digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
            uuid = int.from_bytes(digest, "little") >> (64 - UUID_BITS)
            if uuid and uuid not in self._used:
                break
            salt += 1
        self._by_path[key] = uuid
        self._used.add(uuid)
        return uuid

    def __len__(self) -> int:
        return len(self._by_path)


def vm_pid(vm: str) -> int | None:
    """The VMM's tgid that ``importers.host.vcpus`` puts in names such as ``qemu:4000``, or
    None: a VM without one is not shown as a process (a made-up pid would read as real)."""
    m = re.search(r":(\d+)$", vm)
    if m and 0 < int(m.group(1)) < PID_MAX_LIMIT:
        return int(m.group(1))
    return None


def process_track(uuid: int, pid: int, name: str) -> TrackDescriptor:
    td = TrackDescriptor(uuid=uuid)
    td.process.pid = pid
    td.process.process_name = name
    return td


def thread_track(uuid: int, pid: int, tid: int, name: str) -> TrackDescriptor:
    """A thread track; Perfetto files it under the process with the same ``pid``."""
    td = TrackDescriptor(uuid=uuid)
    td.thread.pid = pid
    td.thread.tid = tid
    td.thread.thread_name = name
    return td


def group_track(
    uuid: int,
    name: str,
    parent: int | None = None,
    rank: int | None = None,
    description: str | None = None,
) -> TrackDescriptor:
    """A named track holding child tracks (and, for stall tracks, slices)."""
    td = TrackDescriptor(uuid=uuid, name=name)
    if description:
        td.description = description
    td.child_ordering = TrackDescriptor.EXPLICIT
    if parent is not None:
        td.parent_uuid = parent
    if rank is not None:
        td.sibling_order_rank = rank
    return td


def counter_track(
    uuid: int,
    name: str,
    parent: int,
    rank: int,
    *,
    unit_name: str | None = None,
    multiplier: int = 1,
    description: str | None = None,
) -> TrackDescriptor:
    """A counter track under ``parent``; counts unless ``unit_name`` says otherwise.

    The trace processor multiplies stored values by ``multiplier`` (kHz samples shown in Hz).
    """
    td = TrackDescriptor(uuid=uuid, name=name, parent_uuid=parent, sibling_order_rank=rank)
    if description:
        td.description = description
    if unit_name is None:
        td.counter.unit = CounterDescriptor.UNIT_COUNT
    else:
        td.counter.unit_name = unit_name
    if multiplier != 1:
        td.counter.unit_multiplier = multiplier
    return td
