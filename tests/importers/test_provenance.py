"""A capture names the format it was read as and the importer that read it: the entry of
:data:`importers.detect.IMPORTERS` that ``load`` dispatched to for that format."""

from __future__ import annotations

from pathlib import Path

import pytest

from importers.detect import IMPORTERS, load, sniff
from tests.conftest import ROOT

CAPTURES = [
    "fixtures/captures/perf-stat-interval.csv",
    "fixtures/captures/perf-stat-per-cpu.json",
]
SHARED = [
    "quipper-perfdata/perf.data.armv7-3.4",
    "juno-sched-load/trace.dat",
    "flamegraph-perf-script/perf-cycles-instructions-01.txt",
]
# not the ftrace text importer: it names itself "importers.ftrace.text 1"


@pytest.mark.parametrize("path", [*(ROOT / c for c in CAPTURES), *SHARED], ids=str)
def test_a_capture_names_its_format_and_the_importer_that_read_it(
    shared_traces: Path, path: Path | str
) -> None:
    path = path if isinstance(path, Path) else shared_traces / path
    fmt = sniff(path)
    meta = load(path).metadata
    assert (meta.format, meta.importer) == (fmt, IMPORTERS[fmt])
