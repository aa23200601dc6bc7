"""Text of ftrace's own ``print``, ``bputs`` and ``bprint`` records (``trace_printk``, markers).

These records carry no format of their own to decode: ``print`` holds the text, ``bputs`` a
pointer to a constant string and ``bprint`` a pointer to a format plus its arguments packed by
the kernel's ``vbin_printf`` (lib/vsprintf.c); the capture's ``printk_formats`` map those
pointers to text and ``kallsyms`` names the calling function (formats.md §3.6). They are few
(markers, debug prints), so each is rendered in Python, as ``trace-cmd report`` prints it:
``<caller>: <text>``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import cached_property

from importers.tracedat.kallsyms import Symbols, read_kallsyms
from importers.tracefs.event_format import EventFormat

#: events whose ``args`` are rendered here (system ``ftrace``)
RENDERED = frozenset({"print", "bputs", "bprint"})

# One printf conversion: flags, width, precision, length modifier, conversion.
_SPEC = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d+|\*))?(hh|h|ll|l|L|z|Z|t|j)?([diouxXcspS%])")


@dataclass
class PrintkContext:
    """``printk_formats`` and ``kallsyms`` of one capture, parsed on first use."""

    printk_text: bytes
    kallsyms_text: bytes | memoryview
    long_size: int
    big_endian: bool

    @cached_property
    def formats(self) -> dict[int, str]:
        """``0xADDR : "fmt"`` lines: address -> format (escapes such as ``\\n`` decoded)."""
        out: dict[int, str] = {}
        for line in self.printk_text.decode("utf-8", "replace").splitlines():
            addr, sep, text = line.partition(" : ")
            if not sep:
                continue
            try:
                key = int(addr.strip(), 16)
            except ValueError:
                continue
            text = text.strip()
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1]
            out[key] = text.encode("utf-8").decode("unicode_escape", "replace")
        return out

    @cached_property
    def symbols(self) -> Symbols:
        return read_kallsyms(self.kallsyms_text)

    def symbol(self, address: int) -> str:
        """The function containing ``address`` (nearest lower symbol), or the address in hex.

        ``kallsyms`` read under ``kptr_restrict`` lists every address as 0; nothing then
        resolves, as with trace-cmd.
        """
        name = self.symbols.containing(address)
        return name if name is not None else f"0x{address:x}"

    def render(self, fmt: EventFormat, payload: bytes) -> str | None:
        """``<caller>: <text>`` of one ``print`` / ``bputs`` / ``bprint`` record."""
        ip = _field_int(fmt, payload, "ip", self.big_endian)
        if ip is None:
            return None
        caller = self.symbol(ip)
        if fmt.name == "print":
            buf = fmt.field("buf")
            text = payload[buf.offset :] if buf is not None else b""
            return f"{caller}: {_cstr(text).rstrip(chr(10))}"
        key = _field_int(fmt, payload, "str" if fmt.name == "bputs" else "fmt", self.big_endian)
        template = self.formats.get(key) if key is not None else None
        if template is None:
            return f"{caller}: [unknown format 0x{key or 0:x}]"
        if fmt.name == "bputs":
            return f"{caller}: {template.rstrip(chr(10))}"
        buf = fmt.field("buf")
        args = payload[buf.offset :] if buf is not None else b""
        return f"{caller}: {vbin_printf(template, args, self.long_size, self.big_endian)}".rstrip(
            "\n"
        )


def _field_int(fmt: EventFormat, payload: bytes, name: str, big: bool) -> int | None:
    f = fmt.field(name)
    if f is None or f.size not in (4, 8) or f.offset + f.size > len(payload):
        return None
    code = (">" if big else "<") + ("Q" if f.size == 8 else "I")
    value: int = struct.unpack_from(code, payload, f.offset)[0]
    return value


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def vbin_printf(template: str, buf: bytes, long_size: int, big: bool) -> str:
    """Format ``template`` with the arguments ``vbin_printf`` packed into ``buf``.

    Packing (lib/vsprintf.c ``vbin_printf`` / ``bstr_printf``): each integer is aligned to its
    size (8-byte values to 4) and stored in that size; ``%s`` strings are stored inline with
    their NUL; ``*`` widths are ints. Arguments missing from a short buffer print as ``?``.
    """
    pos = 0
    order = ">" if big else "<"

    def take(size: int, signed: bool) -> int | None:
        nonlocal pos
        pos = (pos + min(size, 4) - 1) // min(size, 4) * min(size, 4)
        if pos + size > len(buf):
            return None
        code = {1: "b", 2: "h", 4: "i", 8: "q"}[size]
        value: int = struct.unpack_from(order + (code if signed else code.upper()), buf, pos)[0]
        pos += size
        return value

    def spec(m: re.Match[str]) -> str:
        nonlocal pos
        flags, width, precision, length, conv = m.groups()
        if conv == "%":
            return "%"
        if width == "*":
            width = str(take(4, True) or 0)
        if precision == "*":
            precision = str(take(4, True) or 0)
        if conv == "s":
            end = buf.find(b"\0", pos)
            text = buf[pos : end if end >= 0 else len(buf)].decode("utf-8", "replace")
            pos = end + 1 if end >= 0 else len(buf)
            py = f"%{flags}{width or ''}{'.' + precision if precision else ''}s"
            return py % text
        size = {"hh": 1, "h": 2, "l": long_size, "z": long_size, "Z": long_size,
                "t": long_size, "ll": 8, "L": 8, "j": 8}.get(length or "", 4)  # fmt: skip
        if conv in "pS":
            size = long_size
        elif conv == "c":
            size = 1  # save_arg(char)
        value = take(size, conv in "di")
        if value is None:
            return "?"
        if conv in "pS":
            return f"0x{value:x}"
        if conv == "c":
            return chr(value & 0xFF)
        py_conv = {"i": "d", "u": "d"}.get(conv, conv)
        return f"%{flags}{width or ''}{'.' + precision if precision else ''}{py_conv}" % value

    return _SPEC.sub(spec, template)
