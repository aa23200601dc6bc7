"""perf's captures: ``perf.data`` (file and pipe mode, and simpleperf's), ``perf script``
text and ``perf stat`` CSV/JSON.

perf.data: the container (:mod:`~importers.perf.file`, :mod:`~importers.perf.attr`,
:mod:`~importers.perf.features`), the record walk (:mod:`~importers.perf.records`), sample and
``sample_id`` decoding (:mod:`~importers.perf.samples`, :mod:`~importers.perf.decode`),
tracepoints (:mod:`~importers.perf.tracing`) and tables (:mod:`~importers.perf.tables`), put
together by :mod:`~importers.perf.data`. Text: :mod:`~importers.perf.script` and
:mod:`~importers.perf.stat`.
"""

from importers.perf.data import read_perf_data
from importers.perf.script import read_perf_script
from importers.perf.stat import read_perf_stat

__all__ = ["read_perf_data", "read_perf_script", "read_perf_stat"]
