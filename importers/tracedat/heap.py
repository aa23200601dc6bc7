"""Give the C heap's free pages back to the kernel between the trace.dat import's phases.

The CLI keeps freed heap blocks for reuse (:mod:`replay.heap` raises glibc's
``M_TRIM_THRESHOLD`` to 256 MiB), which saves page faults when each chunk frees what the next
allocates. A phase that frees tens of MB of small blocks (the trace.dat page walk's
per-step arrays) and is followed by arrays of other sizes leaves those blocks resident for
nothing: they add to the peak of every later phase. ``malloc_trim(0)`` hands every whole free
page of the heap back (glibc >= 2.8 also ``madvise``\\ s those inside the heap, not only its top).
"""

from __future__ import annotations

import ctypes
import platform


def trim_heap() -> None:
    """``malloc_trim(0)`` where the C library is glibc; elsewhere nothing."""
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        ctypes.CDLL(None).malloc_trim(0)
