"""A small reader of trace.dat v7 files, independent of importers/, used as the oracle for the
zlib-compressed v7 captures that Debian's trace-cmd 3.1.6 cannot inflate (it links zstd only).

Written from trace-cmd's Documentation/trace-cmd/trace-cmd.dat.v7.5.txt and spec/formats.md §3.3
and §3.4 with plain ``struct`` and ``zlib``, one record at a time: slow and simple on purpose.
It reads the top instance's events of the given names (all fields of their ``format``), in
trace-cmd's order (by time, then CPU), with TSC2NSEC, DATE and OFFSET applied as
``trace-cmd report`` does.
"""

from __future__ import annotations

import heapq
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

OPTIONS, BUFFER, STRINGS, HEADER_INFO, EVENT_FORMATS = 0, 3, 15, 16, 18
DATE, OFFSET, TSC2NSEC = 1, 7, 14
_FIELD = re.compile(
    r"field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<signed>\d)"
)


@dataclass
class Format:
    name: str
    id: int
    fields: dict[str, tuple[int, int, bool]]  # name -> offset, size, signed
    print_fmt: str


@dataclass
class File:
    data: bytes
    endian: str = "<"
    page_size: int = 4096
    options: dict[int, list[bytes]] = field(default_factory=dict)

    def u(self, fmt: str, at: int) -> tuple[int, ...]:
        return struct.unpack_from(self.endian + fmt, self.data, at)

    def section(self, at: int) -> bytes:
        """Payload of the section whose header is at ``at`` (inflated if flagged)."""
        _, flags, _, size = self.u("HHiQ", at)
        body = self.data[at + 16 : at + 16 + size]
        if flags & 1:
            (csize,) = struct.unpack_from(self.endian + "I", body, 0)
            return zlib.decompress(body[8 : 8 + csize])
        return body


def _cstr(buf: bytes, at: int) -> tuple[str, int]:
    end = buf.index(b"\0", at)
    return buf[at:end].decode(), end + 1


def _strtoll(text: bytes) -> int:
    s = text.split(b"\0")[0].decode().strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s[:2].lower() == "0x":
        return sign * int(s, 16)
    return sign * (int(s, 8) if s.startswith("0") and len(s) > 1 else int(s or "0"))


def open_v7(path: Path) -> File:
    data = path.read_bytes()
    assert data[:10] == b"\x17\x08Dtracing" and data[10:12] == b"7\0", "not a trace.dat v7"
    f = File(data, "<" if data[12] == 0 else ">")
    (f.page_size,) = f.u("I", 14)
    comp, at = _cstr(data, 18)
    _, at = _cstr(data, at)
    assert comp in ("zlib", "none"), comp
    (options_at,) = f.u("Q", at)
    while options_at:  # a chain of OPTIONS sections, each ended by DONE (next offset or 0)
        body, options_at, pos = f.section(options_at), 0, 0
        while pos < len(body):
            oid, size = struct.unpack_from(f.endian + "HI", body, pos)
            payload = body[pos + 6 : pos + 6 + size]
            pos += 6 + size
            if oid == 0:
                (options_at,) = struct.unpack_from(f.endian + "Q", payload, 0)
                break
            f.options.setdefault(oid, []).append(payload)
    return f


def formats(f: File, names: set[str]) -> dict[int, Format]:
    (at,) = struct.unpack_from(f.endian + "Q", f.options[EVENT_FORMATS][0], 0)
    body = f.section(at)
    out = {}
    (systems,) = struct.unpack_from(f.endian + "I", body, 0)
    pos = 4
    for _ in range(systems):
        _, pos = _cstr(body, pos)
        (count,) = struct.unpack_from(f.endian + "I", body, pos)
        pos += 4
        for _ in range(count):
            (size,) = struct.unpack_from(f.endian + "Q", body, pos)
            text = body[pos + 8 : pos + 8 + size].decode()
            pos += 8 + size
            name = re.search(r"^name: (\S+)", text, re.M)[1]  # type: ignore[index]
            if name not in names:
                continue
            fields = {
                m["decl"].split()[-1].split("[")[0]: (
                    int(m["off"]),
                    int(m["size"]),
                    m["signed"] == "1",
                )
                for m in _FIELD.finditer(text)
            }
            fid = int(re.search(r"^ID: (\d+)", text, re.M)[1])  # type: ignore[index]
            out[fid] = Format(name, fid, fields, text.split("print fmt:", 1)[1])
    return out


def _commit_size(f: File) -> int:
    (at,) = struct.unpack_from(f.endian + "Q", f.options[HEADER_INFO][0], 0)
    text = f.section(at)[20:].decode(errors="replace")  # "header_page\0" + u64 size
    m = re.search(r"field: local_t commit;\s*offset:\d+;\s*size:(\d+);", text)
    assert m, "no commit field in header_page"
    return int(m[1])


def _cpu_pages(f: File, payload: bytes) -> dict[int, bytes]:
    """Inflated ring-buffer data of each CPU of the top instance's BUFFER option."""
    _, pos = _cstr(payload, 8)  # instance name
    _, pos = _cstr(payload, pos)  # clock
    page_size, ncpus = struct.unpack_from(f.endian + "II", payload, pos)
    f.page_size = page_size
    pos += 8
    out = {}
    for _ in range(ncpus):
        cpu, at, _ = struct.unpack_from(f.endian + "IQQ", payload, pos)  # size on disk
        pos += 20
        (chunks,) = f.u("I", at)
        at += 4
        data = []
        for _ in range(chunks):
            csize, _ = f.u("II", at)
            data.append(zlib.decompress(f.data[at + 8 : at + 8 + csize]))
            at += 8 + csize
        out[cpu] = b"".join(data)
    return out


def _records(f: File, pages: bytes, commit: int) -> Iterator[tuple[int, bytes]]:
    """(raw ts, payload) of every data record, page by page (formats.md §3.4)."""
    data_at = 8 + commit
    for base in range(0, len(pages), f.page_size):
        (ts,) = struct.unpack_from(f.endian + "Q", pages, base)
        (size,) = struct.unpack_from(f.endian + ("Q" if commit == 8 else "I"), pages, base + 8)
        end = base + data_at + (size & ((1 << 27) - 1))
        pos = base + data_at
        while pos < end:
            (hdr,) = struct.unpack_from(f.endian + "I", pages, pos)
            kind, delta = (
                (hdr & 0x1F, hdr >> 5) if f.endian == "<" else (hdr >> 27, hdr & 0x7FFFFFF)
            )
            if kind == 29:  # padding: delta 0 = the rest of the page
                if delta == 0:
                    break
                (length,) = struct.unpack_from(f.endian + "I", pages, pos + 4)
                ts += delta
                pos += 4 + length
            elif kind == 30:  # time extend
                (high,) = struct.unpack_from(f.endian + "I", pages, pos + 4)
                ts += (high << 27) + delta
                pos += 8
            elif kind == 31:  # absolute time stamp; the top 5 bits kept from the page's
                (high,) = struct.unpack_from(f.endian + "I", pages, pos + 4)
                ts = ((high << 27) | delta) | (ts & (0xF8 << 56))
                pos += 8
            elif kind == 0:  # long record: array[0] counts itself
                (length,) = struct.unpack_from(f.endian + "I", pages, pos + 4)
                ts += delta
                yield ts, pages[pos + 8 : pos + 4 + length]
                pos += 4 + ((length + 3) & ~3)
            else:
                ts += delta
                yield ts, pages[pos + 4 : pos + 4 + 4 * kind]
                pos += 4 + 4 * kind


def events(path: Path, names: set[str]) -> list[dict[str, object]]:
    """Every record of the events ``names``: ``ts`` (ns, as trace-cmd reports it), ``cpu``,
    ``event`` and every field of its format, in trace-cmd's order."""
    f = open_v7(path)
    fmts = formats(f, names)
    commit = _commit_size(f)
    top = next(p for p in f.options[BUFFER] if _cstr(p, 8)[0] == "")
    mult = shift = None
    if TSC2NSEC in f.options:
        mult, shift, _ = struct.unpack_from(f.endian + "IIQ", f.options[TSC2NSEC][0], 0)
    add = sum(_strtoll(p) * 1000 for p in f.options.get(DATE, [])[:1])
    add += sum(_strtoll(p) for p in f.options.get(OFFSET, [])[:1])
    streams = []
    for cpu, pages in sorted(_cpu_pages(f, top).items()):
        rows = []
        for raw, payload in _records(f, pages, commit):
            ts = ((raw * mult) >> shift if mult is not None else raw) + add
            (etype,) = struct.unpack_from(f.endian + "H", payload, 0)
            fmt = fmts.get(etype)
            row: dict[str, object] = {"ts": ts, "cpu": cpu, "event": fmt.name if fmt else None}
            if fmt:
                for name, (off, size, signed) in fmt.fields.items():
                    if size in (1, 2, 4, 8):
                        row[name] = int.from_bytes(
                            payload[off : off + size],
                            "little" if f.endian == "<" else "big",
                            signed=signed,
                        )
            rows.append(((ts, cpu, len(rows)), row))
        streams.append(rows)
    merged = heapq.merge(*streams, key=lambda r: r[0])
    return [row for _, row in merged if row["event"] is not None]


def symbols(print_fmt: str, field_name: str) -> tuple[int, dict[int, str]]:
    """Mask and table of the first ``__print_symbolic(REC->field [& mask], {value, "NAME"},
    ...)`` of a print fmt."""
    m = re.search(rf"__print_symbolic\(REC->{field_name}(?: & (0x[0-9a-fA-F]+))?,", print_fmt)
    assert m, f"no __print_symbolic of {field_name}"
    table = print_fmt[m.end() : print_fmt.index(")", m.end())]
    pairs = re.findall(r'\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*"([^"]*)"\s*\}', table)
    return int(m[1] or "-1", 0), {int(v, 0): n for v, n in pairs}
