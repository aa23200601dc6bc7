"""Timelines: residency, guest windows, unknown time, frequency (issue 6 'Timeline')."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from importers.capture import Capture
from importers.errors import MissingEventsError
from importers.topology import from_cli
from importers.vcpus import discover_vcpus, parse_vcpu_specs
from replay.timeline import build_timeline
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


def test_without_kvm_events_run_time_is_guest_time(tmp_path: Path) -> None:
    text = sw("1.000000", 0, IDLE, ("worker", 55)) + sw("1.000300", 0, ("worker", 55), IDLE)
    cap = import_text(tmp_path, text)
    cap.tables["vcpus"] = discover_vcpus(cap, parse_vcpu_specs(["55=vm:0"]))
    tl = build_timeline(cap, TOPO)
    assert rows(tl.pieces) == [(0, 1_000_000_000, 1_000_300_000, "guest")]
    assert tl.guest_from_runtime == [55]
    assert any("whole run time is taken as guest time" in n for n in tl.notes)


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
    guest = tl.guest()
    # 100 us at 2 GHz + 200 us at 500 MHz
    assert guest["cycles"].to_list() == [200_000 + 100_000]


def test_no_vcpus_and_no_events_are_clear_errors(tmp_path: Path) -> None:
    cap = import_text(tmp_path, sw("1.0", 0, IDLE, ("a", 1)))
    with pytest.raises(MissingEventsError, match="--vcpu TID=VM:INDEX"):
        build_timeline(cap, TOPO)
    cap.tables["vcpus"] = discover_vcpus(cap, parse_vcpu_specs(["99=vm:0"]))
    with pytest.raises(MissingEventsError, match="cannot show where they ran"):
        build_timeline(cap, TOPO)
    assert isinstance(cap, Capture)


def test_switch_out_in_guest_mode_means_the_exit_was_lost(tmp_path: Path) -> None:
    text = (
        sw("1.000000", 2, IDLE, VCPU) + kvm("1.000100", 2, "entry") + sw("1.000900", 2, VCPU, IDLE)
    )
    got = timeline(tmp_path, text)
    assert rows(got) == [
        (2, 1_000_000_000, 1_000_100_000, "host"),
        (2, 1_000_100_000, 1_000_900_000, "unknown"),
    ]
