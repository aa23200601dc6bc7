"""Where the loops over groups of ftrace bundles put what they decode: the rows of their
output arrays and the fates of ``compact_sched`` messages. Both engines fill the same arrays
(:mod:`~importers.perfetto.bundle_kernels`, :mod:`~importers.perfetto.bundle_kernels_np`),
and their callers read them through these names without importing either engine.
"""

from __future__ import annotations

#: the two sets :func:`~importers.perfetto.bundle_kernels.ftrace_events` puts events in:
#: those of a typed table, the others
TYPED, OTHER = 0, 1
#: rows of its ``wide`` (int64) and ``narrow`` (int32) outputs
TS, SEQ, BODY = 0, 1, 2
PID, KIND, BODY_LEN, BUNDLE = 0, 1, 2, 3

#: what :func:`~importers.perfetto.bundle_kernels.compact_sched` did with a message
KEPT, DAMAGED, INCONSISTENT = 0, 1, 2
