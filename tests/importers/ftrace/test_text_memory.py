"""What the text importer leaves resident once its tables are built: the tables, not the
chunks' scans (issue 17: a 1 GB text import peaks below the text's size)."""

from __future__ import annotations

import platform
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from importers.ftrace.scan import line_bounds, scan_event_lines
from tests.conftest import ROOT
from tests.importers.textcap import shift_text, span_seconds, split_header

# As the CLI runs (freed blocks kept, Arrow on the C heap: replay.heap), import the text and
# print how many KiB of anonymous memory one more malloc_trim(0) gives back: the freed scans and
# intermediate columns that would otherwise stay resident while the tables are saved and the
# import's advice is worked out.
PROBE = """
import sys
from pathlib import Path
from replay.heap import arrow_on_the_heap, keep_freed_blocks
assert keep_freed_blocks()
arrow_on_the_heap()
from importers.ftrace.text import read_ftrace_text
from importers.heap import trim_heap
def anon_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
capture = read_ftrace_text(Path(sys.argv[1]), fmt="ftrace-text")
before = anon_kib()
trim_heap()
print(before - anon_kib())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_chunks_freed_scans_are_not_left_resident(shared_traces: Path, tmp_path: Path) -> None:
    # four shifted copies of a real capture: 1.7 MiB, one chunk, scanned in numpy
    header, events = split_header((shared_traces / "juno-trace-txt" / "trace.txt").read_text())
    span = span_seconds(events)
    text = tmp_path / "trace.txt"
    text.write_text(header + "".join(shift_text(events, rep * span) for rep in range(4)))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(text)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    # without the importer's own trim, about 7 MiB of freed blocks are still resident here
    assert int(done.stdout) < 1024


def test_the_numpy_scan_of_a_real_text_works_in_little_memory(shared_traces: Path) -> None:
    """The numpy event-line scan (small texts) keeps each byte class as its runs, not as a
    flag per byte: 31 bytes of work per byte of text became 24 on a real capture."""
    data = (shared_traces / "juno-trace-txt" / "trace.txt").read_bytes()
    buf = np.frombuffer(data, np.uint8)
    starts, ends = line_bounds(buf, False)
    tracemalloc.start()
    try:
        ok, _, _ = scan_event_lines(buf, starts, ends, False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ok.sum() > 0.9 * ok.size
    assert peak < 26 * len(data)
