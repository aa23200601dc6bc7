"""Write small trace.dat files (v6 and v7) for tests of layouts no shared capture has.

The writer follows the layouts of formats.md §3.1–§3.4 (trace-cmd's trace-output.c) so tests
can cover big-endian files, 32-bit kernels, every ring-buffer record type, missed-event flags,
v7 sections (none/zlib/zstd, chained OPTIONS, STRINGS), sparse CPU ids and instances.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import zstandard

COMMON = [
    ("unsigned short common_type", 0, 2, 0),
    ("unsigned char common_flags", 2, 1, 0),
    ("unsigned char common_preempt_count", 3, 1, 0),
    ("int common_pid", 4, 4, 1),
]
SWITCH_ID = 300
SWITCH_FIELDS = [
    ("char prev_comm[16]", 8, 16, 1),
    ("pid_t prev_pid", 24, 4, 1),
    ("int prev_prio", 28, 4, 1),
    ("long prev_state", 32, 8, 1),
    ("char next_comm[16]", 40, 16, 1),
    ("pid_t next_pid", 56, 4, 1),
    ("int next_prio", 60, 4, 1),
]
SWITCH_PRINT = (
    '"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d '
    'next_prio=%d", REC->prev_comm, REC->prev_pid, REC->prev_prio, REC->prev_state & (256-1) ? '
    '__print_flags(REC->prev_state & (256-1), "|", { 0x01, "S" }, { 0x02, "D" }) : "R", '
    'REC->prev_state & 256 ? "+" : "", REC->next_comm, REC->next_pid, REC->next_prio'
)
EXEC_ID = 301
EXEC_FIELDS = [("__data_loc char[] filename", 8, 4, 1), ("pid_t pid", 12, 4, 1)]


def format_text(
    name: str, event_id: int, fields: list[tuple[str, int, int, int]], pfmt: str
) -> str:
    def line(f: tuple[str, int, int, int]) -> str:
        return f"\tfield:{f[0]};\toffset:{f[1]};\tsize:{f[2]};\tsigned:{f[3]};\n"

    return (
        f"name: {name}\nID: {event_id}\nformat:\n"
        + "".join(line(f) for f in COMMON)
        + "\n"
        + "".join(line(f) for f in fields)
        + f"\nprint fmt: {pfmt}\n"
    )


SWITCH_FORMAT = format_text("sched_switch", SWITCH_ID, SWITCH_FIELDS, SWITCH_PRINT)
EXEC_FORMAT = format_text(
    "sched_process_exec",
    EXEC_ID,
    EXEC_FIELDS,
    '"filename=%s pid=%d", __get_str(filename), REC->pid',
)


@dataclass
class Layout:
    """Byte order and kernel long size of the capture being written."""

    big: bool = False
    kernel_long: int = 8
    page_size: int = 4096

    @property
    def e(self) -> str:
        return ">" if self.big else "<"

    def pack(self, fmt: str, *values: int) -> bytes:
        return struct.pack(self.e + fmt, *values)

    @property
    def data_offset(self) -> int:
        return 8 + self.kernel_long

    def header_page(self) -> str:
        k = self.kernel_long
        return (
            "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
            f"\tfield: local_t commit;\toffset:8;\tsize:{k};\tsigned:1;\n"
            "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
            f"\tfield: char data;\toffset:{8 + k};\tsize:{self.page_size - 8 - k};\tsigned:0;\n"
        )

    # ----- records (formats.md §3.4)
    def hdr(self, type_len: int, delta: int) -> bytes:
        word = (type_len << 27) | delta if self.big else (delta << 5) | type_len
        return self.pack("I", word)

    def data(self, delta: int, payload: bytes) -> bytes:
        payload += bytes(-len(payload) % 4)
        if len(payload) <= 28 * 4:
            return self.hdr(len(payload) // 4, delta) + payload
        return self.hdr(0, delta) + self.pack("I", len(payload) + 4) + payload

    def large(self, delta: int, payload: bytes) -> bytes:
        """type_len 0 even for a short record (RB_FORCE_8BYTE_ALIGNMENT arches)."""
        payload += bytes(-len(payload) % 4)
        return self.hdr(0, delta) + self.pack("I", len(payload) + 4) + payload

    def extend(self, delta: int) -> bytes:
        return self.hdr(30, delta & 0x7FFFFFF) + self.pack("I", delta >> 27)

    def stamp(self, ts: int) -> bytes:
        return self.hdr(31, ts & 0x7FFFFFF) + self.pack("I", (ts >> 27) & 0xFFFFFFFF)

    def padding(self, delta: int, length: int) -> bytes:
        return self.hdr(29, delta) + self.pack("I", length) + bytes(max(0, length - 4))

    def page(
        self, ts: int, records: bytes, missed: int | None = None, commit: int | None = None
    ) -> bytes:
        size = len(records) if commit is None else commit
        flags = size
        tail = b""
        if missed is not None:
            flags |= 1 << 31
            if missed >= 0:
                flags |= 1 << 30
                tail = self.pack("Q" if self.kernel_long == 8 else "I", missed)
        head = self.pack("Q", ts) + self.pack("Q" if self.kernel_long == 8 else "I", flags)
        body = head + records + tail
        assert len(body) <= self.page_size, "records do not fit one page"
        return body + bytes(self.page_size - len(body))

    # ----- payloads
    def switch(
        self, pid: int, prev: str, prev_pid: int, state: int, nxt: str, next_pid: int
    ) -> bytes:
        return (
            self.pack("HBBi", SWITCH_ID, 1, 2, pid)
            + prev.encode().ljust(16, b"\0")
            + self.pack("iiq", prev_pid, 120, state)
            + nxt.encode().ljust(16, b"\0")
            + self.pack("ii", next_pid, 120)
        )

    def exec_(self, pid: int, filename: str, nul: bool = True) -> bytes:
        text = filename.encode() + (b"\0" if nul else b"")
        return self.pack("HBBiIi", EXEC_ID, 0, 0, pid, (len(text) << 16) | 16, pid) + text


@dataclass
class Capture:
    """What to write: per-instance, per-CPU page bytes, and options."""

    layout: Layout = field(default_factory=Layout)
    cpus: int = 2
    data: dict[str, dict[int, bytes]] = field(default_factory=lambda: {"": {}})
    clock: str | None = "local"
    page_sizes: dict[str, int] = field(default_factory=dict)
    cmdlines: str = "1 init\n42 worker\n"
    extra_options: list[tuple[int, bytes]] = field(default_factory=list)
    formats: list[tuple[str, str]] = field(
        default_factory=lambda: [("sched", SWITCH_FORMAT), ("sched", EXEC_FORMAT)]
    )
    header_event: str = "# compressed entry header\n\ttype_len    :    5 bits\n"
    kallsyms: bytes = b""  # /proc/kallsyms text (v6 only)
    printk: bytes = b""  # printk_formats text (v6 only)


def _u(layout: Layout, fmt: str, v: int) -> bytes:
    return layout.pack(fmt, v)


def _prefix(c: Capture, version: str) -> bytes:
    lo = c.layout
    return (
        b"\x17\x08\x44tracing"
        + version.encode()
        + b"\0"
        + bytes([int(lo.big), 8])
        + lo.pack("I", lo.page_size)
    )


def _headers(lo: Layout, header_event: str) -> bytes:
    hp, he = lo.header_page().encode(), header_event.encode()
    return (
        b"header_page\0"
        + lo.pack("Q", len(hp))
        + hp
        + b"header_event\0"
        + lo.pack("Q", len(he))
        + he
    )


def _formats(lo: Layout, formats: list[tuple[str, str]]) -> tuple[bytes, bytes]:
    ftrace = lo.pack("I", 0)
    systems: dict[str, list[bytes]] = {}
    for system, text in formats:
        systems.setdefault(system, []).append(text.encode())
    events = lo.pack("I", len(systems))
    for system, texts in systems.items():
        events += system.encode() + b"\0" + lo.pack("I", len(texts))
        events += b"".join(lo.pack("Q", len(t)) + t for t in texts)
    return ftrace, events


def _option(lo: Layout, opt_id: int, data: bytes) -> bytes:
    return lo.pack("HI", opt_id, len(data)) + data


def write_v6(c: Capture) -> bytes:
    """A v6 file: sequential pieces, an options block, flyrecord tables (+ instances)."""
    lo = c.layout
    ftrace, events = _formats(lo, c.formats)
    cmd = c.cmdlines.encode()
    head = bytearray(_prefix(c, "6") + _headers(lo, c.header_event) + ftrace + events)
    head += lo.pack("I", len(c.kallsyms)) + c.kallsyms + lo.pack("I", len(c.printk)) + c.printk
    head += lo.pack("Q", len(cmd)) + cmd + lo.pack("I", c.cpus)
    head += b"options  \0"
    patches: list[tuple[int, str]] = []
    if c.clock:
        head += _option(lo, 4, f"local global [{c.clock}]\0".encode())
    for opt_id, data in c.extra_options:
        head += _option(lo, opt_id, data)
    for name in c.data:
        if name:
            patches.append((len(head) + 6, name))
            head += _option(lo, 3, bytes(8) + name.encode() + b"\0")
    head += lo.pack("H", 0)
    tables: dict[str, int] = {}
    for name in c.data:
        tables[name] = len(head)
        head += b"flyrecord\0" + bytes(16 * c.cpus)
        if c.clock:
            clock = f"[{c.clock}]".encode()
            head += lo.pack("Q", len(clock)) + clock
    for pos, name in patches:
        head[pos : pos + 8] = lo.pack("Q", tables[name])
    body = bytearray(head)
    for name, per_cpu in c.data.items():
        for cpu in range(c.cpus):
            blob = per_cpu.get(cpu, b"")
            body += bytes(-len(body) % lo.page_size)
            off = len(body) if blob else 0
            body += blob
            entry = tables[name] + 10 + 16 * cpu
            body[entry : entry + 16] = lo.pack("QQ", off, len(blob))
    return bytes(body)


def _compress(algo: str, data: bytes) -> bytes:
    return zlib.compress(data) if algo == "zlib" else zstandard.ZstdCompressor().compress(data)


def write_v7(c: Capture, compression: str = "none") -> bytes:
    """A v7 file: sections with a STRINGS table, two chained OPTIONS sections, BUFFER sections."""
    lo = c.layout
    out = bytearray(_prefix(c, "7") + (compression.encode() + b"\0") + b"1.0\0")
    first_options_at = len(out)
    out += bytes(8)
    strings = bytearray()
    compressed = compression != "none"

    def section(sid: int, desc: str, payload: bytes, compress: bool = compressed) -> int:
        at = len(out)
        string_id = len(strings)
        strings.extend(desc.encode() + b"\0")
        if compress:
            packed = _compress(compression, payload)
            payload = lo.pack("II", len(packed), len(payload)) + packed
        out.extend(lo.pack("HHiQ", sid, int(compress), string_id, len(payload)) + payload)
        return at

    ftrace, events = _formats(lo, c.formats)
    cmd = c.cmdlines.encode()
    meta = {
        16: section(16, "headers", _headers(lo, c.header_event)),
        17: section(17, "ftrace events", ftrace),
        18: section(18, "events format", events),
        21: section(21, "command lines", lo.pack("Q", len(cmd)) + cmd),
    }
    buffers = []
    for name, per_cpu in c.data.items():
        page_size = c.page_sizes.get(name, lo.page_size)
        sec = section(3, f"buffer flyrecord {name}", b"", compress=False)
        out[sec + 2 : sec + 4] = lo.pack("H", int(compressed))
        cpus = []
        for cpu, blob in sorted(per_cpu.items()):
            out.extend(bytes(-len(out) % page_size))
            at = len(out)
            if compressed:
                half = (len(blob) // page_size // 2) * page_size or len(blob)
                chunks = [blob[:half], blob[half:]] if half < len(blob) else [blob]
                out.extend(lo.pack("I", len(chunks)))
                for chunk in chunks:
                    packed = _compress(compression, chunk)
                    out.extend(lo.pack("II", len(packed), len(chunk)) + packed)
            else:
                out.extend(blob)
            cpus.append((cpu, at, len(out) - at))
        size_at = sec + 8
        out[size_at : size_at + 8] = lo.pack("Q", len(out) - sec - 16)
        opt = lo.pack("Q", sec) + name.encode() + b"\0" + (c.clock or "local").encode() + b"\0"
        opt += lo.pack("II", page_size, len(cpus))
        opt += b"".join(lo.pack("IQQ", cpu, at, size) for cpu, at, size in cpus)
        buffers.append(opt)
    # Second OPTIONS section first, so the first can chain to it (order is not fixed, §3.3).
    second = b"".join(_option(lo, 3, b) for b in buffers) + _option(lo, 8, lo.pack("I", c.cpus))
    second += lo.pack("HI", 0, 8) + lo.pack("Q", 0)
    second_at = section(0, "options", second)
    first = b"".join(_option(lo, k, lo.pack("Q", v)) for k, v in meta.items())
    if c.clock:
        first += _option(lo, 4, f"local [{c.clock}]\0".encode())
    first += b"".join(_option(lo, k, d) for k, d in c.extra_options)
    first += lo.pack("HI", 0, 8) + lo.pack("Q", second_at)
    first_at = section(0, "options", first)
    section(15, "strings", bytes(strings) + b"strings\0")
    out[first_options_at : first_options_at + 8] = lo.pack("Q", first_at)
    return bytes(out)
