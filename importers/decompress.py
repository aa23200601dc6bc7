"""Transparent decompression: gzip, xz, zstd and bzip2 captures, recognised from their bytes.

A compressed capture is inflated, a block at a time, into a private temporary file that the
format's importer then reads like any other; the metadata keeps the original file's path and
sha256. What a compressed stream may inflate to is bounded while it is read
(:class:`OutputLimit`), never by a size the archive declares: a small file that would expand
without end (a "compression bomb") is refused after at most :data:`MIN_LIMIT` bytes, or
:data:`RATIO` times its own size, whichever is larger. Memory stays at one :data:`BLOCK`
whatever the output size. The members of systrace zips and Perfetto's compressed packets
are inflated in memory, so their limit is tighter (:data:`IN_MEMORY_RATIO`) and bounds the
memory too.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from importers.errors import CaptureFormatError, PmuReplayError

#: magic bytes -> compression name (RFC 1952; xz file format 1.1.0 §2.1.1.1; RFC 8878 §3.1.1;
#: bzip2's "BZh" + block size digit)
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
)
#: decompressed bytes handed on per read: the memory a stream of any size needs
BLOCK = 1 << 20
#: every compressed input may inflate to this much whatever its size ...
MIN_LIMIT = 64 << 20
#: ... and to this many times its own size (text traces compress 10-150x: xz makes the 113 MB
#: traceshark perf-script sample 1 MB; gzip cannot exceed ~1030x, xz, zstd and bzip2 can)
RATIO = 1000
#: the ratio for data inflated in memory: zip members (HTML and text compress 5-20x) and
#: Perfetto's compressed packets (deflate of protobuf, 3-10x)
IN_MEMORY_RATIO = 100


class OutputLimit:
    """A running bound on what one compressed input inflates to.

    Parameters
    ----------
    what
        The input, for the message (``trace.txt.gz``, ``zip member trace.html``).
    compressed_size
        Its compressed size in bytes.
    ratio
        How many times that size it may inflate to (past :data:`MIN_LIMIT`).
    """

    def __init__(self, what: str, compressed_size: int, ratio: int = RATIO) -> None:
        self.what = what
        self.ratio = ratio
        self.limit = max(MIN_LIMIT, ratio * compressed_size)
        self.total = 0

    def add(self, produced: int) -> None:
        """Count ``produced`` more output bytes; refuse once past the limit."""
        self.total += produced
        if self.total > self.limit:
            raise CaptureFormatError(
                f"{self.what}: decompresses to more than {self.limit >> 20} MiB (over "
                f"{self.ratio}x its size); refusing it as a possible compression bomb. If it "
                "is genuine, decompress it yourself and import the result"
            )


def compression_of(head: bytes) -> str | None:
    """The compression whose magic bytes ``head`` starts with, or None."""
    return next((name for magic, name in MAGIC if head.startswith(magic)), None)


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _decompressor(name: str, raw: BinaryIO) -> _Reader:
    """A reader of ``raw`` decompressing ``name``; closed with ``raw``, which owns the file."""
    if name == "gzip":
        # multi-member gzip (pigz, cat a.gz b.gz) reads as one stream, as gunzip does
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if name == "xz":
        return lzma.LZMAFile(raw)
    if name == "bzip2":
        return bz2.BZ2File(raw)
    # read_across_frames: zstd -T / concatenated frames read as one stream, as unzstd does
    reader: _Reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return reader


def copy_limited(source: _Reader, sink: BinaryIO | None, limit: OutputLimit) -> bytes | None:
    """Read ``source`` to its end in :data:`BLOCK` pieces, counted against ``limit``.

    Writes to ``sink`` when given (and returns None), else returns the bytes.
    """
    kept: list[bytes] | None = None if sink is not None else []
    while block := source.read(BLOCK):
        limit.add(len(block))
        if sink is not None:
            sink.write(block)
        else:
            assert kept is not None
            kept.append(block)
    return None if kept is None else b"".join(kept)


def inflate(data: bytes | memoryview, codec: str, limit: OutputLimit) -> bytes:
    """Decompress an in-memory ``deflate`` (zlib framing) or ``zstd`` blob under ``limit``."""
    if codec == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(bytes(data), read_across_frames=True)
        return copy_limited(reader, None, limit) or b""
    out: list[bytes] = []
    inflater = zlib.decompressobj()
    pending = bytes(data)
    while pending:
        block = inflater.decompress(pending, BLOCK)
        limit.add(len(block))
        out.append(block)
        pending = inflater.unconsumed_tail
    out.append(inflater.flush())
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return b"".join(out)


@contextmanager
def decompressed(path: Path, compression: str) -> Iterator[Path]:
    """``path`` inflated into a temporary file (removed afterwards), named like the original
    without its compression suffix.

    Errors of the decompressor name the original file. The temporary directory is private
    to this process (``tempfile.mkdtemp``: mode 0700).

    Raises
    ------
    CaptureFormatError
        Damaged or empty compressed data, or a possible compression bomb.
    OSError
        A read or write that failed (a full temporary file system, an I/O error): not damage
        in the file, so not reported as such.
    """
    limit = OutputLimit(str(path), path.stat().st_size)
    workdir = Path(tempfile.mkdtemp(prefix="pmu-replay-"))
    stem = path.name
    for suffix in (".gz", ".tgz", ".xz", ".zst", ".zstd", ".bz2"):
        stem = stem.removesuffix(suffix)
    target = workdir / (stem if stem and stem != path.name else f"{path.name}.out")
    try:
        with open(path, "rb") as raw, open(target, "wb") as sink:
            try:
                copy_limited(_decompressor(compression, raw), sink, limit)
            except (OSError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
                # gzip and bz2 report bad data as an OSError without errno; one with an errno
                # is the system's (ENOSPC writing the inflated copy, EIO reading the file)
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise OSError(
                        exc.errno,
                        f"cannot inflate {path.name} there: {exc.strerror} (TMPDIR chooses where)",
                        str(workdir.parent),
                    ) from exc
                raise CaptureFormatError(
                    f"{path}: damaged {compression} data after {limit.total} decompressed "
                    f"bytes ({exc}); check the file was copied whole"
                ) from None
        if limit.total == 0:
            raise CaptureFormatError(f"{path}: {compression} data that decompresses to nothing")
        yield target
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def renamed(exc: PmuReplayError, inner: Path, outer: Path) -> PmuReplayError:
    """``exc`` with the temporary file's name replaced by the original's, same class."""
    text = str(exc).replace(str(inner), f"{outer} (decompressed)")
    return type(exc)(text)
