"""Real captures the replay tests run on, with the host and vCPU description each needs.

The x86 KVM captures come from single-cluster hosts; the tests give them a stated what-if
split of their CPUs into two PMUs ("little" = lower half, "big" = upper half) so that the
schedule's real migrations meet a heterogeneous host. kvm-x86-host-v7-kvmevents is timed in
raw TSC cycles without a recorded conversion: its stated TSC frequency is 2 GHz.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from importers.capture import Capture
from importers.host.topology import Topology
from replay.api import capture_topology, open_capture


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    pmus: tuple[str, ...] = ()
    topology_file: str | None = None
    vcpus: tuple[str, ...] = field(default_factory=tuple)
    needs: str | None = None  # importer module the capture needs
    tsc_khz: int | None = None  # stated frequency of a raw clock (--tsc-khz)

    def load(self, shared: Path) -> tuple[Capture, Topology]:
        if self.needs and importlib.util.find_spec(self.needs) is None:
            pytest.skip(f"{self.path} needs {self.needs}, not in this build")
        cap = open_capture(
            shared / self.path,
            topology=shared / self.topology_file if self.topology_file else None,
            pmus=self.pmus,
            vcpus=self.vcpus,
            tsc_khz=self.tsc_khz,
        )
        topo = capture_topology(cap)
        assert topo is not None, f"{self.name} states its topology"
        return cap, topo


CASES = [
    # The Juno captures have no KVM guest: the threads that cross the clusters most stand in
    # for vCPU threads (rt-app, rcu_preempt, usb-storage; sshd, sh, bash).
    Case(
        "juno-trace-txt",
        "juno-trace-txt/trace.txt",
        topology_file="juno-trace-txt/plat_info.yml",
        vcpus=("1706=vm0:0", "8=vm0:1", "1343=vm1:0"),
    ),
    Case(
        "kvm-x86-host-report-txt",
        "kvm-x86-host-report-txt/host_report.txt",
        pmus=("little=0-9", "big=10-19"),
    ),
    Case(
        "juno-sched-load",
        "juno-sched-load/trace.dat",
        topology_file="juno-sched-load/plat_info.yml",
        vcpus=("2928=vm0:0", "3106=vm0:1", "3104=vm1:0"),
        needs="importers.tracedat.read",
    ),
    Case(
        "kvm-x86-host-v7-kvmevents",
        "kvm-x86-host-v7-kvmevents/trace.dat",
        pmus=("little=0-9", "big=10-19"),
        needs="importers.tracedat.read",
        tsc_khz=2_000_000,
    ),
    Case(
        "kvm-x86-hostguest-v7",
        "kvm-x86-hostguest-v7/trace.dat",
        pmus=("little=0-9", "big=10-19"),
        needs="importers.tracedat.read",
    ),
]
