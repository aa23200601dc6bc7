"""What both paths of the engine share: the prepared work, and the shape of their results.

:mod:`replay.engine` prepares a :class:`Work` and dispatches each scenario to one of the paths
in :mod:`replay.paths`; the paths take their inputs and return their results in the types
declared here, and never import the dispatcher.

In an observation, ``true_events`` is what the guest executed in the piece (the hardware
ran it, counted or not), ``delta`` is the change of the guest-visible counter over the piece
(modulo its width, as a guest reading before and after would compute it) and ``value`` the
counter after the piece. ``counting``/``reason`` say whether and why not the counter counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from importers.host.pmus import PmuDescription
from importers.host.topology import Topology
from replay.pmu import ENTERED, HostPmus, KvmRefusedError
from replay.profiles import GuestProfile
from replay.scenarios import ConfiguredVm, Scenario, as_offered, build_vm
from replay.timeline import Timeline

#: Columns of the observations table, in order, with their types.
OBSERVATION_SCHEMA: dict[str, pl.DataType] = {
    "scenario": pl.Utf8(),
    "vm": pl.Utf8(),
    "vcpu": pl.Int32(),
    "vcpu_index": pl.Int32(),
    "counter": pl.Int8(),
    "window": pl.Int64(),
    "tick": pl.Int64(),
    "start": pl.Int64(),
    "end": pl.Int64(),
    "cpu": pl.Int16(),
    "state": pl.Utf8(),
    "host_pmu": pl.Utf8(),
    "counting": pl.Boolean(),
    "reason": pl.Utf8(),
    "true_events": pl.Int64(),
    "delta": pl.Int64(),
    "value": pl.UInt64(),
}


@dataclass
class Work:
    """What every scenario replays: pieces of every vCPU in time order.

    ``pieces`` columns: ``vm, tid, vcpu_index, residency, window, tick, cpu, start, end, state,
    cause, cycles`` and, for guest pieces, ``el0_<event>``/``el1_<event>`` counts.
    ``window`` numbers guest windows (one ``guest_enter``/``guest_exit`` each); a window cut
    at ticks has several pieces. ``accesses`` are the guest PMU register accesses the capture
    traced (:mod:`replay.pmu_reads`). ``described`` are the host PMUs as they really are, with
    where each fact came from (:mod:`importers.host.pmus`).
    """

    timeline: Timeline
    topology: Topology
    host: HostPmus
    profile: GuestProfile
    pieces: pl.DataFrame
    vms: dict[str, list[int]]
    accesses: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    described: list[PmuDescription] = field(default_factory=list)


@dataclass
class ScenarioResult:
    """Observations of one scenario, plus the counters the guest could not program."""

    scenario: Scenario
    observations: pl.DataFrame
    lost_counters: dict[str, list[str]]  # vm -> counter names the guest could not program


def finish_observations(rows: pl.DataFrame) -> pl.DataFrame:
    """Cast to the observation schema.

    ``rows`` come in the observations' order, (vcpu, counter, start): one scenario per call,
    a vCPU thread belongs to one VM and its pieces do not overlap, so that is a total order.
    Without a vPMU the guest cannot read any counter (the registers UNDEF): no value.
    """
    no_vpmu = pl.col("reason").is_in(["no_vpmu", "no_vpmu_offered"])
    value = pl.when(no_vpmu).then(None).otherwise(pl.col("value"))
    rows = rows.with_columns(value.alias("value"))
    return rows.select(pl.col(c).cast(t) for c, t in OBSERVATION_SCHEMA.items())


def boot_vm(work: Work, scenario: Scenario, nr_vcpus: int) -> tuple[ConfiguredVm, list[str]]:
    """Configure a VM for ``scenario`` and let each vCPU's guest program its vPMU.

    The guest booted before the capture: each vCPU enters once on the first CPU it can run
    on (``init_cpu`` first) and runs the profile's ``boot``. On a host that offers no vPMU the
    VM has none, whatever the mode (:func:`~replay.scenarios.as_offered`). Returns the VM and
    the names of the counters the guest could not program (same for every vCPU of a VM).
    """
    vm = build_vm(as_offered(scenario, work.host), work.host, nr_vcpus)
    lost: list[str] = []
    candidates = [scenario.init_cpu, *sorted(work.host.possible_cpus)]
    for vcpu in vm.vcpus:
        for cpu in candidates:
            vcpu.vcpu_load(cpu)
            if vcpu.guest_enter() is ENTERED:
                requests = work.profile.boot(vcpu) if vcpu.has_pmu else work.profile.counters
                lost = [r.name for r in requests]
                vcpu.guest_exit()
                vcpu.vcpu_put()
                break
            vcpu.vcpu_put()
        else:
            raise KvmRefusedError(
                f"scenario {scenario.name}: the vCPU cannot enter the guest on any host CPU",
                0,
            )
    return vm, lost
