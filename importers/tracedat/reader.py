"""Bounds-checked access to the bytes of a trace.dat file, and its compressed blocks.

Every read names the file, the section being read and the byte offset when it fails, so a
truncated or corrupt file gives one clear :class:`CaptureFormatError` and never an
``IndexError`` or ``struct.error``. Decompression is bounded by the sizes declared in the file,
themselves bounded by what the compressed input can plausibly expand to, so a corrupt header
cannot make the importer allocate more than the data can produce.
"""

from __future__ import annotations

import mmap
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from importers.errors import CaptureFormatError, where

#: Neither zlib (max ratio about 1032:1) nor trace-cmd's chunking of ring-buffer pages expands
#: further than this; a larger declared size is a corrupt header, not data.
MAX_EXPANSION = 4096


@dataclass
class Reader:
    """The file's bytes (memory-mapped) with endian-aware, bounds-checked readers."""

    path: Path
    buf: bytes | mmap.mmap
    big_endian: bool = False
    section: str = "file header"
    _fmt: dict[str, struct.Struct] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.buf)

    def fail(self, offset: int, what: str) -> CaptureFormatError:
        """An error naming the file, the offset, the section and what was wrong."""
        return CaptureFormatError(
            f"{where(str(self.path), offset=offset)}: {what} (in {self.section}); "
            "the file is truncated or corrupt — re-extract it with trace-cmd"
        )

    def need(self, offset: int, n: int) -> None:
        if n < 0 or offset < 0 or offset + n > len(self.buf):
            raise self.fail(
                offset,
                f"needs {n} bytes but the file has {max(0, len(self.buf) - offset)} left",
            )

    def bytes_at(self, offset: int, n: int) -> bytes:
        self.need(offset, n)
        return bytes(self.buf[offset : offset + n])

    def _unpack(self, code: str, offset: int) -> int:
        st = self._fmt.get(code)
        if st is None:
            st = self._fmt[code] = struct.Struct((">" if self.big_endian else "<") + code)
        self.need(offset, st.size)
        value: int = st.unpack_from(self.buf, offset)[0]
        return value

    def u16(self, offset: int) -> int:
        return self._unpack("H", offset)

    def u32(self, offset: int) -> int:
        return self._unpack("I", offset)

    def s32(self, offset: int) -> int:
        return self._unpack("i", offset)

    def u64(self, offset: int) -> int:
        return self._unpack("Q", offset)

    def cstr(self, offset: int, limit: int = 1 << 20) -> tuple[str, int]:
        """NUL-terminated string at ``offset``; returns it and the offset after the NUL."""
        end = self.buf.find(b"\0", offset, min(len(self.buf), offset + limit))
        if end < 0:
            raise self.fail(offset, "string without its terminating NUL")
        return bytes(self.buf[offset:end]).decode("utf-8", "replace"), end + 1

    def sized_blob(self, offset: int, n: int, what: str) -> bytes:
        """``n`` bytes at ``offset``, with a message naming ``what`` if they are not there."""
        return bytes(self.sized_view(offset, n, what))

    def sized_view(self, offset: int, n: int, what: str) -> memoryview:
        """:meth:`sized_blob` without the copy: the bytes stay in the mapped file until read."""
        if n < 0 or offset + n > len(self.buf):
            raise self.fail(
                offset,
                f"{what} claims {n} bytes but the file has {max(0, len(self.buf) - offset)} left",
            )
        return memoryview(self.buf)[offset : offset + n]


def open_reader(path: Path) -> Reader:
    """Memory-map ``path`` (read-only); an empty file cannot be mapped, so read it instead."""
    try:
        with open(path, "rb") as fh:
            try:
                buf: bytes | mmap.mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:
                buf = fh.read()
    except OSError as exc:
        raise CaptureFormatError(f"{path}: cannot read ({exc.strerror})") from None
    return Reader(path, buf)


_LOCAL = threading.local()


def _zstd() -> zstandard.ZstdDecompressor:
    """One decompression context per thread: creating one per chunk costs ~25% more."""
    ctx: zstandard.ZstdDecompressor | None = getattr(_LOCAL, "zstd", None)
    if ctx is None:
        ctx = _LOCAL.zstd = zstandard.ZstdDecompressor()
    return ctx


def decompress(
    algorithm: str, data: bytes | memoryview, expected: int, reader: Reader, offset: int
) -> bytes:
    """Inflate one compressed block of ``expected`` bytes, or fail naming where it lies.

    Output is capped at ``expected`` bytes, so a block that inflates to more (a corrupt size or a
    decompression bomb) is an error before it can exhaust memory.
    """
    if expected < 0 or expected > MAX_EXPANSION * max(len(data), 1) + (1 << 20):
        raise reader.fail(offset, f"compressed block claims {expected} bytes uncompressed")
    try:
        if algorithm == "zlib":
            obj = zlib.decompressobj()
            out = obj.decompress(data, expected)
            # Output capped at exactly the expected size can leave the stream's checksum
            # unread: finish it (one more byte of output would be a block that is too big).
            extra = obj.decompress(obj.unconsumed_tail, 1) if obj.unconsumed_tail else b""
            if not extra and not obj.eof:
                raise reader.fail(offset, "zlib block ends before its end-of-stream marker")
        elif algorithm == "zstd":
            # One-shot, capped at the (already bounded) declared size; a frame that would
            # inflate further raises instead of growing.
            out = _zstd().decompress(data, max_output_size=expected)
            extra = b""
        else:
            raise reader.fail(offset, f"unknown compression {algorithm!r} (zlib and zstd exist)")
    except (zlib.error, zstandard.ZstdError) as exc:
        raise reader.fail(offset, f"{algorithm} block does not inflate ({exc})") from None
    if len(out) != expected or extra:
        raise reader.fail(
            offset,
            f"{algorithm} block inflates to {len(out)}{'+' if extra else ''} bytes, "
            f"the header says {expected}",
        )
    return out
