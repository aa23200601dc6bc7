"""Payload grammars of the modelled events (formats.md §2, corner case 6 of §6.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from importers.ftrace.fields import state_bits
from tests.importers.textcap import import_text, rows

HEAD = "   CPU 0/KVM-4242  [001] d..2.  10.000001: "


def one(tmp_path: Path, payload: str, table: str) -> dict[str, object]:
    cap = import_text(tmp_path, HEAD + payload + "\n")
    assert cap.metadata.skipped == {}, cap.metadata.skipped
    (row,) = rows(cap, table)
    return row


@pytest.mark.parametrize(
    ("state", "bits"),
    [
        ("R", 0),
        ("R+", 0x100),
        ("S", 1),
        ("D", 2),
        ("T", 4),
        ("t", 8),
        ("X", 0x10),
        ("Z", 0x20),
        ("P", 0x40),
        ("I", 0x80),
        ("D|W", 2 | 256),  # 4.2-4.13 letters fall back to the old table
        ("N", 1024),
        ("S|K", 1 | 128),
    ],
)
def test_sched_switch_states(tmp_path: Path, state: str, bits: int) -> None:
    row = one(
        tmp_path,
        f"sched_switch: prev_comm=CPU 0/KVM prev_pid=4242 prev_prio=120 prev_state={state} ==> "
        "next_comm=swapper/1 next_pid=0 next_prio=120",
        "sched_switch",
    )
    assert (row["prev_state_str"], row["prev_state"]) == (state, bits)
    assert (row["prev_comm"], row["next_comm"], row["next_pid"]) == ("CPU 0/KVM", "swapper/1", 0)
    assert state_bits(state) == bits


def test_sched_switch_raw_integer_state(tmp_path: Path) -> None:
    for printed, bits in (("4096", 4096), ("0x400", 0x400)):
        row = one(
            tmp_path,
            f"sched_switch: prev_comm=a b prev_pid=1 prev_prio=120 prev_state={printed} "
            "next_comm=c next_pid=2 next_prio=-1",
            "sched_switch",
        )
        assert (row["prev_state"], row["prev_state_str"], row["next_prio"]) == (bits, None, -1)
        assert row["prev_comm"] == "a b"


@pytest.mark.parametrize("event", ["sched_wakeup", "sched_waking", "sched_wakeup_new"])
def test_wakeups_with_and_without_success(tmp_path: Path, event: str) -> None:
    row = one(tmp_path, f"{event}: comm=CPU 1/KVM pid=77 prio=120 success=1 target_cpu=003", event)
    assert (row["comm"], row["pid"], row["success"], row["target_cpu"]) == ("CPU 1/KVM", 77, 1, 3)
    row = one(tmp_path, f"{event}: comm=<...> pid=77 prio=120 target_cpu=002 state=W|m", event)
    assert (row["comm"], row["success"], row["target_cpu"]) == (None, None, 2)
    # trace-cmd's sched plugin form: the same unknown name, and a pid past int32 named by
    # its event and field
    row = one(tmp_path, f"{event}: <...>:77 [120] CPU:002", event)
    assert (row["comm"], row["pid"], row["target_cpu"]) == (None, 77, 2)
    cap = import_text(tmp_path, HEAD + f"{event}: x:2147483648 [120] CPU:002\n")
    assert [reason.split()[:2] for reason in cap.metadata.skipped] == [[event, "pid"]]


def test_payload_forms_mixed_in_one_capture_keep_line_order(tmp_path: Path) -> None:
    """Each line is read by the first grammar that matches it; the typed rows stay in line
    order, whichever grammar read them."""
    text = "".join(
        f"   sh-5  [001] d..2.  10.00000{i}: sched_wakeup: {payload}\n"
        for i, payload in enumerate(
            [
                "comm=a pid=1 prio=120 target_cpu=001",
                "b:2 [120] CPU:002",
                "comm=c pid=3 prio=120 target_cpu=003",
                "d:4 [100] success=1 CPU:004",
            ]
        )
    )
    got = [
        (r["seq"], r["comm"], r["pid"], r["prio"], r["target_cpu"], r["success"])
        for r in rows(import_text(tmp_path, text), "sched_wakeup")
    ]
    assert got == [
        (0, "a", 1, 120, 1, None),
        (1, "b", 2, 120, 2, None),
        (2, "c", 3, 120, 3, None),
        (3, "d", 4, 100, 4, 1),
    ]


def test_userspace_exit_forms_mixed_in_one_capture(tmp_path: Path) -> None:
    """The ``reason %s (%d)`` rows are finished from the name and number; the ``reason=%d
    errno=%d`` rows of the same capture keep the numbers they print."""
    text = "".join(
        f"   qemu-5  [001] d..2.  10.00000{i}: kvm_userspace_exit: {payload}\n"
        for i, payload in enumerate(
            [
                "reason KVM_EXIT_MMIO (6)",
                "reason=2 errno=0",
                "reason restart (4)",
                "reason=0 errno=4",
            ]
        )
    )
    got = [
        (r["reason_name"], r["reason"], r["errno"])
        for r in rows(import_text(tmp_path, text), "kvm_userspace_exit")
    ]
    assert got == [("KVM_EXIT_MMIO", 6, 0), (None, 2, 0), ("restart", None, -4), (None, 0, 4)]


def test_migrate_fork_exit(tmp_path: Path) -> None:
    row = one(
        tmp_path,
        "sched_migrate_task: comm=CPU 0/KVM pid=4242 prio=120 orig_cpu=1 dest_cpu=4",
        "sched_migrate_task",
    )
    assert (row["comm"], row["orig_cpu"], row["dest_cpu"]) == ("CPU 0/KVM", 1, 4)
    for payload in (
        "sched_process_fork: comm=qemu pid=10 child_comm=qemu child_pid=11",
        "sched_process_fork: parent_comm=qemu parent_pid=10 child_comm=qemu child_pid=11",
    ):
        row = one(tmp_path, payload, "sched_process_fork")
        assert (row["parent_pid"], row["child_comm"], row["child_pid"]) == (10, "qemu", 11)
    row = one(tmp_path, "sched_process_exit: comm=x pid=9 prio=120", "sched_process_exit")
    assert (row["pid"], row["group_dead"]) == (9, None)
    row = one(
        tmp_path, "sched_process_exit: comm=x pid=9 prio=120 group_dead=true", "sched_process_exit"
    )
    assert row["group_dead"] is True


def test_power_events(tmp_path: Path) -> None:
    row = one(tmp_path, "cpu_frequency: state=1800000 cpu_id=4", "cpu_frequency")
    assert (row["state"], row["cpu_id"]) == (1_800_000, 4)
    row = one(tmp_path, "cpu_idle: state=4294967295 cpu_id=2", "cpu_idle")
    assert (row["state"], row["idle_state"]) == (4294967295, -1)
    row = one(tmp_path, "cpu_idle: state=-1 cpu_id=2", "cpu_idle")
    assert (row["state"], row["idle_state"]) == (4294967295, -1)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            "kvm_exit: TRAP: HSR_EC: 0x0018 (SYS64), PC: 0xffff8000081234a8",
            ("arm64", "TRAP", 0x18, "SYS64", 0xFFFF8000081234A8, None),
        ),
        (
            "kvm_exit: IRQ: HSR_EC: 0x0000 (UNKNOWN), PC: 0x0000000000401000",
            ("arm64", "IRQ", 0, "UNKNOWN", 0x401000, None),
        ),
        (
            "kvm_exit: ILLEGAL: HSR_EC: 0x0000 (UNKNOWN), PC: 0x10",
            ("arm64", "ILLEGAL", 0, "UNKNOWN", 16, None),
        ),
        (
            "kvm_exit: HYP_GONE: HSR_EC: 0x0000 (UNKNOWN), PC: 0x10",
            ("arm64", "HYP_GONE", 0, "UNKNOWN", 16, None),
        ),
        # an exception class the printing kernel had no name for prints as hex
        (
            "kvm_exit: TRAP: HSR_EC: 0x003f (0x3f), PC: 0x10",
            ("arm64", "TRAP", 0x3F, "0x3f", 16, None),
        ),
        (
            "kvm_exit: reason HLT rip 0xffffffffb33f2e5f info 0 0",
            ("x86", None, None, None, 0xFFFFFFFFB33F2E5F, None),
        ),
        (
            "kvm_exit: vcpu 3 reason MSR_WRITE rip 0xffffffffb20d5bc8 info1 0x0 info2 0x0 intr_info 0x0 error_code 0x0",
            ("x86", None, None, None, 0xFFFFFFFFB20D5BC8, 3),
        ),
        (
            "kvm_exit: ret=2 esr_ec=24 vcpu_pc=0xffff800008000010",
            ("arm64", None, 24, None, 0xFFFF800008000010, None),
        ),
        ("kvm_exit: idx=1 exit_reason=0x18 vcpu_pc=0x10", ("arm64", None, 0x18, None, 16, None)),
    ],
)
def test_kvm_exit_forms(tmp_path: Path, payload: str, expected: tuple[object, ...]) -> None:
    row = one(tmp_path, payload, "kvm_exit")
    assert (
        row["isa"],
        row["ret_name"],
        row["esr_ec"],
        row["ec_name"],
        row["vcpu_pc"],
        row["vcpu_id"],
    ) == expected


@pytest.mark.parametrize(
    ("payload", "pc", "vcpu"),
    [
        ("kvm_entry: PC: 0xffff800008010000", 0xFFFF800008010000, None),
        ("kvm_entry: PC: 0x00401000", 0x401000, None),
        ("kvm_entry: vcpu 0 rip 0xffffffffb33f2e60", 0xFFFFFFFFB33F2E60, 0),
        ("kvm_entry: vcpu 2, rip 0xffffffffb33f2e60", 0xFFFFFFFFB33F2E60, 2),
        ("kvm_entry: vcpu_pc=0xffff800008010000", 0xFFFF800008010000, None),
    ],
)
def test_kvm_entry_forms(tmp_path: Path, payload: str, pc: int, vcpu: int | None) -> None:
    row = one(tmp_path, payload, "kvm_entry")
    assert (row["vcpu_pc"], row["vcpu_id"]) == (pc, vcpu)


def test_other_kvm_events(tmp_path: Path) -> None:
    row = one(tmp_path, "kvm_userspace_exit: reason KVM_EXIT_MMIO (6)", "kvm_userspace_exit")
    assert (row["reason_name"], row["reason"], row["errno"]) == ("KVM_EXIT_MMIO", 6, 0)
    # the kernel prints -errno: "restart (4)" is errno -EINTR (as in fixtures/kernel's traces)
    row = one(tmp_path, "kvm_userspace_exit: reason restart (4)", "kvm_userspace_exit")
    assert (row["reason_name"], row["reason"], row["errno"]) == ("restart", None, -4)
    row = one(tmp_path, "kvm_userspace_exit: reason error (22)", "kvm_userspace_exit")
    assert (row["reason_name"], row["reason"], row["errno"]) == ("error", None, -22)
    row = one(tmp_path, "kvm_vcpu_wakeup: poll time 310891 ns, polling invalid", "kvm_vcpu_wakeup")
    assert (row["ns"], row["waited"], row["valid"]) == (310891, False, False)
    # "%s time %lld ns, polling %s": waited ? "wait" : "poll", valid ? "valid" : "invalid"
    row = one(tmp_path, "kvm_vcpu_wakeup: wait time 5000 ns, polling valid", "kvm_vcpu_wakeup")
    assert (row["ns"], row["waited"], row["valid"]) == (5000, True, True)
    row = one(tmp_path, "kvm_handle_sys_reg: HSR 0x62633820", "kvm_handle_sys_reg")
    assert row["hsr"] == 0x62633820


@pytest.mark.parametrize(
    ("printed", "encoding", "sysreg", "is_write"),
    [
        ("PMCCNTR_EL0 (3,3,9,13,0) read", (3, 3, 9, 13, 0), "PMCCNTR_EL0", False),
        ("PMCR_EL0 (3,3,9,12,0) write", (3, 3, 9, 12, 0), "PMCR_EL0", True),
        ("UNKN (3,3,14,8,5) read", (3, 3, 14, 8, 5), "PMEVCNTR5_EL0", False),
        ("PMCCFILTR_EL0 (3,3,14,15,7) write", (3, 3, 14, 15, 7), "PMCCFILTR_EL0", True),
        ("CNTV_CTL_EL0 (3,3,14,3,1) write", (3, 3, 14, 3, 1), None, True),
        ("PMINTENSET_EL1 (3,0,9,14,1) write", (3, 0, 9, 14, 1), "PMINTENSET_EL1", True),
    ],
)
def test_kvm_sys_access_decodes_pmu_registers(
    tmp_path: Path, printed: str, encoding: tuple[int, ...], sysreg: str | None, is_write: bool
) -> None:
    row = one(tmp_path, f"kvm_sys_access: PC: ffff800008123450 {printed}", "kvm_sys_access")
    assert tuple(row[k] for k in ("Op0", "Op1", "CRn", "CRm", "Op2")) == encoding
    assert (row["sysreg"], row["is_write"], row["vcpu_pc"]) == (
        sysreg,
        is_write,
        0xFFFF800008123450,
    )
    assert row["name"] == (None if printed.startswith("UNKN") else printed.split()[0])


def test_unparsed_payload_is_kept_and_counted(tmp_path: Path) -> None:
    cap = import_text(tmp_path, HEAD + "sched_switch: something unexpected\n")
    assert cap.table("sched_switch").num_rows == 0
    assert [(r["event"], r["args"]) for r in rows(cap, "events")] == [
        ("sched_switch", "something unexpected")
    ]
    assert cap.metadata.skipped["sched_switch payload not understood (kept in events)"] == {
        "count": 1,
        "first": ["line 1"],
    }


def test_payload_missing_a_later_required_key_is_kept_whole(tmp_path: Path) -> None:
    # the first keys match, a later required one is missing: no partial value may survive
    cap = import_text(tmp_path, HEAD + "sched_switch: prev_comm=a prev_pid=1 prev_prio=120 oops\n")
    assert cap.table("sched_switch").num_rows == 0
    assert [r["args"] for r in rows(cap, "events")] == ["prev_comm=a prev_pid=1 prev_prio=120 oops"]


def test_userspace_exit_reason_printed_negative_is_the_u32_code(tmp_path: Path) -> None:
    # "reason %s (%d)" prints `errno < 0 ? -errno : reason`, an unsigned int (reason is __u32)
    # through %d [include/trace/events/kvm.h]; __print_symbolic prints an unnamed code in hex
    row = one(tmp_path, "kvm_userspace_exit: reason 0xffffffff (-1)", "kvm_userspace_exit")
    assert (row["reason_name"], row["reason"], row["errno"]) == ("0xffffffff", 0xFFFFFFFF, 0)


@pytest.mark.parametrize(
    ("printed", "dead"), [("true", True), ("false", False), ("1", True), ("0", False)]
)
def test_process_exit_group_dead_printed_or_raw(tmp_path: Path, printed: str, dead: bool) -> None:
    # "group_dead=%s" of `group_dead ? "true" : "false"` [include/trace/events/sched.h]; the raw
    # form (`trace-cmd report -R`) prints the bool field as its number
    payload = f"sched_process_exit: comm=x pid=9 prio=120 group_dead={printed}"
    assert one(tmp_path, payload, "sched_process_exit")["group_dead"] is dead
