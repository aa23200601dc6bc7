"""vCPU discovery: explicit map, x86 vcpu ids, VMM thread names, kvm events."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from importers.detect import load
from importers.errors import UsageError
from importers.host.vcpus import discover_vcpus, parse_vcpu_specs
from tests.importers.textcap import import_text

SW = "sched_switch: prev_comm={a} prev_pid={ap} prev_prio=120 prev_state=S ==> next_comm={b} next_pid={bp} next_prio=120"


def vcpus(cap, specs=None):  # type: ignore[no-untyped-def]
    return pl.from_arrow(discover_vcpus(cap, parse_vcpu_specs(specs or []))).to_dicts()


@pytest.mark.parametrize(
    ("comm", "vmm", "index"),
    [
        ("CPU 3/KVM", "qemu", 3),
        ("crosvm_vcpu2", "crosvm", 2),
        ("kvm-vcpu-1", "kvmtool", 1),
        ("fc_vcpu 0", "firecracker", 0),
        ("vcpu7", "cloud-hypervisor", 7),
    ],
)
def test_thread_names_of_each_vmm(tmp_path: Path, comm: str, vmm: str, index: int) -> None:
    line = f"  {comm}-501   ( 500) [001] d..2. 1.000001: " + SW.format(
        a=comm, ap=501, b="swapper/1", bp=0
    )
    (row,) = vcpus(import_text(tmp_path, line + "\n"))
    assert (row["tid"], row["vcpu_index"], row["method"], row["vm"], row["vm_pid"]) == (
        501,
        index,
        "thread-name",
        f"{vmm}:500",
        500,
    )


def test_vms_grouped_by_forking_thread_without_tgid(tmp_path: Path) -> None:
    text = "".join(
        f"  qemu-{parent} [000] 1.00000{i}: sched_process_fork: comm=qemu pid={parent} child_comm=qemu child_pid={child}\n"
        f"  CPU 0/KVM-{child} [001] 1.00001{i}: kvm_entry: PC: 0x10\n"
        for i, (parent, child) in enumerate([(100, 101), (200, 201)])
    )
    rows = vcpus(import_text(tmp_path, text))
    assert sorted((r["tid"], r["vm"], r["vcpu_index"]) for r in rows) == [
        (101, "qemu:100", 0),
        (201, "qemu:200", 0),
    ]


def test_kvm_event_threads_without_names(tmp_path: Path) -> None:
    text = "  worker-77 [002] 1.000001: kvm_entry: PC: 0x10\n  worker-77 [002] 1.000002: kvm_exit: TRAP: HSR_EC: 0x0001 (WFx), PC: 0x14\n"
    (row,) = vcpus(import_text(tmp_path, text))
    assert (row["tid"], row["vcpu_index"], row["method"], row["vm"]) == (
        77,
        None,
        "kvm-events",
        "worker",
    )


def test_explicit_map_replaces_discovery(tmp_path: Path) -> None:
    line = "  CPU 0/KVM-501 [001] 1.000001: kvm_entry: PC: 0x10\n"
    rows = vcpus(import_text(tmp_path, line), ["9=web:1", "501=db"])
    assert [(r["tid"], r["vm"], r["vcpu_index"], r["method"], r["comm"]) for r in rows] == [
        (9, "web", 1, "explicit", None),
        (501, "db", None, "explicit", "CPU 0/KVM"),
    ]
    with pytest.raises(UsageError, match="TID=VM:INDEX"):
        parse_vcpu_specs(["abc"])
    with pytest.raises(UsageError, match="twice"):
        parse_vcpu_specs(["1=a:0", "1=b:0"])


def test_real_x86_host_capture(shared_traces: Path) -> None:
    cap = load(shared_traces / "kvm-x86-host-report-txt/host_report.txt")
    (row,) = vcpus(cap)
    assert (row["tid"], row["vcpu_index"], row["method"]) == (150750, 0, "x86-vcpu-id")
