"""importers.heap: the heap's free pages leave the process, also those between live blocks."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# As the CLI runs (freed blocks kept, replay.heap), 100 MB of 1 MB arrays with every other one
# freed: the free blocks lie between live ones, below the heap's top, where glibc's automatic
# trimming never looks. Print the resident MB before and after trim_heap (or none).
PROBE = """
import os, sys
import numpy as np
from replay.heap import keep_freed_blocks
from importers.heap import trim_heap
assert keep_freed_blocks()
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
arrays = [np.ones(1 << 17) for _ in range(100)]
del arrays[::2]
before = resident_mb()
if sys.argv[1] == "trim":
    trim_heap()
print(before, resident_mb())
"""


def _resident(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], check=True, capture_output=True, text=True, cwd=ROOT
    )
    before, after = map(int, out.stdout.split())
    return before, after


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_blocks_between_live_ones_leave_the_process() -> None:
    before, after = _resident("keep")
    assert before - after < 5  # kept: freeing alone gives nothing back
    before, after = _resident("trim")
    assert before - after >= 45  # of the 50 MB freed
