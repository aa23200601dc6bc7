"""perf's captures: ``perf.data`` (file and pipe mode, and simpleperf's), ``perf script``
text and ``perf stat`` CSV/JSON.

perf.data: the container (:mod:`~importers.perf.file`, :mod:`~importers.perf.attr`,
:mod:`~importers.perf.features`), the record walk (:mod:`~importers.perf.records`), sample and
``sample_id`` decoding (:mod:`~importers.perf.samples`, :mod:`~importers.perf.decode`),
tracepoints (:mod:`~importers.perf.tracing`) and tables (:mod:`~importers.perf.tables`), put
together by :mod:`~importers.perf.data`. Text: :mod:`~importers.perf.script` and
:mod:`~importers.perf.stat`.

The importers are loaded on first use (PEP 562): reading a perf.data does not load the text
importers (and polars with them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importers.perf.data import read_perf_data
    from importers.perf.script import read_perf_script
    from importers.perf.stat import read_perf_stat

__all__ = ["read_perf_data", "read_perf_script", "read_perf_stat"]


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module 'importers.perf' has no attribute {name!r}")
    module = {"read_perf_data": "data", "read_perf_script": "script", "read_perf_stat": "stat"}
    return getattr(importlib.import_module(f"importers.perf.{module[name]}"), name)
