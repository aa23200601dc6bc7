"""Mutated copies of the shared ftrace text captures (kernel trace text, trace-cmd report,
systrace): every outcome is a capture or a clean error, and a capture accounts for every line.

The mutations (:data:`tests.importers.mutations.TEXT_MUTATIONS`) damage one line each: a huge
number, a CPU id past 65535, a NUL byte, a garbage JSON line, a line printed twice.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from importers.capture import Capture
from importers.detect import load, sniff
from importers.ftrace.source import open_text
from tests.importers.mutations import (
    TEXT_MUTATIONS,
    Mutation,
    cpu_past_65535,
    mutated_line,
    rows_at,
    text_lines_accounted,
    text_mutation_outcomes,
)

# (capture, whether its line numbers are the file's: plain text, not inside a container);
# only the first LINES lines of each are mutated, to keep each import short
LINES = 3000
FILES = [
    ("arm64-kvm-excerpts/ampere-kvmtool-nv2.txt", True),  # kernel trace text
    ("juno-trace-txt/trace.txt", True),  # trace-cmd report
    ("kvm-x86-host-report-txt/host_report.txt", True),  # trace-cmd report, sched plugin
    ("trappy-surfaceflinger/trace_surfaceflinger.html", False),  # systrace HTML
    ("catapult-android-systrace/android_systrace.txt", False),  # JS-escaped systrace
]
TIME_BUDGET_S = 30.0


@pytest.mark.slow
@pytest.mark.parametrize(("rel", "plain"), FILES)
def test_damaged_lines_give_captures_that_account_for_every_line(
    shared_traces: Path, tmp_path: Path, rel: str, plain: bool
) -> None:
    text = (shared_traces / rel).read_bytes()
    original = b"".join(text.splitlines(keepends=True)[:LINES]) if plain else text
    target = tmp_path / Path(rel).name
    load(shared_traces / rel)  # numba's kernels load outside the measure

    def check(cap: Capture, data: bytes, mutation: Mutation | None) -> None:
        text = open_text(target, sniff(target), None)
        text_lines_accounted(cap, sum(bytes(c.data).count(b"\n") for c in text.chunks))
        if plain and mutation is cpu_past_65535 and data != original:
            seq = mutated_line(original, data)
            assert rows_at(cap, seq) == [], f"line {seq + 1} with a CPU past 65535 is a row"
            assert any(k.startswith("cpu outside") for k in cap.metadata.skipped), cap.metadata

    seen = text_mutation_outcomes(
        original,
        target,
        f"text-mutations-{rel}",
        check,
        seconds=TIME_BUDGET_S / len(FILES),
        peak_limit=64 * len(original) + (32 << 20),
    )
    assert seen["capture"] >= 5, seen


def test_the_text_mutations_damage_what_they_say(shared_traces: Path) -> None:
    line = b"          <idle>-0     [002]    76.211513: sched_wakeup:          comm=sh pid=1642 prio=120 success=1 target_cpu=2"
    rng = random.Random(1)
    wide = cpu_past_65535(line, rng)
    assert wide.split(b"[")[1].split(b"]")[0] in (
        b"65536",
        b"99999",
        b"4294967295",
        b"9223372036854775807",
    )
    assert wide.replace(wide.split(b"[")[1].split(b"]")[0], b"002") == line
    for mutation in TEXT_MUTATIONS:
        assert mutation(line + b"\n" + line, random.Random(7)) != line + b"\n" + line, mutation
