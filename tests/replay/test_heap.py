"""replay.heap: freed blocks of chunk size are reused, not faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tests.conftest import ROOT

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


ARROW_PROBE = """
from replay.heap import arrow_on_the_heap
arrow_on_the_heap()
import pyarrow as pa
print(pa.default_memory_pool().backend_name)
"""


def _arrow_pool(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", ARROW_PROBE],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env},
    )
    return out.stdout.strip()


def test_arrow_allocates_from_the_heap_unless_the_user_chose_a_pool() -> None:
    assert _arrow_pool({}) == "system"
    assert _arrow_pool({"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"


# Like the detectors between two scenarios: polars builds three 40 MB columns and drops them,
# a second later the next ones; print the minor page faults of frames 2 to 5.
POLARS_PROBE = """
import resource, sys, time
from replay.heap import polars_keeps_freed_pages
if sys.argv[1] == "tuned":
    polars_keeps_freed_pages()
import polars as pl
def frame():
    df = pl.select(pl.int_range(0, 5_000_000).alias("a"))
    df = df.with_columns(b=pl.col("a") * 2, c=pl.col("a") + 1)
    del df
frame()  # the first frame is faulted in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    time.sleep(1.0)
    frame()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _polars_faults(mode: str, env: dict[str, str]) -> int:
    out = subprocess.run(
        [sys.executable, "-c", POLARS_PROBE, mode],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env},
    )
    return int(out.stdout)


@pytest.mark.slow
def test_polars_reuses_the_pages_it_freed_unless_the_user_configured_its_allocator() -> None:
    frame_pages = 3 * 5_000_000 * 8 // 4096
    # jemalloc's default decay gives the pages back within a second ...
    assert _polars_faults("default", {}) > frame_pages / 10
    # ... kept, the next frames reuse them
    assert _polars_faults("tuned", {}) < frame_pages / 100
    # a configuration in the environment is the user's to keep
    assert _polars_faults("tuned", {"_RJEM_MALLOC_CONF": "dirty_decay_ms:0"}) > frame_pages / 10
