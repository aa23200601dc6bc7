"""The C library's heap: whether it is glibc's, and giving its free pages back to the kernel.

The CLI keeps freed heap blocks for reuse (:mod:`replay.heap` raises glibc's
``M_TRIM_THRESHOLD`` to 256 MiB), which saves page faults when each chunk frees what the next
allocates. A phase that frees tens of MB of small blocks (the trace.dat page walk's
per-step arrays, a text import's chunk scans) and is followed by arrays of other sizes leaves
those blocks resident for nothing: they add to the peak of every later phase.
``malloc_trim(0)`` hands every whole free page of the heap back (glibc >= 2.8 also
``madvise``\\ s those inside the heap, not only its top).
"""

from __future__ import annotations

import ctypes
import os
import sys


def glibc() -> bool:
    """Whether the C library is glibc (on Linux): what ``platform.libc_ver`` asks first,
    without the ~3 ms of importing ``platform`` at every start (issue 17)."""
    if sys.platform != "linux":
        return False
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc ")
    except (ValueError, OSError):  # not a name this C library knows
        return False


def trim_heap() -> None:
    """``malloc_trim(0)`` where the C library is glibc; elsewhere nothing."""
    if glibc():
        ctypes.CDLL(None).malloc_trim(0)
