"""replay.heap: freed blocks of chunk size are reused, not faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Like an importer's worker thread: a chunk's arrays (5 x 20 MB) allocated, touched and freed,
# chunk after chunk; print the minor page faults of chunks 2 to 5.
PROBE = """
import resource, sys, threading
import numpy as np
from replay.heap import keep_freed_blocks
if sys.argv[1] == "tuned":
    assert keep_freed_blocks()
def chunk():
    arrays = [np.ones(20 << 17) for _ in range(5)]
    del arrays
def work():
    chunk()  # the first chunk is faulted in either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        chunk()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
worker = threading.Thread(target=work)
worker.start()
worker.join()
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], check=True, capture_output=True, text=True
    )
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_chunk_sized_blocks_are_reused_without_page_faults() -> None:
    chunk_pages = 5 * (20 << 20) // 4096
    # glibc's defaults give some blocks back each chunk (here 5735 pages over 4 chunks) ...
    assert _faults("default") > chunk_pages / 10
    # ... fixed thresholds keep them all for the next chunk
    assert _faults("tuned") < chunk_pages / 100
