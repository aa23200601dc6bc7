"""Mutated copies of the shared trace.dat files: every outcome is a capture or a clean error.

The mutations (:mod:`tests.importers.mutations`) land mostly in the header and metadata
region, where a length or count is most likely to be, and in the ring-buffer pages at the end;
a targeted one zeroes the chunk count of a compressed CPU.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from importers.capture import Capture
from importers.tracedat.file import read_container
from importers.tracedat.read import read_tracedat
from importers.tracedat.reader import open_reader
from tests.importers.mutations import Mutation, mutation_outcomes

FILES = ["juno-sched-load/trace.dat", "kvm-x86-hostguest-v7/trace.dat"]
TIME_BUDGET_S = 25.0
PER_FILE = 60


@pytest.mark.slow
@pytest.mark.parametrize("rel", FILES)
def test_mutated_files_give_captures_or_clean_errors(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    original = (shared_traces / rel).read_bytes()
    read_tracedat(shared_traces / rel)  # compile the numba loops before timing and tracing
    # Headers, formats and options sit in the first part of both files; the ring-buffer
    # pages are in the last few percent.
    regions = ((0.5, 0, 1 << 16), (0.35, len(original) * 24 // 25, len(original)))
    seen = mutation_outcomes(
        read_tracedat,
        original,
        regions,
        tmp_path / "mutated.dat",
        f"tracedat-mutations-{rel}",
        runs=PER_FILE,
        seconds=TIME_BUDGET_S / len(FILES),
        strict_every=2,
        # Inflated v7 data is ~10x the file; anything far beyond is a size taken on trust.
        peak_limit=64 * len(original),
    )
    assert seen["capture"] + seen["error"] >= 10 and seen["error"] > 0, seen


@pytest.mark.slow
@pytest.mark.parametrize(
    "rel", ["kvm-x86-hostguest-v7/trace.dat", "kvm-x86-host-v7-kvmevents/trace.dat"]
)
def test_compressed_cpu_data_without_chunks_is_lost_data(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    # a v7 CPU whose compressed-chunk count is 0 lost its events while the summary said
    # "lost events none reported": now it is counted, and that CPU's time is unknown
    path = shared_traces / rel
    original = path.read_bytes()
    td = read_container(open_reader(path))
    streams = [(s.cpu, s.offset) for inst in td.instances for s in inst.cpus]

    def zero_chunk_count(data: bytes, rng: random.Random) -> bytes:
        _, at = rng.choice(streams)
        return data[:at] + bytes(4) + data[at + 4 :]

    def check(cap: Capture, data: bytes, mutation: Mutation | None) -> None:
        zeroed = sorted(cpu for cpu, at in streams if data[at : at + 4] == bytes(4))
        lost = cap.frame("lost_events").filter(pl.col("kind") == "unreadable")
        assert sorted(lost["cpu"].to_list()) == zeroed
        assert lost["ts"].null_count() == lost.height and lost["count"].null_count() == lost.height
        (reason,) = [k for k in cap.metadata.skipped if "chunk count of 0" in k]
        assert cap.metadata.skipped[reason]["first"][0].startswith(f"CPU {zeroed[0]} data at")

    seen = mutation_outcomes(
        read_tracedat,
        original,
        (),
        tmp_path / "zeroed.dat",
        f"tracedat-zero-chunks-{rel}",
        runs=6,
        seconds=4.0,
        strict_every=3,
        peak_limit=64 * len(original),
        mutations=[zero_chunk_count],
        check=check,
    )
    assert seen["capture"] >= 3 and seen["error"] >= 1, seen
