"""The summary of replay/summary.py when a vCPU's index is unknown.

A vCPU found only by its KVM events, or named with ``--vcpu TID=VM`` and no index, has a null
``vcpu_index``; the summary joins its per-vCPU parts on a key that includes it, so nulls must
match there, or the vCPU keeps its costs and loses its guest time, stalls and failed entries.
"""

from __future__ import annotations

import pytest
from polars.testing import assert_frame_equal

from replay.api import open_capture, what_if
from tests.conftest import FIXTURES
from tests.replay.export.fixture_results import TOPOLOGY

SCENARIOS = ["default@cpu0", "set-pmu:armv8_cortex_a53", "fixed-counters-only+v8", "no-pmu"]


# each fixture's vCPU threads and their indexes, and the summary columns it must fill
CASES = {
    "cross-cluster-migration": (
        {"4001": "0", "4002": "1"},
        ["stalled_ns", "fail_entries", "risky_ticks"],
    ),
    "traced-pmccntr-reads": ({"4001": "0"}, ["pmccntr_reads", "zero_delta_reads"]),
    "lost-events-gap": ({"4001": "0"}, ["unknown_ticks", "unknown_ns"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_vcpu_without_an_index_keeps_its_whole_summary(name: str) -> None:
    named, exercised = CASES[name]
    capture = FIXTURES / "captures" / f"{name}.txt"
    with_index = [f"{tid}=vm0:{i}" for tid, i in named.items()]
    without_index = [f"{tid}=vm0" for tid in named]
    known = what_if(open_capture(capture, topology=TOPOLOGY, vcpus=with_index), SCENARIOS)
    unknown = what_if(open_capture(capture, topology=TOPOLOGY, vcpus=without_index), SCENARIOS)
    assert unknown.summary["vcpu_index"].null_count() == unknown.summary.height
    # the parts this capture exercises, so that a lost join shows
    for column in exercised:
        assert known.summary[column].sum() > 0, column
    assert_frame_equal(
        unknown.summary.drop("vcpu_index"),
        known.summary.drop("vcpu_index"),
    )
