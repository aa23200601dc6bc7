"""What both paths of the engine share: the prepared work, and the shape of their results.

:mod:`replay.engine` prepares a :class:`Work` and dispatches each scenario to one of the paths
in :mod:`replay.paths`; the paths take their inputs and return their results in the types
declared here, and never import the dispatcher.

In an observation, ``true_events`` is what the guest executed in the piece (the hardware
ran it, counted or not), ``delta`` is the change of the guest-visible counter over the piece
(modulo its width, as a guest reading before and after would compute it) and ``value`` the
counter after the piece. ``counting``/``reason`` say whether and why not the counter counted.

A re-creation is a perf event the kernel releases and creates anew for a counter at a guest
entry (``kvm_vcpu_reload_pmu()`` -> ``kvm_pmu_create_perf_event()``), one row per event: the
FIXED_COUNTERS_ONLY series does it after a load onto another PMU (spec §3.4), v4 also for the
default PMU's events after every load onto a CPU that PMU does not cover; a released kernel
never does it on a load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import polars as pl

from importers.host.pmus import PmuDescription
from importers.host.topology import Topology
from replay.pmu import ENTERED, HostPmus, KvmRefusedError
from replay.profiles import GuestProfile
from replay.scenarios import ConfiguredVm, Scenario, as_offered, build_vm
from replay.timeline import Timeline

#: The key of one vCPU under one scenario in the result tables. ``vcpu_index`` is null when
#: discovery could not tell it (a thread found by its KVM events, ``--vcpu TID=VM``): a join
#: on this key must match nulls (``nulls_equal=True``), or go by ``vcpu`` (the thread).
VCPU_KEY = ["scenario", "vm", "vcpu", "vcpu_index"]

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


#: Columns of the re-creations table, in order, with their types.
RECREATION_SCHEMA: dict[str, pl.DataType] = {
    "scenario": pl.Utf8(),
    "vm": pl.Utf8(),
    "vcpu": pl.Int32(),
    "vcpu_index": pl.Int32(),
    "counter": pl.Int8(),
    "ts": pl.Int64(),
    "cpu": pl.Int16(),
    "host_pmu": pl.Utf8(),
}


@dataclass
class Work:
    """What every scenario replays: pieces of every vCPU in time order.

    ``pieces`` columns: ``vm, tid, vcpu_index, residency, window, tick, cpu, start, end, state,
    cause, cycles`` and, for guest pieces, ``el0_<event>``/``el1_<event>`` counts.
    ``window`` numbers guest windows (one ``guest_enter``/``guest_exit`` each); a window cut
    at ticks has several pieces. ``accesses`` are the guest PMU register accesses the capture
    traced (:mod:`replay.pmu_reads`). ``loads`` are the vCPU loads of :mod:`replay.loads`.
    ``attempts`` are the entries the capture's kernel refused (:mod:`replay.refused`), shaped
    as pieces of zero length in state ``attempt``, each its own ``window``, plus ``until`` and
    ``off_cpu_ns``: both paths merge them into the pieces in (start, end, window) order.
    ``absent_vcpus`` are the vCPUs without a row (``vm, vcpu, vcpu_index, reason``).
    ``described`` are the host PMUs as they really are, with where each fact came from
    (:mod:`importers.host.pmus`).
    """

    timeline: Timeline
    topology: Topology
    host: HostPmus
    profile: GuestProfile
    pieces: pl.DataFrame
    vms: dict[str, list[int]]
    accesses: pl.DataFrame
    loads: pl.DataFrame
    attempts: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    absent_vcpus: list[dict[str, Any]] = field(default_factory=list)
    described: list[PmuDescription] = field(default_factory=list)
    #: the vectorized path's rows of every scenario, built at its first replay
    #: (:func:`replay.paths.vectorized.counter_rows`)
    counter_rows: pl.DataFrame | None = field(default=None, repr=False)

    @cached_property
    def first_load_cpus(self) -> dict[int, int]:
        """Thread -> CPU of its first load (:func:`boot_vm` asks at every boot: once per CPU
        and VM in each scenario, each a scan of millions of loads in a long capture)."""
        first = self.loads.filter(pl.col("load") == 0)
        return dict(zip(first["tid"].to_list(), first["cpu"].to_list(), strict=True))


@dataclass
class ScenarioResult:
    """Observations and perf-event re-creations of one scenario, plus the counters the guest
    could not program."""

    scenario: Scenario
    observations: pl.DataFrame
    lost_counters: dict[str, list[str]]  # vm -> counter names the guest could not program
    recreations: pl.DataFrame
    supported_cpus: frozenset[int]  # where guest entry can succeed (kvm->arch.supported_cpus)


def finish_recreations(rows: pl.DataFrame) -> pl.DataFrame:
    """Cast to the re-creation schema, in (vcpu, ts, counter) order."""
    rows = rows.select(pl.col(c).cast(t) for c, t in RECREATION_SCHEMA.items())
    return rows.sort("vcpu", "ts", "counter")


def describe_absent(vcpu: dict[str, Any]) -> str:
    """Why a vCPU of the capture has no row (a :attr:`Work.absent_vcpus` entry), in words."""
    return (
        f"vCPU {vcpu['vm']}/{vcpu['vcpu_index']} (thread {vcpu['vcpu']}) has no row: "
        f"{vcpu['reason']}"
    )


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


def boot_vm(
    work: Work, scenario: Scenario, tids: Sequence[int | None]
) -> tuple[ConfiguredVm, list[str]]:
    """Configure a VM for ``scenario`` and let each vCPU's guest program its vPMU.

    ``tids`` are the threads of the VM's vCPUs (None: a vCPU that stands for no thread). The
    guest booted before the capture: each vCPU enters once on the first CPU it can run on,
    trying first the CPU of its thread's first load in the capture (so that first load
    crosses no PMU the capture does not show), then ``init_cpu``, and runs the profile's
    ``boot``. Returns the VM and the names of the counters the guest could not program (same
    for every vCPU of a VM): all that the profile programs when the VM has no vPMU — as on
    a host that offers none, whatever the mode (:func:`~replay.scenarios.as_offered`).
    """
    vm = build_vm(as_offered(scenario, work.host), work.host, len(tids))
    lost: list[str] = []
    first_cpu = work.first_load_cpus
    for vcpu, tid in zip(vm.vcpus, tids, strict=True):
        own = [first_cpu[tid]] if tid in first_cpu else []
        for cpu in [*own, scenario.init_cpu, *sorted(work.host.possible_cpus)]:
            vcpu.vcpu_load(cpu)
            if vcpu.guest_enter() is ENTERED:
                requests = work.profile.boot(vcpu) if vcpu.has_pmu else work.profile.programs
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
