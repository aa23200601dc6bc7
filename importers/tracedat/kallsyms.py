"""The capture's ``kallsyms``: which kernel function contains an address (formats.md §3.6).

A kernel's kallsyms has ~10^5 lines ``address type name [module]`` and a capture resolves a
handful of addresses (the callers of its ``print`` records), so the lines are read with numpy,
a block of lines at a time: a line counts when it starts like the regular expression
``^([0-9a-fA-F]{1,16}) \\S+ (\\S+)`` (bytes, multi-line) matches it, and only the names looked
up are decoded. A line-by-line regex took 0.15 s on a 2.7 MB kallsyms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: hex digit values by byte, -1 for any other byte
_HEX = np.full(256, -1, np.int8)
for _digits in (b"0123456789", b"abcdef", b"ABCDEF"):
    _HEX[np.frombuffer(_digits, np.uint8)] = np.arange(len(_digits)) + (_digits[0] > 0x39) * 10
#: what the regex's \s matches in a bytes pattern
_SPACE = np.zeros(256, bool)
_SPACE[np.frombuffer(b" \t\n\r\f\v", np.uint8)] = True
#: an address has at most this many hex digits
_DIGITS = 16
#: kallsyms text read at a time (:func:`read_kallsyms`)
BLOCK_BYTES = 1 << 18


@dataclass(frozen=True)
class Symbols:
    """The non-zero symbol addresses in ascending order, and where each name is in the text."""

    text: bytes | memoryview
    addresses: NDArray[np.uint64]
    name_start: NDArray[np.int64]
    name_end: NDArray[np.int64]

    def containing(self, address: int) -> str | None:
        """The name of the nearest symbol at or below ``address``, or None."""
        i = int(np.searchsorted(self.addresses, np.uint64(address), side="right")) - 1
        if i < 0:
            return None
        return bytes(self.text[self.name_start[i] : self.name_end[i]]).decode("utf-8", "replace")


def read_kallsyms(text: bytes | memoryview, block_bytes: int = BLOCK_BYTES) -> Symbols:
    """The symbols of a kallsyms text. Addresses of 0 (``kptr_restrict``) resolve nothing.

    The text is read ``block_bytes`` at a time, cut after a newline: the per-byte and
    per-line work arrays of a whole 2.7 MB kallsyms peaked at 15 MiB, two thirds of a small
    import's memory above its libraries, for the few addresses a capture looks up. ``text``
    may be a view of the trace file (:attr:`TraceDat.kallsyms`): only a block is copied.
    """
    view = memoryview(text)
    parts = [_no_symbols()]
    start = 0
    while start < len(view):
        block = bytearray(view[start : start + block_bytes])
        if start + len(block) < len(view):
            cut = block.rfind(b"\n") + 1
            while not cut and start + len(block) < len(view):  # a line longer than a block
                searched = len(block)
                block += view[start + searched : start + searched + block_bytes]
                cut = block.find(b"\n", searched) + 1
            if cut:
                del block[cut:]
        value, name_start, name_end = _block_symbols(block)
        parts.append((value, name_start + start, name_end + start))
        start += len(block)
    value, name_start, name_end = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.argsort(value, kind="stable")
    return Symbols(text, value[order], name_start[order], name_end[order])


def _no_symbols() -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]]:
    return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)


def _block_symbols(
    text: bytearray,
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]]:
    """The non-zero addresses of the whole lines of ``text``, in line order, and where each
    line's name starts and ends in ``text``."""
    n = len(text)
    # newlines after the text: every search below finds a stop, every line a full window
    buf = np.frombuffer(text + b"\n" * (_DIGITS + 1), np.uint8)
    # every whitespace byte: all are <= 0x20, a cheap comparison before the exact test
    low = np.flatnonzero(buf <= 0x20)
    spaces = low[_SPACE[buf[low]]]
    starts = np.concatenate([[0], spaces[buf[spaces] == 0x0A] + 1])
    starts = starts[starts < n]
    # the address: 1-16 hex digits, then one space
    digits = _HEX[np.lib.stride_tricks.sliding_window_view(buf, _DIGITS + 1)[starts]]
    width = np.argmax(digits < 0, axis=1)  # digits before the first other byte (<= 16)
    after = starts + width
    ok = (width > 0) & (buf[after] == 0x20)
    # the type: non-space characters up to one space; the name: non-space characters
    kind = after + 1
    kind_end = spaces[np.searchsorted(spaces, np.minimum(kind, n))]
    ok &= (kind_end > kind) & (buf[kind_end] == 0x20)
    name = kind_end + 1
    name_end = spaces[np.searchsorted(spaces, np.minimum(name, n))]
    ok &= name_end > name
    # the digits left-aligned in 16 nibbles (zeros after the width), packed two to a byte,
    # read as big-endian 64-bit words, shifted right by the missing digits
    nibbles = np.where(np.arange(_DIGITS) < width[:, None], digits[:, :_DIGITS], 0)
    nibbles = nibbles.astype(np.uint8)
    octets = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2])
    missing = (_DIGITS - width).astype(np.uint64) * np.uint64(4)
    values = octets.view(">u8").reshape(-1).astype(np.uint64) >> missing
    keep = np.flatnonzero(ok & (values != 0))
    return values[keep], name[keep], name_end[keep]
