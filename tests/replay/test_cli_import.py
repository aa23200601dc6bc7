"""`pmu-replay import`: summary, outputs, and clean errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from importers.capture import Capture
from replay.cli import main


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "pmu-replay import" in out and "trace.dat" in out
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = capsys.readouterr().out
    assert "armv8_cortex_a53=0,3-5" in out and "--vcpu" in out and "--strict" in out


def test_import_writes_tables_and_json_summary(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cap"
    trace = shared_traces / "juno-trace-txt/trace.txt"
    code = main(
        [
            "import",
            str(trace),
            "-o",
            str(out),
            "--json",
            "--topology",
            str(shared_traces / "juno-trace-txt/plat_info.yml"),
            "--vcpu",
            "1642=vm0:0",
            "--vcpu",
            "46=vm0:1",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"]["sched_switch"] == 1856
    assert summary["cpus"] == 6 and summary["duration"] == 82_888_010_000 - 76_211_513_000
    assert summary["topology"]["pmus"] == {"armv8_cortex_a53": "0,3-5", "armv8_cortex_a57": "1-2"}
    assert summary["vms"] == ["vm0"] and len(summary["vcpus"]) == 2
    assert pl.read_parquet(out / "sched_switch.parquet").height == 1856
    back = Capture.load(out)
    assert back.table("vcpus").num_rows == 2 and back.table("topology").num_rows == 6


def test_import_table_output(shared_traces: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(shared_traces / "kvm-x86-host-report-txt/host_report.txt")]) == 0
    out = capsys.readouterr().out
    assert "kvm_entry" in out and "806" in out
    assert "1 in 1 VM(s)" in out
    assert "topology     unknown: give --topology FILE or --pmu NAME=CPUS" in out


@pytest.mark.parametrize(
    ("content", "message", "code"),
    [
        (None, "no such file", 3),
        (b"", "empty file", 3),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(100), "not a trace.dat, perf.data, Perfetto", 3),
        # the message lists every format sniff() knows, Perfetto and compressed ones too
        (b"hello world\nthis is not a trace\n", "not a capture format pmu-replay reads", 3),
        (b"hello world\n", "a Perfetto trace, or any of them compressed with gzip, xz", 3),
        (b"# tracer: nop\n#\n", "no ftrace event lines", 3),
        (b"\x1f\x8b\x08\x00", "damaged gzip data after 0 decompressed bytes", 3),
    ],
)
def test_bad_inputs_are_one_line_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    message: str,
    code: int,
) -> None:
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    assert main(["import", str(path)]) == code
    err = capsys.readouterr().err
    assert err.startswith("pmu-replay: error: ") and message in err
    assert "Traceback" not in err and str(path) in err


def test_perfetto_trace_without_scheduling_imports_but_replay_refuses_it(
    shared_traces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = str(shared_traces / "perfetto-pixel7-app/trace.perfetto-trace")
    assert main(["import", trace, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "perfetto" and summary["events"] == {"print": 6246}
    assert main(["replay", trace, "--pmu", "a=0-3", "--pmu", "b=4-7", "--vcpu", "1=vm:0"]) == 4
    err = capsys.readouterr().err
    assert "no sched_switch and no kvm_entry/kvm_exit events of the vCPU threads [1]" in err
    assert "Traceback" not in err


def test_strict_turns_skips_into_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.txt"
    path.write_text("  sh-5 [001] 1.000001: cpu_idle: state=1 cpu_id=1\nnot an event\n")
    assert main(["import", str(path)]) == 0
    assert "malformed line" in capsys.readouterr().out
    assert main(["import", str(path), "--strict"]) == 3
    assert "line 2" in capsys.readouterr().err


def test_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_traces: Path
) -> None:
    trace = str(shared_traces / "juno-trace-txt/trace.txt")
    assert main(["import", trace, "--pmu", "a53"]) == 6
    assert "NAME=CPULIST" in capsys.readouterr().err
    assert main(["import", trace, "--vcpu", "x"]) == 2
    assert "TID=VM:INDEX" in capsys.readouterr().err
