"""What a configuration costs besides stalled counters: pinning, and perf-event re-creations.

Per scenario and vCPU (one row each, also for a vCPU that never entered the guest):

* ``on_cpu_ns``: the vCPU thread's time on CPUs (guest, host or unknown), the base of its
  unknown share; under a scenario that would have let in entries the capture's kernel refused,
  plus the time after them the capture shows the thread on no CPU (:mod:`replay.refused`): the
  scenario's guest could have run then, and that time is unknown;
* ``cross_pmu_loads``: loads onto a CPU of another host PMU than the previous load
  (:mod:`replay.loads`), a property of the schedule reported under every scenario, and
  ``cross_pmu_loads_per_guest_s``, their rate per second of ``schedule_guest_ns``, the guest
  time of the schedule (the capture's guest pieces): the same under every scenario too, since
  a scenario that refuses or hides guest time does not change where the threads ran;
* ``event_recreations``: perf events the scenario's kernel re-created at guest entries
  (:mod:`replay.work`), and ``recreate_cpu_ns``, their estimated host CPU cost at a stated
  cost per re-creation (:data:`DEFAULT_RECREATE_COST_US`);
* ``pinned_off_cpus`` / ``pinned_capacity_share``: the CPUs on which the configuration makes
  guest entries fail (outside ``supported_cpus``: ``SET_PMU``'s pinning), and their share of
  the host's compute capacity (:func:`capacity_weights`).

:data:`DEFAULT_RECREATE_COST_US` is 10 us. ``benchmarks/bench_recreate.py`` measures the
nearest user-space equivalent of a re-creation, ``close()`` of a task-bound counting perf event
and a new ``perf_event_open()``: median 7.9-8.2 us, p90 12.4 us on the development machine
(x86_64 VM, Linux 6.18, a software event since it has no PMU: a lower bound, as a hardware event
adds the PMU driver's ``event_init``). 10 us rounds the median up; run the benchmark on the
host in question and pass its figure with ``--recreate-cost-us``.
"""

from __future__ import annotations

import polars as pl

from importers.host.topology import Topology, format_cpulist
from replay.loads import loads_per_guest_s
from replay.pmu import HostPmus
from replay.refused import UNSEEN_GUEST
from replay.work import ScenarioResult, Work

DEFAULT_RECREATE_COST_US = 10.0

COST_SCHEMA: dict[str, pl.DataType] = {
    "scenario": pl.Utf8(),
    "vm": pl.Utf8(),
    "vcpu": pl.Int32(),
    "vcpu_index": pl.Int32(),
    "on_cpu_ns": pl.Int64(),
    "schedule_guest_ns": pl.Int64(),
    "cross_pmu_loads": pl.UInt32(),
    "cross_pmu_loads_per_guest_s": pl.Float64(),
    "event_recreations": pl.UInt32(),
    "recreate_cpu_ns": pl.Int64(),
    "pinned_off_cpus": pl.Utf8(),
    "pinned_capacity_share": pl.Float64(),
}


def capacity_weights(topology: Topology, host: HostPmus) -> tuple[dict[int, float], str]:
    """Each host CPU's share of the host's compute, and what it is based on.

    The topology's ``cpu_capacity`` when it gives one for every CPU, else the CPUs' maximum
    frequencies when it gives those for every CPU, else every CPU counts the same.
    """
    cpus = sorted(host.possible_cpus)
    capacity = topology.capacity
    if cpus and all(cpu in capacity for cpu in cpus):
        raw, basis = {cpu: float(capacity[cpu]) for cpu in cpus}, "cpu_capacity"
    elif cpus and all(topology.max_freq_khz(cpu) for cpu in cpus):
        raw = {cpu: float(topology.max_freq_khz(cpu) or 0) for cpu in cpus}
        basis = "maximum frequency"
    else:
        raw, basis = {cpu: 1.0 for cpu in cpus}, "CPU count (no capacities or frequencies)"
    total = sum(raw.values())
    return {cpu: w / total for cpu, w in raw.items()}, basis


def let_in_windows(observations: pl.DataFrame) -> pl.DataFrame:
    """``tid, window`` of each entry window a scenario lets in that the capture's kernel
    refused (:data:`replay.refused.UNSEEN_GUEST`), from its observations."""
    return (
        observations.filter(pl.col("reason") == UNSEEN_GUEST)
        .select(pl.col("vcpu").alias("tid"), "window")
        .unique()
    )


def vcpu_costs(
    work: Work,
    results: list[ScenarioResult],
    let_in: list[pl.DataFrame],
    recreate_cost_us: float,
) -> pl.DataFrame:
    """One row per scenario and vCPU of ``work`` (:data:`COST_SCHEMA`; see module docstring);
    ``let_in``: :func:`let_in_windows` of each of ``results``."""
    weights, _ = capacity_weights(work.topology, work.host)
    loads = work.loads.group_by("tid").agg(pl.col("cross_pmu").sum().alias("cross_pmu_loads"))
    length = pl.col("end") - pl.col("start")
    vcpus = (
        work.pieces.group_by("vm", "tid")
        .agg(
            pl.col("vcpu_index").first(),
            length.sum().alias("on_cpu_ns"),
            length.filter(pl.col("state") == "guest").sum().alias("schedule_guest_ns"),
        )
        .join(loads, on="tid", how="left")
        .with_columns(pl.col("cross_pmu_loads").fill_null(0))
        .with_columns(
            loads_per_guest_s(pl.col("cross_pmu_loads"), pl.col("schedule_guest_ns")).alias(
                "cross_pmu_loads_per_guest_s"
            )
        )
    )
    hidden = work.attempts.select("tid", "window", "off_cpu_ns")
    frames = []
    for r, windows in zip(results, let_in, strict=True):
        off = work.host.possible_cpus - r.supported_cpus
        per_vcpu = r.recreations.group_by("vcpu").agg(pl.len().alias("event_recreations"))
        hidden_ns = (
            windows.join(hidden, on=["tid", "window"])
            .group_by("tid")
            .agg(pl.col("off_cpu_ns").sum())
        )
        frames.append(
            vcpus.join(per_vcpu, left_on="tid", right_on="vcpu", how="left")
            .join(hidden_ns, on="tid", how="left")
            .with_columns(
                pl.lit(r.scenario.name, pl.Utf8).alias("scenario"),
                pl.col("on_cpu_ns") + pl.col("off_cpu_ns").fill_null(0),
                pl.col("event_recreations").fill_null(0),
                pl.lit(format_cpulist(off)).alias("pinned_off_cpus"),
                pl.lit(sum(weights[cpu] for cpu in off), pl.Float64).alias("pinned_capacity_share"),
            )
        )
    cost_ns = pl.col("event_recreations").cast(pl.Float64) * recreate_cost_us * 1000
    table = pl.concat(frames).with_columns(
        pl.col("tid").alias("vcpu"), cost_ns.round().cast(pl.Int64).alias("recreate_cpu_ns")
    )
    return table.select(pl.col(c).cast(t) for c, t in COST_SCHEMA.items())
