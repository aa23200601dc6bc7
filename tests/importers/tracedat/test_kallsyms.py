"""``read_kallsyms`` reads exactly the lines the reference regular expression takes."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from importers.tracedat.file import read_container
from importers.tracedat.kallsyms import BLOCK_BYTES, read_kallsyms
from importers.tracedat.reader import open_reader

# the reference: one match per line start; an address longer than 64 bits is no address
LINE = re.compile(rb"^([0-9a-fA-F]{1,16}) \S+ (\S+)", re.M)


def reference(text: bytes) -> list[tuple[int, bytes]]:
    """Non-zero (address, name) pairs in ascending address order (stable)."""
    pairs = [(int(a, 16), name) for a, name in LINE.findall(text)]
    return sorted((p for p in pairs if p[0]), key=lambda p: p[0])


def read(text: bytes | memoryview, block_bytes: int = BLOCK_BYTES) -> list[tuple[int, bytes]]:
    s = read_kallsyms(text, block_bytes)
    names = [bytes(text[a:b]) for a, b in zip(s.name_start, s.name_end, strict=True)]
    return list(zip(s.addresses.tolist(), names, strict=True))


FIELD = st.text(alphabet="0123456789abcdefABCDEFxyz_ \t\r\v\f[]", max_size=20).map(str.encode)


@given(
    st.lists(st.tuples(FIELD, FIELD, FIELD), max_size=12),
    st.booleans(),
    st.integers(1, 80) | st.just(BLOCK_BYTES),
)
@example([(b"ffff000008080000", b"T", b"_text")], False, BLOCK_BYTES)
@example([(b"1" * 17, b"t", b"too_long"), (b"0", b"t", b"zero"), (b"a", b"\tt", b"b")], True, 9)
@example([(b"2", b"t", b"b"), (b"1", b"t", b"a")], True, 6)  # a cut after each line
def test_same_lines_as_the_regex(
    lines: list[tuple[bytes, bytes, bytes]], newline: bool, block_bytes: int
) -> None:
    """Whatever the blocks the text is read in (lines longer than a block included)."""
    text = b"\n".join(b" ".join(parts) for parts in lines) + (b"\n" if newline else b"")
    assert read(text, block_bytes) == reference(text)


@pytest.fixture(scope="module")
def juno_kallsyms(shared_traces: Path) -> memoryview:
    """The kallsyms of a real capture, as the importer reads it: a view of the mapped file."""
    td = read_container(open_reader(shared_traces / "juno-sched-load" / "trace.dat"))
    assert isinstance(td.kallsyms, memoryview)
    return td.kallsyms


@pytest.mark.parametrize("block_bytes", [BLOCK_BYTES, 4096])
def test_a_real_kallsyms(juno_kallsyms: memoryview, block_bytes: int) -> None:
    got, want = read(juno_kallsyms, block_bytes), reference(bytes(juno_kallsyms))
    assert len(got) > 60_000 and got == want


def test_a_real_kallsyms_is_read_in_little_memory(juno_kallsyms: memoryview) -> None:
    """2.7 MB of kallsyms read whole took 15 MiB of work arrays, and its copy out of the file
    2.7 MiB more; a block at a time from the file, 5 MiB: the 65 k symbols (24 bytes each)
    twice over while they are sorted, and a block's work."""
    tracemalloc.start()
    try:
        symbols = read_kallsyms(juno_kallsyms)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(symbols.addresses) > 60_000 and peak < 8 << 20


@pytest.mark.parametrize(("address", "name"), [(0x100, None), (0x1FFF, "a"), (0x2000, "b")])
def test_containing(address: int, name: str | None) -> None:
    symbols = read_kallsyms(b"2000 t b\n1000 T a\n0 t hidden\n")
    assert symbols.containing(address) == name
    assert symbols.addresses.dtype == np.uint64
