"""Seconds only when the capture's clock converts to ns (issue 13).

kvm-x86-host-v7-kvmevents/trace.dat is timed by ``x86-tsc`` without a TSC2NSEC option: raw
cycles. Replay refuses it unless ``--tsc-khz`` states the TSC frequency; kvm-x86-hostguest-v7's
trace.dat carries TSC2NSEC and converts by itself.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from importers.capture import Capture, CaptureMetadata
from importers.errors import UsageError
from importers.schema import conform
from replay.api import open_capture, what_if
from replay.cli import main
from replay.units import cycles_to_ns, to_nanoseconds

RAW = "kvm-x86-host-v7-kvmevents/trace.dat"
CONVERTED = "kvm-x86-hostguest-v7/trace.dat"
SPLIT = ["--pmu", "little=0-9", "--pmu", "big=10-19"]
VCPU = 533825  # the capture's one vCPU thread (x86 kvm_entry vcpu_id 0)


@pytest.mark.slow
def test_raw_cycles_are_refused_without_a_stated_frequency(
    shared_traces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("replay", "compare"):
        assert main([command, str(shared_traces / RAW), *SPLIT]) == UsageError.exit_code
        err = capsys.readouterr().err
        assert "--tsc-khz N" in err and "x86-tsc" in err and "Traceback" not in err


@pytest.mark.slow
def test_stated_tsc_frequency_gives_guest_time_in_ns(shared_traces: Path) -> None:
    raw = open_capture(shared_traces / RAW, pmus=SPLIT[1::2])
    assert raw.metadata.ts_unit == "cycles"
    # independently: each kvm_entry of the thread to the next kvm_exit on its CPU, in cycles
    events = pl.concat(
        raw.frame(name)
        .filter(pl.col("common_pid") == VCPU)
        .select("ts", "seq", "cpu", pl.lit(name == "kvm_entry").alias("entry"))
        for name in ("kvm_entry", "kvm_exit")
    ).sort("ts", "seq")
    pairs = events.with_columns(
        pl.col("ts").shift(-1).alias("next_ts"),
        pl.col("entry").shift(-1).alias("next_entry"),
        pl.col("cpu").shift(-1).alias("next_cpu"),
    ).filter(pl.col("entry") & ~pl.col("next_entry") & (pl.col("cpu") == pl.col("next_cpu")))
    cycles = int((pairs["next_ts"] - pairs["ts"]).sum())
    assert pairs.height == 1557
    cap = open_capture(shared_traces / RAW, pmus=SPLIT[1::2], tsc_khz=2_000_000)
    summary = what_if(cap, ["default"], rank=False).summary
    # every kvm event's TSC stamp is odd, so flooring each to the ns below halves every
    # interval exactly: the guest time is exactly cycles / 2.0
    assert (events["ts"] % 2 == 1).all()
    assert summary["guest_ns"].to_list() == [cycles // 2] and cycles % 2 == 0
    assert cap.metadata.ts_unit == "ns"
    assert cap.metadata.last_ts == cycles_to_ns(raw.metadata.last_ts or 0, 2_000_000)


@pytest.mark.slow
def test_stated_frequency_goes_through_the_cli_to_perfetto(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "x86.perfetto-trace"
    args = [str(shared_traces / RAW), *SPLIT, "--tsc-khz", "2000000", "--perfetto", str(trace)]
    assert main(["compare", *args, "--json"]) == 0
    assert '"status"' in capsys.readouterr().out and trace.stat().st_size > 0


@pytest.mark.slow
def test_tsc2nsec_captures_convert_by_themselves(shared_traces: Path) -> None:
    cap = open_capture(shared_traces / CONVERTED, pmus=SPLIT[1::2])
    meta = cap.metadata
    assert meta.ts_unit == "ns"
    assert meta.first_ts is not None and meta.last_ts is not None
    # traces/README.md: about 2.25 s after TSC-to-ns conversion (6.58 s of raw TSC span)
    assert 2.2e9 < meta.last_ts - meta.first_ts < 2.3e9
    assert what_if(cap, ["default"], rank=False).summary["guest_ns"].sum() > 0
    with pytest.raises(UsageError, match="in ns already"):
        open_capture(shared_traces / CONVERTED, pmus=SPLIT[1::2], tsc_khz=2_000_000)


def test_conversion_is_exact_integer_arithmetic() -> None:
    """Every time column, whole milliseconds first: 2**62 cycles at 3 GHz would lose digits as
    a float and overflow int64 multiplied by 10**6 first."""
    big = (1 << 62) + 7
    meta = CaptureMetadata("x.dat", "", "trace.dat", "test", ts_unit="cycles", first_ts=5)
    meta.last_ts = big
    lost = pa.table({"ts": [5, big, None], "seq": [0, 1, 2], "cpu": [0, 0, 1]})
    tasks = pa.table({"pid": [1], "first_ts": [5], "last_ts": [big]})
    cap = Capture(
        meta, {"lost_events": conform("lost_events", lost), "tasks": conform("tasks", tasks)}
    )
    to_nanoseconds(cap, 3_000_000)
    exact = big * 1_000_000 // 3_000_000
    assert cap.tables["lost_events"]["ts"].to_pylist() == [1, exact, None]  # 5 / 3 ns, floored
    assert cap.tables["tasks"].select(["first_ts", "last_ts"]).to_pylist() == [
        {"first_ts": 1, "last_ts": exact}
    ]
    assert (meta.first_ts, meta.last_ts, meta.ts_unit) == (1, exact, "ns")
    assert cycles_to_ns(2_999_999, 3_000_000) == 999_999
    with pytest.raises(UsageError, match="positive"):
        to_nanoseconds(Capture(CaptureMetadata("x", "", "t", "i", ts_unit="cycles")), 0)


@pytest.mark.parametrize("streams", [True, False])
def test_imported_files_hold_the_converted_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streams: bool
) -> None:
    """``import -o --tsc-khz``: the saved tables hold ns, as the metadata says, for a text
    capture whose timestamps are raw clock counts (no decimal point), whether or not its
    importer writes tables to the output while it decodes (``detect.STREAMING``)."""
    from importers import detect

    if not streams:
        monkeypatch.setattr(detect, "STREAMING", frozenset())
    text = tmp_path / "raw.txt"
    text.write_text(
        "".join(
            f"          <idle>-0     [000] d..2 {t}: sched_switch: prev_comm=swapper/0 "
            f"prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=sh next_pid=7 "
            "next_prio=120\n"
            for t in (1000000, 2000000, 3000000)
        )
    )
    out = tmp_path / "cap"
    assert main(["import", str(text), "-o", str(out), "--tsc-khz", "1000", "--json"]) == 0
    saved = Capture.load(out)
    assert saved.metadata.ts_unit == "ns"
    assert saved.table("sched_switch")["ts"].to_pylist() == [10**9, 2 * 10**9, 3 * 10**9]
