"""trace-cmd ``trace.dat`` v6 and v7: container, options, pages, records into tables.

The bounds-checked reader and compressed blocks (:mod:`~importers.tracedat.reader`), the
container (:mod:`~importers.tracedat.file`, :mod:`~importers.tracedat.options`), ring-buffer
pages (:mod:`~importers.tracedat.pages`), records into typed tables
(:mod:`~importers.tracedat.events`, :mod:`~importers.tracedat.tables`,
:mod:`~importers.tracedat.printk`), and the importer (:mod:`~importers.tracedat.read`). perf.data
embeds a trace.dat prefix for its tracepoints and reuses these.
"""

from importers.tracedat.read import read_tracedat

__all__ = ["read_tracedat"]
