"""Where a Perfetto trace lost ftrace data: ``lost_events`` rows.

Three signals place a loss on a CPU, each as a marker just before the first row of a bundle
(``ts``: the CPU's next event at or after it, as for the other formats):

* the bundle's ``lost_events`` flag: the kernel overwrote events of that CPU since the last
  read (kind ``lost``);
* ``previous_bundle_end_timestamp`` (Perfetto v47+) that is not the last event of the CPU's
  previous bundle in the trace, or not 0 on its first: bundles of that CPU are missing, for
  example overwritten in a ring-buffer trace (kind ``missing bundle``);
* ``previous_packet_dropped`` on the bundle's sequence, for bundles without the field above:
  the service lost packets of unknown CPUs, so every CPU gets a marker (kind
  ``dropped packets``).

[protos/perfetto/trace/ftrace/ftrace_event_bundle.proto; trace_packet.proto]
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.bundles import MAX_CPU, RANK_BITS, BundleIndex
from importers.perfetto.runs import grouped, in_trace_order, last_marked, run_starts
from importers.perfetto.sequences import Sequences
from importers.perfetto.wire import I64
from importers.schema import conform

#: the kinds of marker, in the order they win when signals of several kinds mark one bundle
KINDS = ("lost", "missing bundle", "dropped packets")


@dataclass
class Markers:
    """Loss markers, in trace order: CPU, bundle, kind (its place in :data:`KINDS`) and
    ``seq``, just before the bundle's first row."""

    cpu: NDArray[np.int16]
    bundle: I64
    kind: I64
    seq: I64

    @classmethod
    def joined(cls, parts: list[Markers]) -> Markers:
        """The markers of ``parts``, one after the other."""
        empty = cls(np.zeros(0, np.int16), *np.zeros((3, 0), np.int64))
        return cls(*(np.concatenate([getattr(m, f.name) for m in [empty, *parts]])
                     for f in fields(cls)))  # fmt: skip


@dataclass
class Losses:
    """The loss markers of the groups of bundles seen so far (groups arrive in trace order);
    ``last_raw`` carries each CPU's last event time in its own clock (0 before any), indexed
    by CPU (the bundle index holds none at or past ``MAX_CPU``)."""

    cpus: list[int]
    last_raw: I64 = field(default_factory=lambda: np.zeros(MAX_CPU, np.int64))
    markers: list[Markers] = field(default_factory=list)

    def add(self, b: BundleIndex, seqs: Sequences, chosen: I64, last_raw: I64) -> Markers:
        """The losses of bundles ``chosen`` (see module docstring); ``last_raw``: each
        chosen bundle's last event time in its own clock (-1 when it has none)."""
        cpu = b.cpu[chosen]
        order, first = grouped(cpu)
        with_events = last_raw[order] >= 0
        # the last event of the CPU's previous bundle with events, in this group or before
        before = last_marked(with_events, first, strictly_before=True)
        expected = in_trace_order(
            order, np.where(before >= 0, last_raw[order][before], self.last_raw[cpu[order]])
        )
        latest = last_marked(with_events, first)
        carried = np.append(first[1:], True) & (latest >= 0)  # each CPU's last bundle
        self.last_raw[cpu[order][carried]] = last_raw[order][latest[carried]]
        has_end = b.has_previous_end[chosen]
        lost = b.lost[chosen]
        missing = has_end & (b.previous_end[chosen] != expected)
        dropped = chosen[seqs.loss_before[b.packet[chosen]] & ~has_end]
        cpus = np.array(self.cpus, np.int16)
        signals = [  # (CPU, bundle) of each kind
            (cpu[lost], chosen[lost]),
            (cpu[missing], chosen[missing]),
            (np.tile(cpus, dropped.shape[0]), np.repeat(dropped, cpus.shape[0])),
        ]
        at_cpu = np.concatenate([c for c, _ in signals])
        at_bundle = np.concatenate([bundle for _, bundle in signals])
        kind = np.repeat(np.arange(len(KINDS)), [c.shape[0] for c, _ in signals])
        # one marker per CPU and bundle, of the kind listed first in KINDS
        by_place = np.lexsort((kind, at_cpu, at_bundle))
        keep = by_place[run_starts(at_bundle[by_place], at_cpu[by_place])]
        found = Markers(
            at_cpu[keep], at_bundle[keep], kind[keep], at_bundle[keep] * (1 << RANK_BITS) - 1
        )
        self.markers.append(found)
        return found


def lost_events_table(markers: list[Markers], b: BundleIndex, first_ts: I64) -> pa.Table:
    """The ``lost_events`` table: each marker with the time of its CPU's next event (the
    earliest of the first bundle at or after it that has events)."""
    m = Markers.joined(markers)
    # the bundles with events by CPU, then in trace order: a marker's place among them is
    # its CPU's next bundle with events, if that bundle is on its CPU
    with_events = np.flatnonzero(first_ts >= 0)
    with_events = with_events[np.argsort(b.cpu[with_events], kind="stable")]
    place = b.cpu[with_events].astype(np.int64) * b.count + with_events
    at = np.searchsorted(place, m.cpu.astype(np.int64) * b.count + m.bundle)
    found = at < place.shape[0]
    found[found] = b.cpu[with_events[at[found]]] == m.cpu[found]
    ts = np.zeros(found.shape[0], np.int64)
    ts[found] = first_ts[with_events[at[found]]]
    table = pa.table(
        {
            "ts": pa.array(ts, mask=~found),
            "seq": pa.array(m.seq),
            "cpu": pa.array(m.cpu),
            "kind": pa.array(KINDS, pa.string()).take(pa.array(m.kind)).dictionary_encode(),
        }
    )
    return conform("lost_events", table)
