"""Line grammar of ftrace text (formats.md §1.2-§1.6, corner cases 1-5 of §6.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from importers.ftrace.lines import scan_preamble
from tests.importers.textcap import import_text, rows

SWITCH = (
    "sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> "
    "next_comm=b next_pid=2 next_prio=120"
)


def context(tmp_path: Path, line: str) -> dict[str, object]:
    cap = import_text(tmp_path, line + "\n")
    (row,) = rows(cap, "sched_switch")
    return row


@pytest.mark.parametrize(
    ("line", "cpu", "pid", "ts"),
    [
        # irq-info off (no flag column)
        (f"          <idle>-0     [002]    76.211513: {SWITCH}", 2, 0, 76_211_513_000),
        # 4 flag columns (pre migrate-disable kernels)
        (f"            bash-1091  [000] d..2   123.456789: {SWITCH}", 0, 1091, 123_456_789_000),
        # 5 flag columns (current)
        (f"            bash-1091    [000] d..2.   123.456789: {SWITCH}", 0, 1091, 123_456_789_000),
        # 7 flag columns (PREEMPT_RT with lazy preemption)
        (f"            bash-1091    [000] dNh2.1. 123.456789: {SWITCH}", 0, 1091, 123_456_789_000),
        # trace_pipe has the same grammar and no header; 3+ digit CPUs widen the column
        (f"   kworker/u16:1-77      [1023] .....  9.000001: {SWITCH}", 1023, 77, 9_000_001_000),
    ],
)
def test_flag_column_widths(tmp_path: Path, line: str, cpu: int, pid: int, ts: int) -> None:
    row = context(tmp_path, line)
    assert (row["cpu"], row["common_pid"], row["ts"]) == (cpu, pid, ts)


@pytest.mark.parametrize(
    ("line", "tgid"),
    [
        # record-tgid since v5.9: "(%7d) " and "(-------) "
        (f"     kworker/0:1-959     (    959) [006] d..3.  538.064659: {SWITCH}", 959),
        (f"          <idle>-0       (-------) [006] d..2.  538.064674: {SWITCH}", None),
        # before v5.9: "(%5d) " / "(-----) "
        (f"kworker/u17:1-959   (  959) [006] d..3   538.064659: {SWITCH}", 959),
        (f"          <idle>-0     (-----) [006] d..2   538.064674: {SWITCH}", None),
        # old Android: TGID after the CPU column
        (f"            bash-1091  [000] ( 1091) d..2   538.064659: {SWITCH}", 1091),
        # the kernel prints 0 as dashes (trace_print_context); a printed 0 is still a number
        (f"          <idle>-0       (      0) [006] d..2.  538.064674: {SWITCH}", 0),
    ],
)
def test_tgid_column_in_either_position(tmp_path: Path, line: str, tgid: int | None) -> None:
    cap = import_text(tmp_path, line + "\n")
    assert cap.table("sched_switch").num_rows == 1
    tasks = {r["pid"]: r["tgid"] for r in rows(cap, "tasks") if r["source"] == "line"}
    pid = 959 if "959" in line else (1091 if "1091" in line else 0)
    assert tasks[pid] == tgid


@pytest.mark.parametrize(
    ("comm", "expected"),
    [
        ("CPU 0/KVM", "CPU 0/KVM"),
        ("fc_vcpu 0", "fc_vcpu 0"),
        ("kworker/u16:1", "kworker/u16:1"),
        ("foo-12", "foo-12"),
        ("<idle>", "<idle>"),
        ("<...>", None),
        ("<7952>", None),
        ("abcdefghijklmno", "abcdefghijklmno"),
    ],
)
def test_comm_with_spaces_dashes_digits_and_placeholders(
    tmp_path: Path, comm: str, expected: str | None
) -> None:
    line = f"{comm:>16}-1234567 [003] d..2. 10.000001: kvm_entry: PC: 0xffff800008000000"
    cap = import_text(tmp_path, line + "\n")
    (row,) = rows(cap, "kvm_entry")
    assert row["common_pid"] == 1_234_567
    assert row["vcpu_pc"] == 0xFFFF800008000000
    names = {r["comm"] for r in rows(cap, "tasks")}
    assert names == ({expected} if expected else set())


@pytest.mark.parametrize(
    ("stamp", "ts", "unit", "resolution"),
    [
        ("   76.211513", 76_211_513_000, "ns", 1000),
        ("76.211513123", 76_211_513_123, "ns", 1),  # trace-cmd report -t
        ("1212173092638", 1_212_173_092_638, "raw", None),  # trace_clock=counter / x86-tsc
    ],
)
def test_timestamps_are_exact_integers(
    tmp_path: Path, stamp: str, ts: int, unit: str, resolution: int | None
) -> None:
    cap = import_text(tmp_path, f"  sh-5 [001] {stamp}: {SWITCH}\n")
    assert context(tmp_path, f"  sh-5 [001] {stamp}: {SWITCH}")["ts"] == ts
    assert cap.metadata.ts_unit == unit
    assert cap.metadata.ts_resolution_ns == resolution


def test_raw_counter_touching_the_cpu_column(tmp_path: Path) -> None:
    # trace-cmd prints "%12llu:" without a separating space when the clock is not in ns
    row = context(tmp_path, f"   CPU 0/KVM-1234  [003]1212173092638: {SWITCH}")
    assert (row["cpu"], row["ts"]) == (3, 1_212_173_092_638)


def test_mixed_clocks_are_refused(tmp_path: Path) -> None:
    text = f"  sh-5 [001] 1.000001: {SWITCH}\n  sh-5 [001] 123456: {SWITCH}\n"
    with pytest.raises(Exception, match="with and without a decimal point"):
        import_text(tmp_path, text)


def test_equal_and_non_monotonic_timestamps_keep_file_order(tmp_path: Path) -> None:
    text = "".join(
        f"  sh-{pid} [00{cpu}] {ts}: {SWITCH}\n"
        for pid, cpu, ts in [(1, 0, "5.000001"), (2, 1, "5.000001"), (3, 0, "4.000000")]
    )
    got = [
        (r["seq"], r["common_pid"], r["ts"])
        for r in rows(import_text(tmp_path, text), "sched_switch")
    ]
    assert got == [(0, 1, 5_000_001_000), (1, 2, 5_000_001_000), (2, 3, 4_000_000_000)]


def test_lost_and_dropped_markers(tmp_path: Path) -> None:
    text = "\n".join(
        [
            f"  sh-5 [002] 1.000000: {SWITCH}",
            "CPU:2 [LOST 123 EVENTS]",
            "CPU:1 [77 EVENTS DROPPED]",
            "CPU:3 [EVENTS DROPPED]",
            "CPU:0 [LOST 5 EVENTS]",
            f"  sh-5 [001] 1.500000: {SWITCH}",
            f"  sh-5 [002] 2.000000: {SWITCH}",
            "",
        ]
    )
    lost = rows(import_text(tmp_path, text), "lost_events")
    assert [(r["cpu"], r["count"], r["kind"], r["ts"], r["seq"]) for r in lost] == [
        (2, 123, "lost", 2_000_000_000, 1),
        (1, 77, "dropped", 1_500_000_000, 2),
        (3, None, "dropped", None, 3),  # no later event on CPU 3: time unknown
        (0, 5, "lost", None, 4),  # nor on CPU 0: the later events of other CPUs do not count
    ]


def test_lost_events_with_strict_are_an_error(tmp_path: Path) -> None:
    from importers.errors import DroppedEventsError

    text = f"CPU:2 [LOST 1 EVENTS]\n  sh-5 [002] 2.000000: {SWITCH}\n"
    with pytest.raises(DroppedEventsError, match="line 1"):
        import_text(tmp_path, text, strict=True)


def test_informational_stack_function_and_print_lines(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "# tracer: nop",
            "#",
            "# entries-in-buffer/entries-written: 10/12   #P:4",
            "##### CPU 2 buffer started ####",
            "CPU:1 [SUBBUFFER START]",
            "CPU 3 is empty",
            "            bash-1091  [000] d..2   1.000001: <stack trace>",
            " => __schedule",
            " => schedule",
            "            bash-1091  [000] d..2   1.000002: do_sys_open <-SyS_open",
            "              sh-5     [000] ....   1.000003: tracing_mark_write: B|123|name: x=1",
            "              sh-5     [000] ....   1.000004: print:                0xffff00000819ff24s: TRACE_MARKER_START",
            "              sh-5     [000] ....   1.000005: type: 77",
            "            bash-1091  [000] d..2   1.000006: <user stack trace>",
            "              sh-5     [000] ....   1.000007: a<-b",  # no " <-": not the tracer's
            "",
        ]
    )
    cap = import_text(tmp_path, text)
    events = [(r["event"], r["args"]) for r in rows(cap, "events")]
    assert events == [
        ("kernel_stack", "<stack trace>"),
        ("function", "do_sys_open <-SyS_open"),
        ("tracing_mark_write", "B|123|name: x=1"),
        ("print", "0xffff00000819ff24s: TRACE_MARKER_START"),
        ("type", "77"),
        ("user_stack", "<user stack trace>"),
        ("unknown", "a<-b"),
    ]
    assert cap.metadata.skipped["stack trace line (callchains are not imported)"]["count"] == 2
    assert cap.metadata.cpu_count == 4
    assert cap.metadata.extra["entries_overwritten"] == 2
    assert cap.metadata.extra["tracer"] == "nop"


def test_malformed_lines_are_counted_with_line_numbers(tmp_path: Path) -> None:
    text = f"garbage here\n  sh-5 [001] 1.000001: {SWITCH}\n\x01\x02 more garbage\n"
    cap = import_text(tmp_path, text)
    assert cap.table("sched_switch").num_rows == 1
    assert cap.metadata.skipped["malformed line"] == {"count": 2, "first": ["line 1", "line 3"]}


def test_malformed_line_with_strict_is_an_error(tmp_path: Path) -> None:
    from importers.errors import CaptureFormatError

    with pytest.raises(CaptureFormatError, match="line 2"):
        import_text(tmp_path, f"  sh-5 [001] 1.000001: {SWITCH}\nnonsense\n", strict=True)


def test_file_without_events_is_a_clean_error(tmp_path: Path) -> None:
    from importers.errors import CaptureFormatError

    with pytest.raises(CaptureFormatError, match="no ftrace event lines"):
        import_text(tmp_path, "# tracer: nop\n#\n")


def test_invalid_utf8_is_replaced_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(
        b"  sh-5 [001] 1.000001: " + SWITCH.encode() + b"\n"
        b"  s\xff-6 [001] 1.000002: " + SWITCH.encode() + b"\n"
    )
    from importers.detect import load

    cap = load(path)
    assert cap.table("sched_switch").num_rows == 2
    assert cap.metadata.skipped["invalid UTF-8 replaced (line imported)"]["first"] == ["line 2"]


class TestTraceCmdReport:
    def test_preamble_and_plugin_sched_switch(self, tmp_path: Path) -> None:
        text = (
            "version = 6\ncpus=20\n"
            " qemu-system-x86-150750 [019] 16062.943963: sched_switch:         "
            "qemu-system-x86:150750 [120] S ==> swapper/19:0 [120]\n"
            "          <idle>-0     [019] 16062.944029: sched_wakeup:         "
            "CPU 0/KVM:150750 [120] CPU:019\n"
            "          <idle>-0     [019] 16062.944030: sched_waking:         "
            "comm=qemu-system-x86 pid=150750 prio=120 target_cpu=019\n"
        )
        cap = import_text(tmp_path, text)
        assert cap.metadata.format == "trace-cmd-report"
        assert cap.metadata.cpu_count == 20
        (sw,) = rows(cap, "sched_switch")
        assert (sw["prev_comm"], sw["prev_pid"], sw["prev_state_str"], sw["prev_state"]) == (
            "qemu-system-x86",
            150750,
            "S",
            1,
        )
        assert (sw["next_comm"], sw["next_pid"], sw["next_prio"]) == ("swapper/19", 0, 120)
        (wk,) = rows(cap, "sched_wakeup")
        assert (wk["comm"], wk["pid"], wk["target_cpu"]) == ("CPU 0/KVM", 150750, 19)
        (wg,) = rows(cap, "sched_waking")
        assert (wg["comm"], wg["pid"], wg["target_cpu"]) == ("qemu-system-x86", 150750, 19)

    def test_raw_mode_flags_and_fields(self, tmp_path: Path) -> None:
        text = (
            "cpus=4\n"
            "          <idle>-0     [002]-0x1  2084.021443: cpu_idle:             state=4294967295 cpu_id=2\n"
            "          <idle>-0       2-0x1  2084.021502: cpu_idle:             state=1 cpu_id=2\n"
            "              sh-1642  [002]  2084.021600: sched_switch:         prev_comm=sh prev_pid=1642 "
            "prev_prio=120 prev_state=4096 next_comm=CPU 1/KVM next_pid=46 next_prio=120\n"
        )
        cap = import_text(tmp_path, text)
        idle = rows(cap, "cpu_idle")
        assert [(r["state"], r["idle_state"], r["cpu_id"]) for r in idle] == [
            (4294967295, -1, 2),
            (1, 1, 2),
        ]
        (sw,) = rows(cap, "sched_switch")
        # -R prints the raw integer; its letters depend on the kernel's own table
        assert (sw["prev_state"], sw["prev_state_str"], sw["next_comm"]) == (
            4096,
            None,
            "CPU 1/KVM",
        )

    def test_instance_prefixes_and_ts_diff(self, tmp_path: Path) -> None:
        text = (
            "                cpus=2\n"
            "inst: cpus=2\n"
            "                  sh-5 [000] 1.000001: (+0) " + SWITCH + "\n"
            "inst:             sh-6 [001] 1.000002: (+1) " + SWITCH + "\n"
        )
        cap = import_text(tmp_path, text)
        assert [r["common_pid"] for r in rows(cap, "sched_switch")] == [5, 6]
        assert cap.metadata.extra["instances"] == ["inst"]
        assert {r["comm"] for r in rows(cap, "tasks") if r["source"] == "line"} == {"sh"}

    def test_latency_format_lines(self, tmp_path: Path) -> None:
        text = "  <idle>-0       0d.h1. 106467.859747: cpu_idle: state=2 cpu_id=0\n"
        (row,) = rows(import_text(tmp_path, text), "cpu_idle")
        assert (row["cpu"], row["common_pid"], row["state"], row["ts"]) == (
            0,
            0,
            2,
            106_467_859_747_000,
        )

    def test_plugin_garbled_arm64_kvm_lines(self, tmp_path: Path) -> None:
        text = (
            "   CPU 0/KVM-77  [001]   10.000001: kvm_exit:             reason VMRESUME<CANT FIND FIELD "
            "guest_rip>TRAP: HSR_EC: 0x0018 (SYS64), PC: 0xffff000008123456\n"
            '   CPU 0/KVM-77  [001]   10.000002: kvm_entry:            CAN\'T FIND FIELD "vcpu_id"'
            "<CANT FIND FIELD rip>PC: 0x1800000001\n"
        )
        cap = import_text(tmp_path, text)
        (ex,) = rows(cap, "kvm_exit")
        assert (ex["isa"], ex["ret_name"], ex["esr_ec"], ex["ec_name"], ex["vcpu_pc"]) == (
            "arm64",
            "TRAP",
            0x18,
            "SYS64",
            0xFFFF000008123456,
        )
        (en,) = rows(cap, "kvm_entry")
        assert en["vcpu_pc"] == 0x1800000001


def test_preamble_with_invalid_utf8_is_read_with_replacement_characters() -> None:
    # a damaged header must not stop the import: its bytes are replaced, as the lines' are
    pre = scan_preamble(b"# tracer: n\xffp\ncpus=4\n")
    assert (pre.tracer, pre.cpus) == ("n\ufffdp", 4)
