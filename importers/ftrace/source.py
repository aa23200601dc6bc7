"""Where ftrace text comes from: plain files, systrace/atrace HTML, zips, JS-string dumps.

Everything is turned into chunks of plain UTF-8 text lines that end on a line boundary, each
tagged with the line number of its first line in the *original* file, so that every message
can point at a line the user can open. Plain files are streamed in bounded chunks; HTML and zip
containers are small in practice and decoded whole.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import mmap
import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from importers.byte_loops import compiled_text
from importers.capture import sha256_of
from importers.decompress import IN_MEMORY_RATIO, OutputLimit, copy_limited
from importers.detect import ProgressFn, looks_like_ftrace, looks_like_html
from importers.errors import CaptureFormatError
from importers.ftrace.scan import count_lines

CHUNK_BYTES = 32 << 20

# A systrace HTML file carries its data in <script class="trace-data"> elements (one ftrace text
# block, sometimes followed by a JSON block of Chrome trace events) [catapult systrace
# `trace_data`]; older ones assign a JS string to `var linuxPerfData`.
_TRACE_DATA = re.compile(
    rb'<script class="trace-data"[^>]*>\s*?\n?(.*?)</script>', re.DOTALL | re.IGNORECASE
)
_LEGACY_JS = re.compile(rb'var\s+linuxPerfData\s*=\s*"(.*?)";?\s*</script>', re.DOTALL)
_JS_LINE_END = re.compile(rb"\\n\\$", re.MULTILINE)
_JS_ESCAPES = re.compile(rb"\\([\\\"'nt])")
_JS_UNESCAPED = {b"\\": b"\\", b'"': b'"', b"'": b"'", b"n": b"\n", b"t": b"\t"}


@dataclass
class TextChunk:
    """Complete lines of text; ``first_line`` is the 1-based line of ``data[0]`` in the file.

    ``compiled``: whether its byte scans run as numba kernels, decided from the size of the
    whole text (:func:`importers.byte_loops.compiled_text`), so every chunk of a capture takes
    one engine.
    """

    data: bytes | memoryview
    first_line: int
    seq_base: int
    compiled: bool
    pages: _Pages | None = None

    def release(self) -> None:
        """Give back the memory of a chunk whose processing is done (mapped files only)."""
        if self.pages is not None:
            self.pages.release()

    def line_of(self, seq: int) -> str:
        """Where the line with sequence number ``seq`` is, for messages: ``"line N"``."""
        return f"line {self.first_line + seq - self.seq_base}"


@dataclass
class TextSource:
    """The text lines of a capture, as chunks, plus facts learnt while extracting them.

    ``notes`` lists parts of a container that were recognised and deliberately not read (for
    example the JSON block of a systrace HTML file), for the import summary.
    """

    container: str
    chunks: Iterator[TextChunk]
    digest: Callable[[], str]  # hex sha256 of the whole file
    notes: list[str] = field(default_factory=list)

    def sha256(self) -> str:
        """Hex sha256 of the whole file (waits for it if it is still being computed)."""
        return self.digest()


def open_text(path: Path, fmt: str, progress: ProgressFn | None) -> TextSource:
    """Open ``path`` (sniffed as ``fmt``) and prepare its ftrace text for chunked reading."""
    size = path.stat().st_size
    if fmt == "ftrace-text":
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if _looks_js_escaped(head):
            raw = path.read_bytes()
            return _whole(path, "js-string", _unescape_js(raw), 1, raw, progress)
        if size == 0:  # tracefs's trace, /proc-like files: the size is not known up front
            raw = path.read_bytes()
            return _whole(path, "plain", raw, 1, raw, progress)
        return TextSource("plain", _stream(path, size, progress), _hash_meanwhile(path))
    raw = path.read_bytes()
    if fmt == "systrace-zip":
        return _from_zip(path, raw, progress)
    if fmt == "systrace-html":
        return _from_html(path, raw, progress)
    raise CaptureFormatError(f"{path}: {fmt} is not ftrace text")  # pragma: no cover


def _hash_meanwhile(path: Path) -> Callable[[], str]:
    """The sha256 of ``path``, computed on a thread of its own while the text is parsed.

    Started before the parse, it also runs while numba sets up (on a large text) and the
    second core is idle (hashlib and file reads drop the GIL). A daemon thread: an import
    that fails early exits without waiting for the hash of a large file.
    """
    result: list[str | OSError] = []

    def run() -> None:
        try:
            result.append(sha256_of(path))
        except OSError as exc:
            result.append(exc)

    thread = threading.Thread(target=run, name="sha256", daemon=True)
    thread.start()

    def digest() -> str:
        thread.join()
        if isinstance(result[0], OSError):
            raise CaptureFormatError(f"{path}: cannot read it to the end ({result[0]})")
        return result[0]

    return digest


def _stream(path: Path, size: int, progress: ProgressFn | None) -> Iterator[TextChunk]:
    """Chunks of about CHUNK_BYTES ending at a newline, as views of a read-only mapping.

    Mapping the file instead of reading it saves a copy and the page faults of a fresh buffer
    per chunk (about 1 CPU-second per GB); :meth:`TextChunk.release` drops a processed chunk's
    pages, so resident memory stays bounded by the chunks in flight for any file size. Like
    every mmap reader (ripgrep, trace-cmd), this assumes the file is not truncated while it is
    imported; appending to it is harmless (only the first ``size`` bytes are mapped).
    """
    with open(path, "rb") as fh:
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    mapping.madvise(mmap.MADV_SEQUENTIAL)
    size = min(size, len(mapping))
    jit = compiled_text(size)
    view = memoryview(mapping)
    line = 1
    pos = 0
    while pos < size:
        end = min(pos + CHUNK_BYTES, size)
        cut = mapping.rfind(b"\n", pos, end) + 1
        if cut == 0 and end < size:
            raise CaptureFormatError(
                f"{path}:{line}: a line longer than {CHUNK_BYTES >> 20} MiB; "
                "this is not line-oriented ftrace text"
            )
        chunk: bytes | memoryview
        if cut == 0:  # last line without a newline
            chunk, cut = bytes(view[pos:end]) + b"\n", end
        else:
            chunk = view[pos:cut]
        # Counted before the chunk is handed out: on a large text the first count then sets
        # numba up here, instead of waiting for the compiler lock while a worker loads the
        # parsing kernels.
        lines = count_lines(np.frombuffer(mapping, np.uint8, cut - pos, pos), jit)
        pages = _Pages(mapping, pos, cut)
        # A worker faults them in again from the page cache (a few ms a chunk): until one
        # takes it, a chunk in the queue holds no memory.
        pages.release()
        yield TextChunk(chunk, line, line - 1, jit, pages)
        line += lines
        pos = cut
        if progress:
            progress(pos, size)


@dataclass(frozen=True)
class _Pages:
    """The whole pages of ``mapping[start:end]``, which a processed chunk gives back."""

    mapping: mmap.mmap
    start: int
    end: int

    def release(self) -> None:
        first = -(-self.start // mmap.PAGESIZE) * mmap.PAGESIZE
        last = self.end // mmap.PAGESIZE * mmap.PAGESIZE
        if last > first:
            # A file-backed page dropped here is read again from the page cache if touched.
            self.mapping.madvise(mmap.MADV_DONTNEED, first, last - first)


def _whole(
    path: Path,
    container: str,
    text: bytes,
    first_line: int,
    raw: bytes,
    progress: ProgressFn | None,
) -> TextSource:
    """A source over text already in memory, cut into chunks on line boundaries."""
    body = text if text.endswith(b"\n") else text + b"\n"
    jit = compiled_text(len(body))

    def chunks() -> Iterator[TextChunk]:
        pos = 0
        line = first_line
        while pos < len(body):
            cut = body.rfind(b"\n", pos, pos + CHUNK_BYTES) + 1
            if cut <= pos:
                cut = body.index(b"\n", pos) + 1
            chunk = body[pos:cut]
            yield TextChunk(chunk, line, line - first_line, jit)
            line += chunk.count(b"\n")
            pos = cut
            if progress:
                progress(pos, len(body))

    return TextSource(container, chunks(), hashlib.sha256(raw).hexdigest)


def _looks_js_escaped(head: bytes) -> bool:
    """Legacy systrace dumps keep each line as a JS string continuation: ``...\\n\\``."""
    lines = [ln for ln in head.split(b"\n")[:8] if ln.strip()]
    return bool(lines) and sum(ln.endswith(b"\\n\\") for ln in lines) >= max(1, len(lines) // 2)


def _unescape_js(raw: bytes) -> bytes:
    text = _JS_LINE_END.sub(b"", raw)
    return _JS_ESCAPES.sub(lambda m: _JS_UNESCAPED[m.group(1)], text)


def _from_html(path: Path, raw: bytes, progress: ProgressFn | None) -> TextSource:
    found: list[tuple[int, bytes]] = []
    notes: list[str] = []
    for m in _TRACE_DATA.finditer(raw):
        first_line = raw.count(b"\n", 0, m.start(1)) + 1
        text = _decode_block(m.group(1))
        if text is None:
            notes.append(f"line {first_line}: trace-data block that is not ftrace text, not read")
        elif found:
            notes.append(f"line {first_line}: further ftrace block, not read")
        else:
            found.append((first_line, text))
    if not found:
        legacy = _LEGACY_JS.search(raw)
        if legacy:
            first_line = raw.count(b"\n", 0, legacy.start(1)) + 1
            found.append((first_line, _unescape_js(legacy.group(1))))
    if not found:
        raise CaptureFormatError(
            f'{path}: HTML without ftrace data (no <script class="trace-data"> block with ftrace '
            "text, no linuxPerfData string); is this a systrace/atrace HTML file?"
        )
    first_line, text = found[0]
    src = _whole(path, "systrace-html", text, first_line, raw, progress)
    src.notes = notes
    return src


def _decode_block(body: bytes) -> bytes | None:
    """The ftrace text of one trace-data block, or None for JSON / non-ftrace blocks.

    Compressed systrace (``--compress``) stores base64 of zlib-deflated text.
    """
    stripped = body.strip()
    if not stripped or stripped.startswith((b"{", b"[")):
        return None
    if looks_like_ftrace(stripped):
        return body
    try:
        inflated = zlib.decompress(base64.b64decode(stripped, validate=False))
    except (binascii.Error, zlib.error, ValueError):
        return None
    return inflated if looks_like_ftrace(inflated.strip()) else None


def _from_zip(path: Path, raw: bytes, progress: ProgressFn | None) -> TextSource:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = [i for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as exc:
        raise CaptureFormatError(f"{path}: damaged zip archive ({exc})") from None
    for info in members:
        # bounded while inflating, not by the size the central directory declares
        size = min(info.compress_size, len(raw))
        limit = OutputLimit(f"{path}: zip member {info.filename}", size, IN_MEMORY_RATIO)
        try:
            with archive.open(info) as member:
                data = copy_limited(member, None, limit) or b""
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise CaptureFormatError(
                f"{path}: zip member {info.filename} is damaged ({exc})"
            ) from None
        if looks_like_html(data):
            src = _from_html(path, data, progress)
            src.container, src.digest = "systrace-zip", hashlib.sha256(raw).hexdigest
            return src
        if looks_like_ftrace(data.lstrip()):
            text = _unescape_js(data) if _looks_js_escaped(data[:4096]) else data
            return _whole(path, "systrace-zip", text, 1, raw, progress)
    names = ", ".join(i.filename for i in members) or "nothing"
    raise CaptureFormatError(f"{path}: zip archive without ftrace text (it holds {names})")
