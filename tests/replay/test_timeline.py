"""Timelines: residency, guest windows, unknown time, frequency (issue 6 'Timeline')."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from importers.errors import MissingEventsError
from importers.host.topology import from_cli
from importers.host.vcpus import discover_vcpus, parse_vcpu_specs
from importers.schema import conform
from replay.timeline import _mark_gaps, build_timeline
from replay.unseen import TRUNCATED, TRUNCATED_CAUSE
from tests.importers.textcap import import_text

TOPO = from_cli(["little=0-1", "big=2-3"])


def sw(ts: str, cpu: int, prev: tuple[str, int], nxt: tuple[str, int], state: str = "S") -> str:
    return (
        f"  {prev[0]}-{prev[1]} [00{cpu}] {ts}: sched_switch: prev_comm={prev[0]} prev_pid={prev[1]} "
        f"prev_prio=120 prev_state={state} ==> next_comm={nxt[0]} next_pid={nxt[1]} next_prio=120\n"
    )


def kvm(ts: str, cpu: int, kind: str, pid: int = 100) -> str:
    payload = (
        "PC: 0xffff800008000000"
        if kind == "entry"
        else "TRAP: HSR_EC: 0x0016 (HVC64), PC: 0xffff800008000004"
    )
    return f"  CPU 0/KVM-{pid} [00{cpu}] {ts}: kvm_{kind}: {payload}\n"


IDLE = ("swapper", 0)
VCPU = ("CPU 0/KVM", 100)


def timeline(tmp_path: Path, text: str, specs: list[str] | None = None) -> pl.DataFrame:
    cap = import_text(tmp_path, text)
    cap.tables["vcpus"] = discover_vcpus(cap, parse_vcpu_specs(specs or []))
    return build_timeline(cap, TOPO).pieces.select(
        "residency", "cpu", "start", "end", "state", "cause"
    )


def rows(df: pl.DataFrame) -> list[tuple[object, ...]]:
    return [tuple(r) for r in df.select("cpu", "start", "end", "state").iter_rows()]


def test_guest_windows_inside_residency(tmp_path: Path) -> None:
    text = (
        sw("1.000000", 0, IDLE, VCPU)
        + kvm("1.000010", 0, "entry")
        + kvm("1.000050", 0, "exit")
        + kvm("1.000060", 0, "entry")
        + kvm("1.000100", 0, "exit")
        + sw("1.000200", 0, VCPU, IDLE)
        + sw("1.000300", 2, IDLE, VCPU)
        + kvm("1.000310", 2, "entry")
        + kvm("1.000400", 2, "exit")
        + sw("1.000500", 2, VCPU, IDLE)
    )
    us = 1_000_000_000
    got = rows(timeline(tmp_path, text))
    assert got == [
        (0, us, us + 10_000, "host"),
        (0, us + 10_000, us + 50_000, "guest"),
        (0, us + 50_000, us + 60_000, "host"),
        (0, us + 60_000, us + 100_000, "guest"),
        (0, us + 100_000, us + 200_000, "host"),
        (2, us + 300_000, us + 310_000, "host"),
        (2, us + 310_000, us + 400_000, "guest"),
        (2, us + 400_000, us + 500_000, "host"),
    ]


def test_running_at_start_and_end_is_kept(tmp_path: Path) -> None:
    # the vCPU is in guest mode when tracing starts and still running when it stops
    text = (
        kvm("2.000000", 1, "exit")
        + sw("2.000100", 1, VCPU, IDLE)
        + sw("2.000200", 3, IDLE, VCPU)
        + kvm("2.000300", 3, "entry")
        + sw("2.000400", 0, IDLE, ("other", 7))
    )
    got = rows(timeline(tmp_path, text))
    t = 2_000_000_000
    assert got == [
        (1, t + 100_000 - 100_000, t + 100_000, "host"),
        (3, t + 200_000, t + 300_000, "host"),
        (3, t + 300_000, t + 400_000, "guest"),
    ]


def test_missing_switch_in_is_unknown(tmp_path: Path) -> None:
    text = (
        sw("1.000000", 0, IDLE, VCPU)
        + sw("1.000100", 0, VCPU, IDLE)
        # the switch-in on CPU 2 was lost: the next record is a switch-out there
        + sw("1.000900", 2, VCPU, IDLE)
    )
    got = timeline(tmp_path, text)
    assert rows(got) == [
        (0, 1_000_000_000, 1_000_100_000, "guest"),
        (None, 1_000_100_000, 1_000_900_000, "unknown"),
    ]
    assert got["cause"][1] == "contradictory records (events lost)"


def test_adjacent_unknown_stretches_are_one_piece(tmp_path: Path) -> None:
    """Two exits lost: each entry after an entry is a contradiction, so the stretch before each
    is unknown. The two stretches touch, with the same CPU, residency and state: one piece from
    the first entry to the last (pieces are consecutive runs, ``_merge_runs``)."""
    text = (
        sw("1.000000", 0, IDLE, VCPU)
        + kvm("1.000010", 0, "entry")
        + kvm("1.000050", 0, "entry")
        + kvm("1.000090", 0, "entry")
        + kvm("1.000100", 0, "exit")
        + sw("1.000200", 0, VCPU, IDLE)
        + sw("1.000300", 0, IDLE, VCPU)
        + sw("1.000400", 0, VCPU, IDLE)
    )
    us = 1_000_000_000
    got = timeline(tmp_path, text)
    assert rows(got) == [
        (0, us, us + 10_000, "host"),
        (0, us + 10_000, us + 90_000, "unknown"),
        (0, us + 90_000, us + 100_000, "guest"),
        (0, us + 100_000, us + 200_000, "host"),
        (0, us + 300_000, us + 400_000, "host"),
    ]
    # a second residency on the same CPU is not merged into the first
    assert got["residency"].to_list() == [1, 1, 1, 1, 2]


def test_a_thread_running_at_the_start_without_kvm_events_yet_is_in_host_mode(
    tmp_path: Path,
) -> None:
    """Its only kvm record is a refused entry (a ``KVM_EXIT_FAIL_ENTRY`` return, before any
    kvm_entry), so its run time is not guest time; nothing says it was in guest mode before
    its first record, and a switch-out outside guest mode contradicts nothing."""
    refusal = "  CPU 0/KVM-100 [002] 1.000100: kvm_userspace_exit: reason KVM_EXIT_FAIL_ENTRY (9)\n"
    text = sw("1.000000", 0, IDLE, ("other", 7)) + refusal + sw("1.000200", 2, VCPU, IDLE)
    assert rows(timeline(tmp_path, text)) == [(2, 1_000_000_000, 1_000_200_000, "host")]


def test_lost_event_gap_is_unknown(tmp_path: Path) -> None:
    text = (
        sw("1.000000", 2, IDLE, VCPU)
        + kvm("1.000100", 2, "entry")
        + "CPU:2 [LOST 17 EVENTS]\n"
        + kvm("1.000700", 2, "exit")
        + sw("1.000800", 2, VCPU, IDLE)
    )
    got = timeline(tmp_path, text)
    assert rows(got) == [
        (2, 1_000_000_000, 1_000_100_000, "host"),
        (2, 1_000_100_000, 1_000_700_000, "unknown"),
        (2, 1_000_700_000, 1_000_800_000, "host"),
    ]
    assert got["cause"][1] == "events lost on this CPU"


def test_loss_before_any_record_of_its_cpu_covers_from_the_capture_start(tmp_path: Path) -> None:
    """The vCPU is in guest mode on CPU 2 when tracing starts; CPU 2's first line is a loss
    marker: everything CPU 2 did before the marker's time is unknown, not guest time."""
    text = (
        sw("1.000000", 0, IDLE, ("other", 7))
        + "CPU:2 [LOST 3 EVENTS]\n"
        + kvm("1.000500", 2, "exit")
        + sw("1.000600", 2, VCPU, IDLE)
    )
    got = timeline(tmp_path, text)
    assert rows(got) == [
        (2, 1_000_000_000, 1_000_500_000, "unknown"),
        (2, 1_000_500_000, 1_000_600_000, "host"),
    ]
    assert got["cause"][0] == "events lost on this CPU"


def test_without_kvm_events_run_time_is_guest_time(tmp_path: Path) -> None:
    text = sw("1.000000", 0, IDLE, ("worker", 55)) + sw("1.000300", 0, ("worker", 55), IDLE)
    cap = import_text(tmp_path, text)
    cap.tables["vcpus"] = discover_vcpus(cap, parse_vcpu_specs(["55=vm:0"]))
    tl = build_timeline(cap, TOPO)
    assert rows(tl.pieces) == [(0, 1_000_000_000, 1_000_300_000, "guest")]
    assert any(
        n.startswith("threads [55] have no kvm_entry/kvm_exit events")
        and "whole run time is taken as guest time" in n
        for n in tl.notes
    )


# The unrelated switch at 0.5 s starts the capture well before the vCPU's first kvm event:
# nothing may be invented for the thread before that event, and its first event is a switch-in.
NO_SCHED_SWITCH_CASES = {
    "stays on one CPU": (
        kvm("1.000000", 0, "entry")
        + kvm("1.000100", 0, "exit")
        + kvm("1.000200", 0, "entry")
        + kvm("1.000300", 0, "exit"),
        [
            (1, 0, 1_000_000_000, 1_000_100_000, "guest", None),
            (1, 0, 1_000_100_000, 1_000_200_000, "host", None),
            (1, 0, 1_000_200_000, 1_000_300_000, "guest", None),
        ],
    ),
    "moves CPUs": (
        kvm("1.000000", 0, "entry")
        + kvm("1.000100", 0, "exit")
        + kvm("1.000200", 2, "entry")
        + kvm("1.000300", 2, "exit"),
        [
            (1, 0, 1_000_000_000, 1_000_100_000, "guest", None),
            (1, 0, 1_000_100_000, 1_000_200_000, "host", None),
            (2, 2, 1_000_200_000, 1_000_300_000, "guest", None),
        ],
    ),
    # per-CPU buffers printed one after the other: file order is not time order, and the
    # thread's moves follow its time order
    "moves CPUs, CPU 2's lines first": (
        kvm("1.000200", 2, "entry")
        + kvm("1.000300", 2, "exit")
        + kvm("1.000000", 0, "entry")
        + kvm("1.000100", 0, "exit"),
        [
            (1, 0, 1_000_000_000, 1_000_100_000, "guest", None),
            (1, 0, 1_000_100_000, 1_000_200_000, "host", None),
            (2, 2, 1_000_200_000, 1_000_300_000, "guest", None),
        ],
    ),
}


@pytest.mark.parametrize("case", NO_SCHED_SWITCH_CASES)
def test_without_sched_switch_residency_follows_kvm_events(tmp_path: Path, case: str) -> None:
    events, expected = NO_SCHED_SWITCH_CASES[case]
    cap = import_text(tmp_path, sw("0.500000", 1, IDLE, ("other", 7)) + events)
    cap.tables["vcpus"] = discover_vcpus(cap)
    tl = build_timeline(cap, TOPO)
    got = tl.pieces.select("residency", "cpu", "start", "end", "state", "cause")
    assert list(got.iter_rows()) == expected
    assert any("no sched_switch" in n for n in tl.notes)


def test_cycles_follow_cpu_frequency(tmp_path: Path) -> None:
    text = (
        "  swapper-0 [002] 0.999000: cpu_frequency: state=2000000 cpu_id=2\n"
        + sw("1.000000", 2, IDLE, VCPU)
        + kvm("1.000000", 2, "entry")
        + "  swapper-0 [002] 1.000100: cpu_frequency: state=500000 cpu_id=2\n"
        + kvm("1.000300", 2, "exit")
        + sw("1.000300", 2, VCPU, IDLE)
    )
    cap = import_text(tmp_path, text)
    cap.tables["vcpus"] = discover_vcpus(cap)
    tl = build_timeline(cap, TOPO)
    assert tl.cpus == [2]
    guest = tl.pieces.filter(pl.col("state") == "guest")
    # 100 us at 2 GHz + 200 us at 500 MHz
    assert tl.clock.cycles(guest).to_list() == [200_000 + 100_000]


def test_no_vcpus_and_no_events_are_clear_errors(tmp_path: Path) -> None:
    cap = import_text(tmp_path, sw("1.0", 0, IDLE, ("a", 1)))
    with pytest.raises(MissingEventsError, match="--vcpu TID=VM:INDEX"):
        build_timeline(cap, TOPO)
    cap.tables["vcpus"] = discover_vcpus(cap, parse_vcpu_specs(["99=vm:0"]))
    with pytest.raises(MissingEventsError, match="cannot show where they ran"):
        build_timeline(cap, TOPO)


def test_switch_out_in_guest_mode_means_the_exit_was_lost(tmp_path: Path) -> None:
    text = (
        sw("1.000000", 2, IDLE, VCPU) + kvm("1.000100", 2, "entry") + sw("1.000900", 2, VCPU, IDLE)
    )
    got = timeline(tmp_path, text)
    assert rows(got) == [
        (2, 1_000_000_000, 1_000_100_000, "host"),
        (2, 1_000_100_000, 1_000_900_000, "unknown"),
    ]


def mark_gaps_pairwise(pieces: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """The oracle for ``_mark_gaps``: its first version, which pairs every piece with every gap
    of its CPU (too slow for many gaps, but plainly right); a part any truncated gap covers
    takes the truncated cause."""
    cuts = (
        pieces.with_row_index("piece")
        .join(gaps, on="cpu", how="inner")
        .filter((pl.col("gap_start") < pl.col("end")) & (pl.col("gap_end") > pl.col("start")))
    )
    if cuts.is_empty():
        return pieces
    points = pl.concat(
        [
            cuts.select("piece", pl.col("gap_start").alias("t")),
            cuts.select("piece", pl.col("gap_end").alias("t")),
        ]
    )
    indexed = pieces.with_row_index("piece")
    bounds = (
        pl.concat(
            [
                indexed.select("piece", pl.col("start").alias("t")),
                indexed.select("piece", pl.col("end").alias("t")),
                points,
            ]
        )
        .join(indexed.select("piece", "start", "end"), on="piece")
        .filter((pl.col("t") >= pl.col("start")) & (pl.col("t") <= pl.col("end")))
        .unique(["piece", "t"])
        .sort("piece", "t")
        .with_columns(pl.col("t").shift(-1).over("piece").alias("t_end"))
        .filter(pl.col("t_end").is_not_null())
    )
    split = bounds.select("piece", pl.col("t").alias("start"), pl.col("t_end").alias("end")).join(
        indexed.drop("start", "end"), on="piece"
    )
    covered = (
        split.join(cuts.select("piece", "gap_start", "gap_end", "kind"), on="piece", how="left")
        .with_columns(
            ((pl.col("gap_start") <= pl.col("start")) & (pl.col("gap_end") >= pl.col("end")))
            .fill_null(False)
            .alias("lost")
        )
        .group_by("piece", "start", maintain_order=True)
        .agg(
            pl.all().first(),
            pl.col("lost").any().alias("any_lost"),
            (pl.col("lost") & (pl.col("kind") == TRUNCATED)).any().alias("any_cut"),
        )
    )
    return covered.select(
        *(c for c in pieces.columns if c not in ("state", "cause", "start", "end")),
        "start",
        "end",
        pl.when(pl.col("any_lost"))
        .then(pl.lit("unknown"))
        .otherwise(pl.col("state"))
        .alias("state"),
        pl.when(pl.col("any_cut"))
        .then(pl.lit(TRUNCATED_CAUSE))
        .when(pl.col("any_lost"))
        .then(pl.lit("events lost on this CPU"))
        .otherwise(pl.col("cause"))
        .alias("cause"),
    ).select(pieces.columns)


def generated_pieces(
    seed: int, n_pieces: int, n_gaps: int, truncated: float = 0.0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pieces of 8 threads on 4 CPUs (some off CPU between pieces, some with no CPU) and lost-event
    gaps on those CPUs: overlapping, nested, touching, zero-length and on piece boundaries; a
    ``truncated`` share of them are truncated data rather than lost events."""
    rng = np.random.default_rng(seed)
    threads, per_thread = 8, n_pieces // 8
    tid = np.repeat(np.arange(100, 100 + threads, dtype=np.int32), per_thread)
    length = rng.integers(1, 2_000, tid.size)
    off_cpu = rng.integers(0, 3, tid.size) * rng.integers(0, 500, tid.size)
    end = 1_000_000 + np.cumsum((length + off_cpu).reshape(threads, -1), axis=1).ravel()
    cpu = np.where(rng.random(tid.size) < 0.05, None, rng.integers(0, 4, tid.size))
    state = rng.choice(["guest", "host", "unknown"], tid.size, p=[0.6, 0.35, 0.05])
    pieces = pl.DataFrame(
        {
            "tid": tid,
            "residency": pl.Series(np.arange(tid.size) % 7, dtype=pl.UInt32),
            "cpu": pl.Series(cpu.tolist(), dtype=pl.Int16),
            "start": end - length,
            "end": end,
            "state": state,
        }
    ).with_columns(
        pl.when(pl.col("state") == "unknown")
        .then(pl.lit("contradictory records (events lost)"))
        .alias("cause")
    )
    # a gap starts at the last record of its CPU, often a piece boundary
    gap_start = np.where(
        rng.random(n_gaps) < 0.5,
        rng.choice(end, n_gaps),
        rng.integers(1_000_000, int(end.max()), n_gaps),
    )
    gap_length = rng.choice([0, 1, 50, 2_000, 20_000], n_gaps) * rng.integers(0, 3, n_gaps)
    gaps = pl.DataFrame(
        {
            "cpu": pl.Series(rng.integers(0, 4, n_gaps), dtype=pl.Int16),
            "gap_start": gap_start,
            "gap_end": gap_start + gap_length,
            "kind": rng.choice(["lost", TRUNCATED], n_gaps, p=[1 - truncated, truncated]),
        }
    )
    return pieces, gaps


@pytest.mark.parametrize("seed", range(3))
def test_gap_marking_matches_pairing_every_piece_with_every_gap(seed: int) -> None:
    pieces, gaps = generated_pieces(seed, 4_000, 200)
    marked = _mark_gaps(pieces, gaps)
    assert_frame_equal(marked, mark_gaps_pairwise(pieces, gaps))
    # the case exercises both cut and whole pieces lost
    assert marked.height > pieces.height
    assert marked["cause"].eq("events lost on this CPU").sum() > 100


def test_one_gap_marking_tells_truncated_data_from_lost_events() -> None:
    # lost and truncated gaps overlap on a CPU: one pass over both must cut and word every
    # part as the oracle does, the truncated cause where one covers the part
    pieces, gaps = generated_pieces(7, 4_000, 200, truncated=0.3)
    marked = _mark_gaps(pieces, gaps)
    assert_frame_equal(marked, mark_gaps_pairwise(pieces, gaps))
    causes = marked["cause"].value_counts().rows()
    assert {c for c, n in causes if n > 20} >= {TRUNCATED_CAUSE, "events lost on this CPU"}


def test_gap_marking_scales_with_many_gaps() -> None:
    pieces, gaps = generated_pieces(0, 100_000, 1_000)
    began = time.perf_counter()
    _mark_gaps(pieces, gaps)
    assert time.perf_counter() - began < 2.0


def test_a_lost_event_gap_hides_the_vcpus_that_were_on_no_cpu(tmp_path: Path) -> None:
    """Events lost on CPU 2 between its last record (1.000000) and the marker's next record
    (1.000900): vCPU 100, running there, is unknown over that stretch (as before); vCPU 101,
    on no CPU before 1.000050 and after 1.000100, may have run on CPU 2 unseen then, so that
    time is unknown too, on CPU 2; vCPU 102 visibly ran on CPU 1 all along: known."""
    other, third = ("CPU 1/KVM", 101), ("CPU 2/KVM", 102)
    text = (
        sw("1.000000", 2, IDLE, VCPU)
        + sw("1.000000", 1, IDLE, third)
        + sw("1.000050", 0, IDLE, other)
        + sw("1.000100", 0, other, IDLE)
        + "CPU:2 [LOST 7 EVENTS]\n"
        + sw("1.000900", 2, VCPU, IDLE)
        + sw("1.001000", 0, IDLE, other)
        + sw("1.001000", 1, third, IDLE)
        + sw("1.002000", 0, other, IDLE)
    )
    cap = import_text(tmp_path, text)
    cap.tables["vcpus"] = discover_vcpus(
        cap, parse_vcpu_specs(["100=vm:0", "101=vm:1", "102=vm:2"])
    )
    pieces = build_timeline(cap, TOPO).pieces
    # the hidden stretches join the pieces in thread, then time order, like every other
    assert pieces.rows() == pieces.sort("tid", "start", maintain_order=True).rows()
    us = 1_000_000_000
    unknown = pieces.filter(pl.col("state") == "unknown").sort("tid", "start")
    lost = "events lost on this CPU"
    assert unknown.select("tid", "residency", "cpu", "start", "end", "cause").rows() == [
        (100, 1, 2, us, us + 900_000, lost),
        (101, None, 2, us, us + 50_000, lost),  # no switch-in was seen: no residency
        (101, None, 2, us + 100_000, us + 900_000, lost),
    ]
    assert pieces.filter(pl.col("tid") == 102)["state"].to_list() == ["guest"]  # no kvm events


def test_time_on_a_cpu_whose_data_the_file_cuts_off_is_unknown_and_says_so(
    tmp_path: Path,
) -> None:
    """A ``truncated`` lost_events row (trace.dat cut short): from the CPU's last record to the
    end of the capture, the vCPU resident there is unknown, for that cause."""
    text = (
        sw("1.000000", 2, IDLE, VCPU) + kvm("1.000100", 2, "entry") + sw("1.002000", 0, IDLE, IDLE)
    )
    cap = import_text(tmp_path, text)
    cap.tables["lost_events"] = conform(
        "lost_events",
        pa.table(
            {
                "ts": pa.nulls(1, pa.int64()),
                "seq": [99],
                "cpu": pa.array([2], pa.int16()),
                "kind": ["truncated"],
            }
        ),
    )
    cap.tables["vcpus"] = discover_vcpus(cap, parse_vcpu_specs([]))
    pieces = build_timeline(cap, TOPO).pieces
    us = 1_000_000_000
    assert pieces.select("cpu", "start", "end", "state", "cause").rows() == [
        (2, us, us + 100_000, "host", None),  # up to CPU 2's last record, the kvm_entry
        (2, us + 100_000, us + 2_000_000, "unknown", TRUNCATED_CAUSE),
    ]


@pytest.mark.parametrize(
    ("lost_cpus", "truncated_cpus", "note"),
    [
        ([0], [], "1 lost-event gaps: "),
        ([], [2], "the truncated data of CPUs [2]: "),
        ([0, 3], [2], "2 lost-event gaps and the truncated data of CPUs [2]: "),
    ],
)
def test_the_notes_name_the_gaps_by_kind(
    tmp_path: Path, lost_cpus: list[int], truncated_cpus: list[int], note: str
) -> None:
    text = sw("1.000000", 2, IDLE, VCPU) + sw("1.002000", 0, IDLE, IDLE)
    cap = import_text(tmp_path, text)
    rows = [(1_001_000_000, 90 + cpu, cpu, "lost") for cpu in lost_cpus]
    rows += [(None, 99, cpu, "truncated") for cpu in truncated_cpus]
    ts, seq, cpu, kind = zip(*rows, strict=True)
    cap.tables["lost_events"] = conform(
        "lost_events",
        pa.table(
            {
                "ts": pa.array(ts, pa.int64()),
                "seq": list(seq),
                "cpu": pa.array(cpu, pa.int16()),
                "kind": list(kind),
            }
        ),
    )
    cap.tables["vcpus"] = discover_vcpus(cap, parse_vcpu_specs([]))
    notes = build_timeline(cap, TOPO).notes
    expected = note + (
        "time there, and time the vCPU threads were on no CPU then, is reported as unknown"
    )
    assert expected in notes


def test_a_refusal_with_no_later_attempt_is_closed_at_the_end_of_the_capture(
    tmp_path: Path,
) -> None:
    """No later entry attempt and no unknown piece follow it, so the stretch the capture
    cannot show runs to the capture's end (``replay.refused``); of its 400 us the thread ran
    100 us, until its switch-out."""
    refusal = "  CPU 0/KVM-100 [002] 1.000100: kvm_userspace_exit: reason KVM_EXIT_FAIL_ENTRY (9)\n"
    text = (
        sw("1.000000", 2, IDLE, VCPU)
        + refusal
        + sw("1.000200", 2, VCPU, IDLE)
        + sw("1.000500", 0, IDLE, ("other", 7))
    )
    cap = import_text(tmp_path, text)
    cap.tables["vcpus"] = discover_vcpus(cap, parse_vcpu_specs([]))
    attempts = build_timeline(cap, TOPO).attempts
    us = 1_000_000_000
    assert attempts.select("cpu", "ts", "until", "off_cpu_ns").rows() == [
        (2, us + 100_000, us + 500_000, 300_000)
    ]
