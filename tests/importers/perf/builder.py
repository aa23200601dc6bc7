"""Write small perf.data files (file and pipe mode, either byte order) for layouts no shared
capture has: LOST records, READ groups, SWITCH_CPU_WIDE, COMPRESSED2, old attr sizes, records
out of order across FINISHED_ROUND, ... Layouts follow formats.md §4.1–§4.5."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import zstandard

from tests.importers.perf.abi import (
    ATTR_FLAG,
    PERF_RECORD_COMPRESSED2,
    PERF_RECORD_HEADER_ATTR,
    PERF_RECORD_HEADER_FEATURE,
    PERF_RECORD_HEADER_TRACING_DATA,
    PERF_RECORD_SAMPLE,
)
from tests.importers.perf.abi import PERF_SAMPLE as S
from tests.importers.tracedat.builder import Capture as TraceDatCapture
from tests.importers.tracedat.builder import Layout, _formats, _headers, _prefix

SAMPLE_ID_ALL = ATTR_FLAG["sample_id_all"]
TRACEPOINT_ID = 300  # sched_switch in tests.importers.tracedat.builder's formats


def bits(*names: str) -> int:
    out = 0
    for n in names:
        out |= S[n]
    return out


@dataclass
class Attr:
    type: int
    config: int
    sample_type: int
    ids: list[int]
    read_format: int = 0
    flags: int = SAMPLE_ID_ALL
    size: int = 112
    sample_period: int = 1

    def pack(self, lo: Layout) -> bytes:
        if lo.big:
            rev = int(f"{self.flags:064b}"[::-1], 2)
            flags = rev.to_bytes(8, "big")
        else:
            flags = self.flags.to_bytes(8, "little")
        head = lo.pack("IIQQQQ", self.type, self.size, self.config, self.sample_period,
                       self.sample_type, self.read_format)  # fmt: skip
        body = head + flags + bytes(max(0, 112 - 48))
        return body[: self.size]


@dataclass
class Writer:
    """Records in stream order, then :meth:`file` or :meth:`pipe` bytes."""

    lo: Layout = field(default_factory=Layout)
    attrs: list[Attr] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)
    features: dict[int, bytes] = field(default_factory=dict)

    def p(self, fmt: str, *v: int) -> bytes:
        return self.lo.pack(fmt, *v)

    def record(self, rtype: int, body: bytes, misc: int = 0) -> bytes:
        rec = self.p("IHH", rtype, misc, 8 + len(body)) + body
        self.records.append(rec)
        return rec

    def fields(self, attr: Attr, order: tuple[str, ...], **v: int) -> bytes:
        out = b""
        for name in order:
            if not attr.sample_type & S[name]:
                continue
            if name in ("TID",):
                out += self.p("ii", v.get("pid", 0), v.get("tid", 0))
            elif name == "CPU":
                out += self.p("II", v.get("cpu", 0), 0)
            elif name in ("ID", "IDENTIFIER"):
                out += self.p("Q", v.get("id", attr.ids[0] if attr.ids else 0))
            else:
                out += self.p("Q", v.get(name.lower(), 0))
        return out

    def sample_id(self, attr: Attr, **v: int) -> bytes:
        order = ("TID", "TIME", "ID", "STREAM_ID", "CPU", "IDENTIFIER")
        return self.fields(attr, order, **v) if attr.flags & SAMPLE_ID_ALL else b""

    def sample(
        self,
        attr: Attr,
        *,
        read: bytes = b"",
        callchain: list[int] | None = None,
        raw: bytes = b"",
        misc: int = 1,
        **v: int,
    ) -> bytes:
        prefix = ("IDENTIFIER", "IP", "TID", "TIME", "ADDR", "ID", "STREAM_ID", "CPU", "PERIOD")
        body = self.fields(attr, prefix, **v)
        if attr.sample_type & S["READ"]:
            body += read
        if attr.sample_type & S["CALLCHAIN"]:
            chain = callchain or []
            body += self.p("Q", len(chain)) + b"".join(self.p("Q", c) for c in chain)
        if attr.sample_type & S["RAW"]:
            data = raw + bytes(-(len(raw) + 4) % 8)
            body += self.p("I", len(data)) + data
        if attr.sample_type & S["BRANCH_STACK"]:
            body += self.p("Q", 0)
        if attr.sample_type & S["REGS_USER"]:
            body += self.p("Q", 0)  # abi NONE: no registers follow
        if attr.sample_type & S["STACK_USER"]:
            body += self.p("Q", 0)  # size 0: no data, no dyn_size
        return self.record(PERF_RECORD_SAMPLE, body, misc)

    def file(self) -> bytes:
        lo = self.lo
        attr_size = 112 + 16
        head_len = 104
        ids_blob = b""
        ids_at: list[tuple[int, int]] = []
        for a in self.attrs:
            ids_at.append((head_len + len(ids_blob), 8 * len(a.ids)))
            ids_blob += b"".join(self.p("Q", i) for i in a.ids)
        attrs_off = head_len + len(ids_blob)
        attrs = b"".join(
            a.pack(lo).ljust(112, b"\0") + self.p("QQ", *ids_at[k])
            for k, a in enumerate(self.attrs)
        )
        data_off = attrs_off + len(attrs)
        data = b"".join(self.records)
        feat_bits = sorted(self.features)
        table_off = data_off + len(data)
        payload_off = table_off + 16 * len(feat_bits)
        table, payloads = b"", b""
        for b in feat_bits:
            table += self.p("QQ", payload_off + len(payloads), len(self.features[b]))
            payloads += self.features[b]
        bitmap = [0, 0, 0, 0]
        for b in feat_bits:
            bitmap[b // 64] |= 1 << (b % 64)
        magic = b"2ELIFREP" if lo.big else b"PERFILE2"
        header = magic + self.p("QQQQQQQQ", 104, attr_size, attrs_off, len(attrs),
                                data_off, len(data), 0, 0)  # fmt: skip
        header += b"".join(self.p("Q", w) for w in bitmap)
        assert len(header) == 104
        return header + ids_blob + attrs + data + table + payloads

    def pipe(self, tracing: bytes | None = None) -> bytes:
        """Pipe mode: header, HEADER_ATTR records, TRACING_DATA (blob after it), records."""
        magic = b"2ELIFREP" if self.lo.big else b"PERFILE2"
        out = magic + self.p("Q", 16)
        for a in self.attrs:
            body = a.pack(self.lo) + b"".join(self.p("Q", i) for i in a.ids)
            out += self.p("IHH", PERF_RECORD_HEADER_ATTR, 0, 8 + len(body)) + body
        for bit, payload in sorted(self.features.items()):
            out += self.p("IHHQ", PERF_RECORD_HEADER_FEATURE, 0, 16 + len(payload), bit) + payload
        if tracing is not None:
            blob = tracing + bytes(-len(tracing) % 8)
            out += self.p("IHHII", PERF_RECORD_HEADER_TRACING_DATA, 0, 16, len(blob), 0) + blob
        return out + b"".join(self.records)

    def compress_all(self, record_type: int = PERF_RECORD_COMPRESSED2) -> None:
        """Replace the records by one COMPRESSED2 (or COMPRESSED) record holding them."""
        frame = zstandard.ZstdCompressor().compress(b"".join(self.records))
        if record_type == PERF_RECORD_COMPRESSED2:
            body = self.p("Q", len(frame)) + frame + bytes(-len(frame) % 8)
        else:
            body = frame
        self.records = [self.p("IHH", record_type, 0, 8 + len(body)) + body]


def tracing_data(lo: Layout) -> bytes:
    """A perf TRACING_DATA blob (trace.dat v6 metadata, version 0.6) with sched_switch."""
    capture = TraceDatCapture(layout=lo)
    ftrace, events = _formats(lo, capture.formats)
    cmd = b"42 worker\n"
    return (
        _prefix(capture, "0.6")
        + _headers(lo, capture.header_event)
        + ftrace
        + events
        + lo.pack("I", 0)
        + lo.pack("I", 0)
        + lo.pack("Q", len(cmd))
        + cmd
    )


def string(lo: Layout, text: str) -> bytes:
    raw = text.encode() + b"\0"
    raw += bytes(-len(raw) % 8)
    return lo.pack("I", len(raw)) + raw


def pmu_mappings(lo: Layout, mappings: dict[int, str]) -> bytes:
    out = lo.pack("I", len(mappings))
    for t, name in mappings.items():
        out += lo.pack("I", t) + string(lo, name)
    return out


def hybrid_topology(lo: Layout, pmus: dict[str, str]) -> bytes:
    out = lo.pack("I", len(pmus))
    for name, cpus in pmus.items():
        out += string(lo, name) + string(lo, cpus)
    return out


def nrcpus(lo: Layout, available: int, online: int) -> bytes:
    return struct.pack(lo.e + "II", available, online)
