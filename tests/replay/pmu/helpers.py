"""Shared fixtures-as-functions for the vPMU model tests: host topologies and running vCPUs."""

from __future__ import annotations

from replay.pmu import HostPmu, HostPmus, Vcpu
from replay.scenarios import Scenario, build_vm

A53 = "armv8_cortex_a53"
A57 = "armv8_cortex_a57"
A53_TYPE = 8
A57_TYPE = 9
#: The SET/CLR bitmap registers, in the order the selftest checks them.
BITMAP_REGS = [
    "PMCNTENSET_EL0",
    "PMCNTENCLR_EL0",
    "PMINTENSET_EL1",
    "PMINTENCLR_EL1",
    "PMOVSSET_EL0",
    "PMOVSCLR_EL0",
]


def two_clusters(*, a53_counters: int = 6, a57_counters: int = 6, no_pmu_cpus: int = 0) -> HostPmus:
    """A big.LITTLE host: CPUs 0-3 Cortex-A53, 4-7 Cortex-A57, then ``no_pmu_cpus`` PMUv3 CPUs
    that no registered PMU covers (CPU 8, 9, ...)."""
    a53 = HostPmu(A53, A53_TYPE, frozenset(range(4)), num_counters=a53_counters)
    a57 = HostPmu(A57, A57_TYPE, frozenset(range(4, 8)), num_counters=a57_counters)
    return HostPmus([a53, a57], possible_cpus=range(8 + no_pmu_cpus))


def pmu_of(host: HostPmus, cpu: int) -> HostPmu | None:
    """``P(c)`` of spec §8.6: the first host PMU, in registration order, whose CPUs include ``cpu``.

    Read off the host description rather than ``HostPmus.probe_armpmu()``, so that the test
    oracles do not share the model's code. Only meaningful on a host that offers a vPMU (all its
    PMUs are registered then, spec §1.1).
    """
    return next((p for p in host.pmus if cpu in p.cpus), None)


def pmu_cpus(host: HostPmus) -> frozenset[int]:
    """The CPUs some host PMU covers (the v4 FIXED_COUNTERS_ONLY ``supported_cpus``, spec §8.4)."""
    return frozenset().union(*(p.cpus for p in host.pmus))


def running_vcpu(scenario: Scenario, host: HostPmus, cpu: int) -> Vcpu:
    """vCPU 0 of a VM built for ``scenario``, loaded on ``cpu`` and in guest mode."""
    vcpu = build_vm(scenario, host).vcpus[0]
    vcpu.vcpu_load(cpu)
    assert vcpu.guest_enter().entered
    return vcpu
