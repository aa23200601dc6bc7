"""trace_printk / marker text: ``vbin_printf`` argument packing and symbol lookup (§3.6)."""

from __future__ import annotations

import struct

import pytest

from importers.tracedat.printk import PrintkContext, vbin_printf
from importers.tracefs.event_format import parse_event_format


def pack(big: bool, *parts: tuple[str, object]) -> bytes:
    """Pack like lib/vsprintf.c vbin_printf: ints aligned to their size (8-byte ones to 4)."""
    out = bytearray()
    e = ">" if big else "<"
    for code, value in parts:
        if code == "s":
            assert isinstance(value, str)
            out += value.encode() + b"\0"
            continue
        size = struct.calcsize(code)
        out += bytes(-len(out) % min(size, 4))
        out += struct.pack(e + code, value)
    return bytes(out)


@pytest.mark.parametrize("big", [False, True])
def test_mixed_arguments(big: bool) -> None:
    buf = pack(big, ("i", -5), ("s", "ab"), ("Q", 1 << 40), ("h", 7), ("B", 65), ("I", 255))
    text = vbin_printf("%d %s %llx %hd %c %#x%%", buf, 8, big)
    assert text == f"-5 ab {1 << 40:x} 7 A 0xff%"


def test_long_follows_the_kernel_long_size() -> None:
    assert vbin_printf("%lu|%lu", pack(False, ("I", 3), ("I", 4)), 4, False) == "3|4"
    assert vbin_printf("%lu", pack(False, ("Q", 1 << 33)), 8, False) == str(1 << 33)


def test_star_width_and_short_buffer() -> None:
    assert vbin_printf("[%*d]", pack(False, ("i", 4), ("i", 7)), 8, False) == "[   7]"
    assert vbin_printf("%d %d", pack(False, ("i", 1)), 8, False) == "1 ?"


BPRINT = """name: bprint
ID: 6
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long ip;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const char * fmt;\toffset:16;\tsize:8;\tsigned:0;
\tfield:u32 buf[];\toffset:24;\tsize:0;\tsigned:0;

print fmt: "%ps: %s", (void *)REC->ip, REC->fmt
"""


def test_bprint_record_with_caller_from_kallsyms() -> None:
    ctx = PrintkContext(
        printk_text=b'0xffff0000aa : "freq=%u cpu=%d\\n"\n',
        kallsyms_text=b"ffff000008080000 T _text\nffff000008100000 t cpufreq_notify\n",
        long_size=8,
        big_endian=False,
    )
    fmt = parse_event_format(BPRINT, system="ftrace")
    record = struct.pack("<HBBiQQ", 6, 0, 0, 1, 0xFFFF000008100040, 0xFFFF0000AA)
    record += pack(False, ("I", 1800000), ("i", 3))
    assert ctx.render(fmt, record) == "cpufreq_notify: freq=1800000 cpu=3"
    unknown = struct.pack("<HBBiQQ", 6, 0, 0, 1, 0x10, 0xBAD)
    assert ctx.render(fmt, unknown) == "0x10: [unknown format 0xbad]"
