"""The ABI numbers the perf.data test builder writes (tests/importers/perf/abi.py) are those of
the installed kernel uapi header, and the importer reads the same bits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from importers.perf.attr import FLAG, S
from tests.importers.perf import abi

HEADER = Path("/usr/include/linux/perf_event.h")  # Debian's linux-libc-dev (.ci/run)


@pytest.fixture(scope="module")
def header() -> str:
    if not HEADER.is_file():
        pytest.skip(f"{HEADER} not installed (.ci/run installs linux-libc-dev)")
    return HEADER.read_text()


def _enum(text: str, prefix: str) -> dict[str, int]:
    """``PREFIX_NAME = 1U << n`` / ``= n`` members of the header's enums."""
    out = {}
    for name, shift, value in re.findall(
        rf"^\s*{prefix}(\w+)\s*=\s*(?:1U\s*<<\s*(\d+)|(\d+))\s*,", text, re.M
    ):
        out[name] = 1 << int(shift) if shift else int(value)
    return out


def test_sample_bits_equal_the_uapi_header(header: str) -> None:
    sample = _enum(header, "PERF_SAMPLE_")
    for name, bit in abi.PERF_SAMPLE.items():
        assert sample[name] == bit, name
    assert sample["MAX"] == 1 << len(abi.PERF_SAMPLE)  # every bit is written out


def test_record_types_and_read_format_equal_the_uapi_header(header: str) -> None:
    records = _enum(header, "PERF_RECORD_")
    formats = _enum(header, "PERF_FORMAT_")
    for name, value in vars(abi).items():
        if name.startswith("PERF_RECORD_") and value < 64:  # 64 on: perf's user types
            assert records[name.removeprefix("PERF_RECORD_")] == value, name
        if name.startswith("PERF_FORMAT_"):
            assert formats[name.removeprefix("PERF_FORMAT_")] == value, name


def test_attr_flag_bits_follow_the_uapi_bitfield(header: str) -> None:
    body = header[header.index("__u64\t\t\tdisabled") :]
    body = body[: body.index("__reserved_1")]
    bit = 0
    for name, width in re.findall(r"(\w+)\s*:\s*(\d+)\s*[,;]", body):
        if name in abi.ATTR_FLAG:
            assert abi.ATTR_FLAG[name] == 1 << bit, name
        bit += int(width)
    assert bit == 38


def test_the_importer_reads_the_same_bits() -> None:
    assert S == abi.PERF_SAMPLE
    assert {k: FLAG[k] for k in abi.ATTR_FLAG} == abi.ATTR_FLAG
