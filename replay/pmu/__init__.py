"""The vPMU model: what a guest sees through KVM's arm64 PMUv3 emulation (spec ``kvm-pmu.md``).

A pure state machine (no I/O, no clock, no globals) whose names follow the kernel:

- :class:`HostPmus` / :class:`HostPmu`: the host PMUs KVM registered (``arm_pmus``), and the
  counters the host's own pinned events hold (:class:`Reservation`);
- :class:`Kvm`: the VM's PMU binding and VM-wide attributes (``struct kvm`` arch state);
- :class:`Vcpu`: userspace calls (``vcpu_init``, ``set_attr``, ``set_one_reg`` ...), the run side
  (``vcpu_load``, ``vcpu_put``, ``guest_enter``, ``guest_exit``, ``advance``), guest register
  accesses by Arm name, and side-effect-free queries (``counter_value``, ``counter_status``).

The names are loaded on first use (PEP 562): importing one submodule does not load the rest.

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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replay.pmu.arch import CPU_CYCLES, CYCLE_IDX, INST_RETIRED, PmuVer
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
        Reservation,
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

#: public name -> the module that defines it (loaded on first use, see below)
_HOMES: dict[str, str] = {
    "CPU_CYCLES": "replay.pmu.arch",
    "CYCLE_IDX": "replay.pmu.arch",
    "INST_RETIRED": "replay.pmu.arch",
    "PmuVer": "replay.pmu.arch",
    "KvmRefusedError": "replay.pmu.errors",
    "UndefinedAccess": "replay.pmu.errors",
    "UnknownRegisterError": "replay.pmu.errors",
    "VpmuStateError": "replay.pmu.errors",
    "BackingEvent": "replay.pmu.event",
    "DEFAULT_NUM_COUNTERS": "replay.pmu.host",
    "DEFAULT_PMCEID": "replay.pmu.host",
    "DEFAULT_PMUVER": "replay.pmu.host",
    "HostPmu": "replay.pmu.host",
    "HostPmus": "replay.pmu.host",
    "Reservation": "replay.pmu.host",
    "KernelSemantics": "replay.pmu.kvm",
    "Kvm": "replay.pmu.kvm",
    "Quirks": "replay.pmu.kvm",
    "CounterStatus": "replay.pmu.status",
    "StallReason": "replay.pmu.status",
    "DEFAULT_PMU_IRQ": "replay.pmu.uapi",
    "ENTERED": "replay.pmu.uapi",
    "Entered": "replay.pmu.uapi",
    "EntryOutcome": "replay.pmu.uapi",
    "EventFilter": "replay.pmu.uapi",
    "FailEntry": "replay.pmu.uapi",
    "FilterAction": "replay.pmu.uapi",
    "PmuAttr": "replay.pmu.uapi",
    "Vcpu": "replay.pmu.vcpu",
    "create_vcpu": "replay.pmu.vcpu",
}

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


def __getattr__(name: str) -> object:
    """Load the defining module on first use: the importers need a few constants and the
    host description types, not the whole model (``import replay.pmu.arch`` stays light)."""
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'replay.pmu' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
