"""What the kernel's tracing subsystem defines and several containers embed.

Event ``format`` files (:mod:`~importers.tracefs.event_format`), their ``print fmt``
expressions (:mod:`~importers.tracefs.print_fmt`), the vectorised decoding of event fields
from raw record payloads (:mod:`~importers.tracefs.fields`) and the names of the PMU system
registers ``kvm_sys_access`` encodes (:mod:`~importers.tracefs.sysregs`). trace.dat files,
perf.data ``TRACING_DATA`` and ftrace text all lean on these; none of them is a capture format.
"""

from importers.tracefs.event_format import EventFormat, FormatField, parse_event_format

__all__ = ["EventFormat", "FormatField", "parse_event_format"]
