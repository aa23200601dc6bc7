"""Vectorized path: the perf events a kernel re-creates at guest entries, from the loads alone.

The reference path watches the model replace backing events; here the same follows from the
kernel's rules (spec §3.3, §3.4, §8.1 items 5-6) and each vCPU's loads
(:mod:`replay.loads`). ``kvm_vcpu_reload_pmu()`` runs at the first entry after a load that
requested ``KVM_REQ_RELOAD_PMU``, and ``kvm_pmc_enable_perf_event()`` re-creates an enabled
counter's event when the event's PMU does not cover the entry CPU, on
``kvm_pmu_create_perf_event()``'s PMU: the CPU's own in FIXED_COUNTERS_ONLY mode (none on a
CPU no registered PMU covers: the event stays), else the VM's PMU again.

Whenever the event's PMU does not cover the first entry CPU of a load, a reload is pending
there: v4 requests one at that very load (its event does not cover the CPU), and v8's request
on a change of PMU between consecutive loads happens somewhere on the way from the PMU the
event lives on. So per entry: re-created iff the target PMU exists and the CPU's PMU differs
from the event's, which is the last target of the earlier entries (or the event's PMU after
boot). Released kernels never reload at a load; v8 only in FIXED_COUNTERS_ONLY mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from replay.pmu.kvm import Kvm, ReloadTrigger
from replay.work import RECREATION_SCHEMA

#: ``tid, counter, host_pmu`` of every enabled counter with a backing event after boot.
SEED_SCHEMA = {"tid": pl.Int32, "counter": pl.Int8, "host_pmu": pl.Utf8}


def reloads_recreate(kvm: Kvm) -> bool:
    """Whether a load can lead to a re-creation under ``kvm``'s kernel and mode."""
    rules = kvm.rules
    fixed = kvm.fixed_counters_only
    requested = rules.reload_trigger is ReloadTrigger.FOREIGN_EVENT or (
        rules.reload_trigger is ReloadTrigger.PMU_CHANGE and fixed
    )
    return requested and (rules.recreate_foreign_events_in_all_modes or fixed)


def recreations(
    loads: pl.DataFrame, tids: Sequence[int], seeds: pl.DataFrame, kvm: Kvm, scenario: str
) -> pl.DataFrame:
    """Re-creations of a VM's vCPUs (:data:`replay.work.RECREATION_SCHEMA`, unordered).

    ``loads`` are :func:`replay.loads.vcpu_loads` rows, of which those of the VM's threads
    ``tids`` count (taken only where a load can re-create: millions of loads in a long
    capture, per VM and scenario); ``seeds`` (:data:`SEED_SCHEMA`) say which events exist
    after boot and where; ``kvm`` is the booted VM.
    """
    if not reloads_recreate(kvm) or seeds.is_empty():
        return pl.DataFrame(schema=RECREATION_SCHEMA)
    loads = loads.filter(pl.col("tid").is_in(tids))
    cpu_pmu = pl.col("host_pmu")
    if kvm.fixed_counters_only:
        target = cpu_pmu
    else:
        assert kvm.arm_pmu is not None, "a vPMU outside FIXED mode is bound to a PMU"
        target = pl.lit(kvm.arm_pmu.name, pl.Utf8)
    key = ["tid", "counter"]
    entries = (
        loads.filter(pl.col("entry").is_not_null())
        # the loads' thread and time order kept: each (tid, counter)'s rows in load order, as
        # the window below needs (a sort of the millions of loads took longer than the rest)
        .join(seeds.rename({"host_pmu": "booted_on"}), on="tid", maintain_order="left")
        .with_columns(target.alias("target"))
    )
    lives_on = pl.col("target").shift(1).forward_fill().over(key).fill_null(pl.col("booted_on"))
    recreated = pl.col("target").is_not_null() & cpu_pmu.ne_missing(lives_on)
    return entries.filter(recreated).select(
        pl.lit(scenario).alias("scenario"),
        "vm",
        pl.col("tid").alias("vcpu"),
        "vcpu_index",
        "counter",
        pl.col("entry").alias("ts"),
        "cpu",
        pl.col("target").alias("host_pmu"),
    )
