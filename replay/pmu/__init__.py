"""The vPMU model: what a guest sees through KVM's arm64 PMUv3 emulation (spec ``kvm-pmu.md``).

A pure state machine (no I/O, no clock, no globals) whose names follow the kernel:

- :class:`HostPmus` / :class:`HostPmu`: the host PMUs KVM registered (``arm_pmus``), and the
  counters the host's own pinned events hold (:class:`Reservation`);
- :class:`Kvm`: the VM's PMU binding and VM-wide attributes (``struct kvm`` arch state);
- :class:`Vcpu`: userspace calls (``vcpu_init``, ``set_attr``, ``set_one_reg`` ...), the run side
  (``vcpu_load``, ``vcpu_put``, ``guest_enter``, ``guest_exit``, ``advance``), guest register
  accesses by Arm name, and side-effect-free queries (``counter_value``, ``counter_status``).

Typical use::

    host = HostPmus.from_topology({0: "armv8_cortex_a53", 1: "armv8_cortex_a53",
                                   2: "armv8_cortex_a57", 3: "armv8_cortex_a57"})
    kvm = Kvm(host)
    vcpu = create_vcpu(kvm)
    vcpu.vcpu_init(on_cpu=0)                     # default PMU = the A53 PMU
    vcpu.set_attr(PmuAttr.IRQ, 23); vcpu.set_attr(PmuAttr.INIT)
    vcpu.vcpu_load(2); vcpu.guest_enter()
    vcpu.write_sysreg("PMCNTENSET_EL0", 1 << 31); vcpu.write_sysreg("PMCR_EL0", 0b101)  # E|C
    vcpu.advance({CPU_CYCLES: 1000})             # frozen: an A57 core cannot run A53 events
    assert vcpu.read_sysreg("PMCCNTR_EL0") == 0
"""

from importers.host.pmuv3 import CPU_CYCLES, INST_RETIRED, PmuVer, Reservation
from replay.pmu.arch import CYCLE_IDX
from replay.pmu.errors import (
    KvmRefusedError,
    UndefinedAccess,
    UnknownRegisterError,
    VpmuStateError,
)
from replay.pmu.event import BackingEvent
from replay.pmu.host import (
    DEFAULT_NUM_COUNTERS,
    DEFAULT_PMCEID,
    DEFAULT_PMUVER,
    HostPmu,
    HostPmus,
)
from replay.pmu.kvm import KernelSemantics, Kvm, Quirks
from replay.pmu.status import CounterStatus, StallReason
from replay.pmu.uapi import (
    DEFAULT_PMU_IRQ,
    ENTERED,
    Entered,
    EntryOutcome,
    EventFilter,
    FailEntry,
    FilterAction,
    PmuAttr,
)
from replay.pmu.vcpu import Vcpu, create_vcpu

__all__ = [
    "CPU_CYCLES",
    "CYCLE_IDX",
    "DEFAULT_NUM_COUNTERS",
    "DEFAULT_PMCEID",
    "DEFAULT_PMUVER",
    "DEFAULT_PMU_IRQ",
    "ENTERED",
    "INST_RETIRED",
    "BackingEvent",
    "CounterStatus",
    "Entered",
    "EntryOutcome",
    "EventFilter",
    "FailEntry",
    "FilterAction",
    "HostPmu",
    "HostPmus",
    "KernelSemantics",
    "Kvm",
    "KvmRefusedError",
    "PmuAttr",
    "PmuVer",
    "Quirks",
    "Reservation",
    "StallReason",
    "UndefinedAccess",
    "UnknownRegisterError",
    "Vcpu",
    "VpmuStateError",
    "create_vcpu",
]
