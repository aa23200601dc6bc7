"""Format sniffing and the one ``load(path)`` entry point of every importer.

The format is decided from magic bytes, then from the shape of the first lines of text; file
names and extensions are never trusted. Each format names the importer function that reads it;
importers are imported only when used, so a broken optional dependency of one format does not
stop the others.
"""

from __future__ import annotations

import importlib
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from importers.capture import METADATA_FILE, Capture, sha256_of
from importers.decompress import MAGIC, compression_of, decompressed, renamed
from importers.errors import CaptureFormatError, PmuReplayError

if TYPE_CHECKING:
    from importers.capture_writer import CaptureWriter

SNIFF_BYTES = 1 << 16
#: the file that makes a directory a ``pmu-replay record`` capture
RECORD_META = "capture.json"

#: format name -> "module:function" of the importer that reads it.
IMPORTERS: dict[str, str] = {
    "ftrace-text": "importers.ftrace.text:read_ftrace_text",
    "systrace-html": "importers.ftrace.text:read_ftrace_text",
    "systrace-zip": "importers.ftrace.text:read_ftrace_text",
    "trace.dat": "importers.tracedat.read:read_tracedat",
    "perf.data": "importers.perf.data:read_perf_data",
    "perf-script": "importers.perf.script:read_perf_script",
    "perf-stat-csv": "importers.perf.stat:read_perf_stat",
    "perf-stat-json": "importers.perf.stat:read_perf_stat",
    "record-dir": "importers.host.record_dir:read_record_dir",
    "perfetto": "importers.perfetto.read:read_perfetto",
}
#: formats whose importer writes its largest tables to the output as it decodes them
#: (``writer``: :class:`importers.capture_writer.CaptureWriter`)
STREAMING = frozenset(
    {"perfetto", "perf.data", "trace.dat", "ftrace-text", "systrace-html", "systrace-zip"}
)
#: formats that are a compression of another (importers.decompress)
COMPRESSIONS = frozenset(name for _, name in MAGIC)
#: what :func:`sniff` recognises, in words, for the message of a file it does not
READABLE = (
    "ftrace/trace-cmd text, systrace HTML, trace.dat, perf.data, perf script, perf stat -x or "
    "-j, a Perfetto trace, or any of them compressed with gzip, xz, zstd or bzip2"
)

# Lines of kernel / trace-cmd ftrace text: "comm-pid [cpu]" somewhere before a "ts: event:".
_FTRACE_LINE = re.compile(rb"-\d+\s+(?:\(\s*[-\d]+\)\s+)?\[\d+\].{0,40}?\d+(?:\.\d+)?: ")
_FTRACE_LATENCY_LINE = re.compile(rb"^\s*\S.{0,7}-\d+\s+\d+\S{0,8}\s+\d+\.\d+: \S+:", re.M)
_PERF_SCRIPT_LINE = re.compile(rb"^\s*\S.*?\s+\d+(?:/\d+)?\s+(?:\[\d+\]\s+)?\d+\.\d+:\s", re.M)
_PERF_STAT_CSV_LINE = re.compile(
    # optional -I interval (right-aligned: leading blanks), -A / --per-* id and CPU count
    rb"^[ \t]*(?:[\d.]+,)?(?:CPU\d+,|S\d+(?:-D\d+)?(?:-C\d+)?,\d+,|N\d+,\d+,)?"
    rb"(?:[\d.]+|<not counted>|<not supported>),[^,\n]*,[^,\n]+,",
    re.M,
)


class ProgressFn(Protocol):
    """Called by importers with bytes (or records) done and the total, when known."""

    def __call__(self, done: int, total: int | None) -> None: ...


Importer = Callable[..., Capture]


def sniff(path: str | Path) -> str:
    """Name the format of ``path``: a key of :data:`IMPORTERS`, ``capture-dir``, or a
    compression (:data:`COMPRESSIONS`) whose contents :func:`load` sniffs in turn.

    Raises :class:`CaptureFormatError` naming what the file looks like when it is not a format
    pmu-replay reads.
    """
    p = Path(path)
    if p.is_dir():
        if (p / METADATA_FILE).exists():
            return "capture-dir"
        if (p / RECORD_META).exists():
            return "record-dir"
        raise CaptureFormatError(
            f"{p}: a directory without {METADATA_FILE}; pass a capture file, or a directory "
            "written by `pmu-replay import` or `pmu-replay record`"
        )
    _refuse_streams(p)
    try:
        with open(p, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise CaptureFormatError(f"{p}: no such file") from None
    except IsADirectoryError:  # pragma: no cover - raced with is_dir above
        raise CaptureFormatError(f"{p}: is a directory") from None
    except OSError as exc:
        raise CaptureFormatError(f"{p}: cannot read ({exc.strerror})") from None
    if not head:
        raise CaptureFormatError(f"{p}: empty file; nothing to import")
    return sniff_bytes(head, str(p))


def _refuse_streams(p: Path) -> None:
    """A pipe, a device or tracefs's ``trace_pipe`` would be read until it ends, maybe never.

    (tracefs's ``trace`` is fine: a snapshot of the ring buffer, read like any text file.)
    """
    try:
        mode = p.stat().st_mode
    except OSError:
        return  # open() below says what is wrong
    if p.name == "trace_pipe" or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        raise CaptureFormatError(
            f"{p}: a stream, not a file; save a stretch of it first "
            f"(`timeout 30 cat {p} > trace.txt`), or record with `pmu-replay record`"
        )


def looks_like_html(head: bytes) -> bool:
    """An HTML document (a systrace report) begins within the first 4 KiB."""
    lowered = head[:4096].lower()
    return b"<html" in lowered or b"<!doctype html" in lowered


def looks_like_ftrace(text: bytes) -> bool:
    """Text that starts with an ftrace header or has an ftrace event line in its first 4 KiB
    (the test for a block inside a container: a systrace script, a zip member)."""
    first = text[:4096]
    return first.startswith(b"#") or _FTRACE_LINE.search(first) is not None


def sniff_bytes(head: bytes, name: str) -> str:
    """Format of a file whose first bytes are ``head`` (see :func:`sniff`)."""
    if head.startswith(b"\x17\x08\x44tracing"):
        return "trace.dat"
    if head.startswith((b"PERFILE2", b"2ELIFREP")):
        return "perf.data"
    if head.startswith(b"PK\x03\x04"):
        return "systrace-zip"
    wrapped = sniff_wrapped(head)
    if wrapped is not None:
        return wrapped
    if b"\x00" in head:
        raise _binary_data(head, name)
    if looks_like_html(head):
        return "systrace-html"
    text_lines = [ln for ln in head.splitlines()[:200] if ln.strip()]
    if _perf_stat_json(text_lines[:20]):
        return "perf-stat-json"
    if any(ln.startswith(b"# tracer:") for ln in text_lines[:5]):
        return "ftrace-text"
    ftrace_hits = sum(bool(_FTRACE_LINE.search(ln)) for ln in text_lines)
    # perf script prints comm ":-1" and tid -1 for an exiting task (":-1    -1 [000]"),
    # which reads as ftrace's "comm-pid [cpu]": the majority decides.
    perf_hits = sum(bool(_PERF_SCRIPT_LINE.match(ln)) for ln in text_lines)
    if ftrace_hits and ftrace_hits >= perf_hits:
        return "ftrace-text"
    if _FTRACE_LATENCY_LINE.search(head):
        return "ftrace-text"
    if head.startswith(b"# ========") or _PERF_SCRIPT_LINE.search(head):
        return "perf-script"
    if _PERF_STAT_CSV_LINE.search(head):
        return "perf-stat-csv"
    raise CaptureFormatError(
        f"{name}: not a capture format pmu-replay reads ({READABLE}); the first line is "
        f"{(text_lines[0][:80] if text_lines else b'').decode('utf-8', 'replace')!r}"
    )


def sniff_wrapped(head: bytes) -> str | None:
    """Captures recognised by their framing rather than their text: a compression (a key of
    :data:`COMPRESSIONS`, read through :mod:`importers.decompress`) or a Perfetto trace."""
    compression = compression_of(head)
    if compression is not None:
        return compression
    return "perfetto" if looks_like_perfetto(head) else None


def looks_like_perfetto(head: bytes) -> bool:
    """A Perfetto ``Trace``: ``TracePacket``s as field 1 (key ``0x0a``) with a varint length,
    the first packet made of well-formed protobuf fields and followed by the next packet
    (or the end of ``head``) [protos/perfetto/trace/trace.proto ``Trace.packet``].

    Text that begins with a newline (also ``0x0a``) fails within a few bytes: half of all
    bytes read as keys carry a deprecated group or invalid wire type.
    """
    if head[:1] != b"\x0a":
        return False
    length, pos = _varint(head, 1)
    if length is None or length == 0:
        return False
    end = pos + length
    while pos < min(end, len(head)):
        key, pos = _varint(head, pos)
        if key is None:
            return pos >= len(head)  # cut off by the end of the sniffed bytes
        wire = key & 7
        if key >> 3 == 0 or wire not in (0, 1, 2, 5):
            return False
        if wire in (0, 2):
            value, pos = _varint(head, pos)
            if value is None:
                return pos >= len(head)
            pos += value if wire == 2 else 0
        else:
            pos += 8 if wire == 1 else 4
    if pos > end:
        return False
    return end >= len(head) or head[end : end + 1] == b"\x0a"


def _varint(data: bytes, pos: int) -> tuple[int | None, int]:
    """The varint at ``pos`` and the position after it; None if cut off or over 10 bytes."""
    value = 0
    for k in range(10):
        if pos + k >= len(data):
            return None, len(data)
        byte = data[pos + k]
        value |= (byte & 0x7F) << (7 * k)
        if byte < 0x80:
            return value, pos + k + 1
    return None, pos + 10


def _binary_data(head: bytes, name: str) -> CaptureFormatError:
    """The error for a file with a NUL byte and no binary format's magic. Lines of text up to
    the NUL make it damaged text: say where the NUL is (text captures have none), so it can be
    cut off."""
    at = head.index(b"\x00")
    try:
        before = head[:at].decode("utf-8")
    except UnicodeDecodeError:
        before = "\x00"
    lines = before.split("\n")
    if len(lines) > 1 and all(ln.replace("\t", "").rstrip("\r").isprintable() for ln in lines):
        line = head.count(b"\n", 0, at) + 1
        return CaptureFormatError(
            f"{name}: text with a NUL byte at offset {at:#x} (line {line}), which no text "
            f"capture contains; if the rest is damage, cut the file before it "
            f"(head -c {at} {name} > fixed.txt)"
        )
    return CaptureFormatError(
        f"{name}: binary data that is not a trace.dat, perf.data, Perfetto trace or compressed "
        f"file (first bytes {head[:8].hex(' ')}, a NUL byte at offset {at:#x}); check the file "
        "is a capture"
    )


def _perf_stat_json(lines: list[bytes]) -> bool:
    """``perf stat -j`` output: most non-comment lines are JSON objects, one with a
    ``counter-value`` (one stray JSON-looking line in other text decides nothing)."""
    body = [ln.lstrip() for ln in lines if not ln.startswith(b"#")]
    objects = [ln for ln in body if ln.startswith(b'{"')]
    return 2 * len(objects) > len(body) and any(b"counter-value" in ln for ln in objects)


def importer_for(fmt: str) -> Importer:
    """The importer function registered for ``fmt``."""
    module_name, func = IMPORTERS[fmt].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CaptureFormatError(f"this pmu-replay cannot read {fmt} captures ({exc})") from None
    fn: Importer = getattr(module, func)
    return fn


def load(
    path: str | Path,
    *,
    strict: bool = False,
    progress: ProgressFn | None = None,
    writer: CaptureWriter | None = None,
) -> Capture:
    """Import any supported capture (or reload a saved capture directory).

    Parameters
    ----------
    path
        A capture file or a directory written by ``Capture.save``.
    strict
        Turn every counted skip (malformed line, damaged page, lost events) into an error.
    progress
        Optional callback receiving progress as ``(done, total)``.
    writer
        The directory the capture is being saved to, for importers of :data:`STREAMING`
        formats to write tables to as they decode them (the caller finishes it).
    """
    fmt = sniff(path)
    if fmt == "capture-dir":
        return Capture.load(path)
    if fmt in COMPRESSIONS:
        return _load_decompressed(Path(path), fmt, strict, progress, writer)
    return _imported(fmt, Path(path), strict, progress, writer)


def _imported(
    fmt: str, path: Path, strict: bool, progress: ProgressFn | None, writer: CaptureWriter | None
) -> Capture:
    streaming = {"writer": writer} if writer is not None and fmt in STREAMING else {}
    return importer_for(fmt)(path, fmt=fmt, strict=strict, progress=progress, **streaming)


def _load_decompressed(
    path: Path,
    compression: str,
    strict: bool,
    progress: ProgressFn | None,
    writer: CaptureWriter | None,
) -> Capture:
    """Import the capture inside a compressed file; the metadata names the original file
    (path and sha256) and its compression, and so do error messages."""
    with decompressed(path, compression) as inner:
        try:
            fmt = sniff(inner)
            if fmt in COMPRESSIONS:
                raise CaptureFormatError(
                    f"{inner}: compressed twice ({compression}, then {fmt}); decompress it "
                    "yourself first"
                )
            capture = _imported(fmt, inner, strict, progress, writer)
        except PmuReplayError as exc:
            raise renamed(exc, inner, path) from None
    capture.metadata.source_path = str(path)
    capture.metadata.source_sha256 = sha256_of(path)
    capture.metadata.extra["compression"] = compression
    return capture
