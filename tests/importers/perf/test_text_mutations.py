"""Mutated copies of ``perf script`` and ``perf stat`` text: every outcome is a capture or a
clean error, and a capture accounts for every line it read.

The mutations (:data:`tests.importers.mutations.TEXT_MUTATIONS`) damage one line each. perf
script text comes from the shared captures; perf stat output (no shared capture has any) from
the project's own recordings in ``fixtures/captures``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from importers.capture import Capture
from importers.detect import load
from tests.conftest import FIXTURES
from tests.importers.mutations import (
    Mutation,
    cpu_past_65535,
    dropped,
    mutated_line,
    rows_at,
    text_mutation_outcomes,
)

TIME_BUDGET_S = 6.0
NEITHER = "line that is neither a perf script sample, a callchain nor a header"


def _body_lines(data: bytes) -> list[bytes]:
    return [
        ln.strip() for ln in data.split(b"\n") if ln.strip() and not ln.strip().startswith(b"#")
    ]


def _wide_cpu_is_no_row(
    cap: Capture, original: bytes, data: bytes, mutation: Mutation | None
) -> None:
    if mutation is cpu_past_65535 and data != original:
        seq = mutated_line(original, data)
        assert rows_at(cap, seq) == [], f"line {seq + 1} with a CPU past 65535 is a row"
        assert any(k.startswith("cpu outside") for k in cap.metadata.skipped), cap.metadata


@pytest.mark.slow
@pytest.mark.parametrize(
    "rel",
    [
        "flamegraph-perf-script/perf-cycles-instructions-01.txt",
        "simpleperf-android/perf_display_bitmaps.header.perf-script",
    ],
)
def test_damaged_perf_script_lines(shared_traces: Path, tmp_path: Path, rel: str) -> None:
    original = (shared_traces / rel).read_bytes()
    load(shared_traces / rel)  # modules load outside the measure

    def check(cap: Capture, data: bytes, mutation: Mutation | None) -> None:
        extra = cap.metadata.extra
        skipped = cap.metadata.skipped
        neither = int(skipped.get(NEITHER, {"count": 0})["count"])
        assert len(_body_lines(data)) == (
            extra["samples"] + extra["callchain_lines"] + extra["side_band_lines"] + neither
        )
        sample_rows = {
            s
            for name, t in cap.tables.items()
            if "seq" in t.column_names and name != "perf_switches"
            for s in t.column("seq").to_pylist()
        }
        line_skips = sum(int(r["count"]) for k, r in skipped.items() if "(line skipped)" in k)
        assert extra["samples"] == len(sample_rows) + line_skips, skipped
        _wide_cpu_is_no_row(cap, original, data, mutation)

    seen = text_mutation_outcomes(
        original,
        tmp_path / Path(rel).name,
        f"perf-script-mutations-{rel}",
        check,
        seconds=TIME_BUDGET_S,
        peak_limit=64 * len(original) + (32 << 20),
    )
    assert seen["capture"] >= 5, seen


@pytest.mark.parametrize("name", ["perf-stat-interval.csv", "perf-stat-per-cpu.json"])
def test_damaged_perf_stat_lines(tmp_path: Path, name: str) -> None:
    original = (FIXTURES / "captures" / name).read_bytes()
    load(FIXTURES / "captures" / name)  # modules load outside the measure

    def check(cap: Capture, data: bytes, mutation: Mutation | None) -> None:
        rows = cap.table("pmu_counts").num_rows
        metric = int(cap.metadata.extra["metric_only_lines"])
        assert len(_body_lines(data)) == rows + metric + dropped(cap), cap.metadata.skipped
        _wide_cpu_is_no_row(cap, original, data, mutation)

    seen = text_mutation_outcomes(
        original, tmp_path / name, f"perf-stat-mutations-{name}", check,
        seconds=TIME_BUDGET_S, peak_limit=16 << 20,
    )  # fmt: skip
    assert seen["capture"] >= 5, seen
