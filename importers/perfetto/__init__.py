"""Perfetto protobuf traces: the ``Trace``/``TracePacket`` stream read with our own wire
decoder (:mod:`~importers.perfetto.wire`), ftrace bundles with plain events and
``compact_sched``, the process tree, system and CPU info, clock snapshots, compressed packets
and sequences' incremental state; put together by :mod:`~importers.perfetto.read`.
"""

from importers.perfetto.read import read_perfetto

__all__ = ["read_perfetto"]
