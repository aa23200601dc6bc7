"""The bytes of every ring-buffer page, in a mapping whose memory is given back as it is used up.

A compressed capture's pages are inflated into one buffer (67-100 MB for 2 M events), about
as large as all the tables decoded from them. Once the typed tables are built, only the
records of the ``events`` table are read again, once each, into its ``payload`` column; a page
whose last such record has been copied is handed back to the kernel
(``madvise(MADV_DONTNEED)``), so the pages shrink while the column grows instead of both being
resident at once. An uncompressed capture's pages are the file's own mapping: giving one back
drops it from the process (it stays in the page cache).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass
class PageBuffer:
    """``array`` views ``mapping`` (``None``: memory this module cannot give back).

    ``starts`` and ``ends`` are the byte ranges of the ring-buffer pages, once
    :meth:`expect` has been told which records will still be read.
    """

    array: NDArray[np.uint8]
    mapping: mmap.mmap | None
    starts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    ends: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    pending: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    released: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))

    @classmethod
    def anonymous(cls, size: int) -> PageBuffer:
        """A zero-filled buffer of ``size`` bytes, resident only where it is written."""
        if size == 0:  # mmap cannot map nothing
            return cls(np.zeros(0, np.uint8), None)
        # private: given-back pages are freed (a shared mapping would keep them in shmem)
        mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        return cls(np.frombuffer(mapping, np.uint8), mapping)

    @classmethod
    def of_file(cls, buf: bytes | mmap.mmap) -> PageBuffer:
        """The bytes of a file as the reader holds them (mapped, or read when empty)."""
        return cls(np.frombuffer(buf, np.uint8), buf if isinstance(buf, mmap.mmap) else None)

    def track(self, starts: NDArray[np.int64], ends: NDArray[np.int64]) -> None:
        """Where the ring-buffer pages lie (they do not overlap); none is pending yet."""
        by_start = np.argsort(starts, kind="stable")
        self.starts, self.ends = starts[by_start], ends[by_start]
        self.pending = np.zeros(len(starts), np.int64)
        self.released = np.zeros(len(starts), bool)

    def expect(self, offsets: NDArray[np.int64]) -> None:
        """Records at ``offsets`` will be read once more (by :meth:`consumed`'s caller)."""
        self.pending += np.bincount(self._page_of(offsets), minlength=len(self.starts))

    def consumed(self, offsets: NDArray[np.int64]) -> None:
        """The records at ``offsets`` have been read for the last time: give back each page
        none of whose expected records is still to be read."""
        self.pending -= np.bincount(self._page_of(offsets), minlength=len(self.starts))
        done = np.flatnonzero((self.pending == 0) & ~self.released)
        self.released[done] = True
        # runs of consecutive pages, each given back in one call
        cut = np.flatnonzero(np.diff(done) != 1) + 1
        for run in np.split(done, cut) if len(done) else []:
            self.release(int(self.starts[run[0]]), int(self.ends[run[-1]]))

    def release(self, start: int, end: int) -> None:
        """Give back the whole memory pages within bytes ``start``..``end``: nothing reads them
        again (if something did, it would see zeros, or the file again; never stale data of
        another capture)."""
        first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
        last = min(end, len(self.array)) // mmap.PAGESIZE * mmap.PAGESIZE
        if self.mapping is not None and last > first and hasattr(mmap, "MADV_DONTNEED"):
            self.mapping.madvise(mmap.MADV_DONTNEED, first, last - first)

    def _page_of(self, offsets: NDArray[np.int64]) -> NDArray[np.intp]:
        return np.searchsorted(self.starts, offsets, side="right") - 1
