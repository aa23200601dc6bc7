"""Allocator settings for a process that allocates and frees tens of MB per chunk.

The importers' kernels and the replay engine allocate arrays of 10-30 MB per chunk and free
them a moment later. glibc serves blocks above its mmap threshold (128 KiB, adapting up to
32 MiB) with fresh mappings and gives heap tops above ``M_TRIM_THRESHOLD`` back to the kernel,
so each chunk's arrays were page-faulted and zeroed anew: on the 1 GB text import bench,
2.3 of 12.5 CPU-seconds were kernel time. Fixed thresholds keep such blocks in the heap for
the next chunk (1.3 s kernel time, 11.4 CPU-s, the same peak RSS).

Arrow's buffers go to the same heap: its default pool (mimalloc) reserves memory of its own
per thread, 14 MiB more peak RSS on a 3.4 MB trace.dat (130 -> 116 MiB) and 40 MiB more on a
1.7 M-event one (540 -> 502 MiB), for the same CPU time.

polars allocates with its own jemalloc, which gives freed pages back to the kernel over ten
seconds (``dirty_decay_ms``/``muzzy_decay_ms``) and faults them in again at the next use: on
``pmu-replay compare`` of 10 M sched events, 44 of 70 s were kernel time. Keeping them (decay
-1) took it to 22 of 45 s, with 2 % more peak RSS; the process ends soon after its peak anyway.
Local fleet workers inherit the setting: each stays at the peak of the largest capture it ran,
and reuses those pages for the next.
"""

from __future__ import annotations

import ctypes
import os

from importers.heap import glibc

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for this setting on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 256 << 20
#: read by Arrow when it first allocates (the user's own setting is kept)
ARROW_POOL = "ARROW_DEFAULT_MEMORY_POOL"
#: read by polars' jemalloc (built with the ``_rjem_`` prefix) when polars loads
POLARS_JEMALLOC = "_RJEM_MALLOC_CONF"
KEEP_FREED_PAGES = "dirty_decay_ms:-1,muzzy_decay_ms:-1"


def keep_freed_blocks() -> bool:
    """Set the thresholds above via ``mallopt``; False where the C library is not glibc."""
    if not glibc():
        return False
    libc = ctypes.CDLL(None)
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def arrow_on_the_heap() -> None:
    """Have Arrow allocate from the C library's heap (its "system" pool), unless the
    environment already chooses a pool; call it before Arrow's first allocation."""
    os.environ.setdefault(ARROW_POOL, "system")


def polars_keeps_freed_pages() -> None:
    """Have polars' allocator keep the pages it frees for its next allocations, unless the
    environment already configures it; call it before polars loads."""
    os.environ.setdefault(POLARS_JEMALLOC, KEEP_FREED_PAGES)
