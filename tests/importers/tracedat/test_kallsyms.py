"""``read_kallsyms`` reads exactly the lines the reference regular expression takes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from importers.tracedat.file import read_container
from importers.tracedat.kallsyms import read_kallsyms
from importers.tracedat.reader import open_reader

# the reference: one match per line start; an address longer than 64 bits is no address
LINE = re.compile(rb"^([0-9a-fA-F]{1,16}) \S+ (\S+)", re.M)


def reference(text: bytes) -> list[tuple[int, bytes]]:
    """Non-zero (address, name) pairs in ascending address order (stable)."""
    pairs = [(int(a, 16), name) for a, name in LINE.findall(text)]
    return sorted((p for p in pairs if p[0]), key=lambda p: p[0])


def read(text: bytes) -> list[tuple[int, bytes]]:
    s = read_kallsyms(text)
    names = [text[a:b] for a, b in zip(s.name_start, s.name_end, strict=True)]
    return list(zip(s.addresses.tolist(), names, strict=True))


FIELD = st.text(alphabet="0123456789abcdefABCDEFxyz_ \t\r\v\f[]", max_size=20).map(str.encode)


@given(st.lists(st.tuples(FIELD, FIELD, FIELD), max_size=12), st.booleans())
@example([(b"ffff000008080000", b"T", b"_text")], False)
@example([(b"1" * 17, b"t", b"too_long"), (b"0", b"t", b"zero"), (b"a", b"\tt", b"b")], True)
def test_same_lines_as_the_regex(lines: list[tuple[bytes, bytes, bytes]], newline: bool) -> None:
    text = b"\n".join(b" ".join(parts) for parts in lines) + (b"\n" if newline else b"")
    assert read(text) == reference(text)


def test_a_real_kallsyms(shared_traces: Path) -> None:
    td = read_container(open_reader(shared_traces / "juno-sched-load" / "trace.dat"))
    got, want = read(td.kallsyms), reference(td.kallsyms)
    assert len(got) > 60_000 and got == want


@pytest.mark.parametrize(("address", "name"), [(0x100, None), (0x1FFF, "a"), (0x2000, "b")])
def test_containing(address: int, name: str | None) -> None:
    symbols = read_kallsyms(b"2000 t b\n1000 T a\n0 t hidden\n")
    assert symbols.containing(address) == name
    assert symbols.addresses.dtype == np.uint64
