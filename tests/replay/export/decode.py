"""Read an exported trace back with perfetto's generated protobuf classes (not our encoder)."""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent


@dataclass(frozen=True)
class Event:
    ts: int
    track: str  # the track's name path, e.g. "stalls: default@cpu0/qemu:4000 vCPU 0 cycles"
    type: str
    name: str | None
    value: float | None
    args: tuple[tuple[str, Any], ...]


def read_trace(path: Path) -> Trace:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    trace = Trace()
    trace.ParseFromString(data)
    return trace


def track_names(trace: Trace) -> dict[int, str]:
    """uuid -> name path (thread tracks by thread name, process tracks by process name)."""
    own: dict[int, tuple[str, int]] = {}
    for p in trace.packet:
        if p.HasField("track_descriptor"):
            td = p.track_descriptor
            name = td.name or td.thread.thread_name or td.process.process_name
            own[td.uuid] = (name, td.parent_uuid)

    def path(uuid: int) -> str:
        name, parent = own[uuid]
        return f"{path(parent)}/{name}" if parent else name

    return {uuid: path(uuid) for uuid in own}


def events(trace: Trace) -> list[Event]:
    """Every TrackEvent with interned names resolved, in file order."""
    names = track_names(trace)
    interned: dict[str, dict[int, str]] = {"event": {}, "arg": {}, "str": {}}
    out = []
    for p in trace.packet:
        if p.HasField("interned_data"):
            d = p.interned_data
            interned["event"].update({e.iid: e.name for e in d.event_names})
            interned["arg"].update({e.iid: e.name for e in d.debug_annotation_names})
            interned["str"].update(
                {e.iid: e.str.decode() for e in d.debug_annotation_string_values}
            )
        if not p.HasField("track_event"):
            continue
        e = p.track_event
        args = []
        for a in e.debug_annotations:
            key = interned["arg"][a.name_iid]
            if a.HasField("string_value_iid"):
                args.append((key, interned["str"][a.string_value_iid]))
            else:
                args.append((key, a.int_value))
        value: float | None = None
        if e.HasField("counter_value"):
            value = e.counter_value
        elif e.HasField("double_counter_value"):
            value = e.double_counter_value
        out.append(
            Event(
                ts=p.timestamp,
                track=names[e.track_uuid],
                type=TrackEvent.Type.Name(e.type),
                name=interned["event"].get(e.name_iid) if e.name_iid else None,
                value=value,
                args=tuple(sorted(args)),
            )
        )
    return out


def event_counts(trace: Trace) -> Counter[Event]:
    return Counter(events(trace))
