"""Which host threads are vCPUs, of which VM, with which index (``formats.md`` §2.7).

Methods, strongest first; each row of the result says which one found it:

* ``explicit``: ``--vcpu TID=VM:INDEX`` options (then nothing else is guessed);
* ``x86-vcpu-id``: threads logging x86 ``kvm_entry`` events, which carry the vCPU id;
* ``thread-name``: VMM thread names — QEMU ``CPU n/KVM`` (accel/kvm/kvm-accel-ops.c), crosvm
  ``crosvm_vcpun`` with no space (src/crosvm/sys/linux/vcpu.rs: the VMM of Android's and
  ChromeOS's VMs, named so since 2017), kvmtool ``kvm-vcpu-n``, Firecracker ``fc_vcpu n``,
  Cloud Hypervisor ``vcpun``;
* ``kvm-events``: any other thread that logs ``kvm_entry``/``kvm_exit`` (arm64 events carry
  no vCPU id, so the index stays unknown).

Threads are grouped into VMs by process: the TGID when the capture has it, else the thread
that forked them (``sched_process_fork``), else one VM per VMM kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from importers.capture import Capture
from importers.errors import UsageError
from importers.host.vmm_threads import VMM_THREAD_NAMES
from importers.ranges import bounds, out_of_range, parse_text
from importers.schema import conform
from importers.skips import SkipLog


@dataclass(frozen=True)
class VcpuSpec:
    """One ``--vcpu TID=VM:INDEX`` option."""

    tid: int
    vm: str
    index: int | None


def parse_vcpu_specs(specs: list[str]) -> list[VcpuSpec]:
    """Parse ``--vcpu`` options: ``4242=vm0:0``, ``4243=vm0:1``, ``77=web`` (index unknown)."""
    out = []
    for spec in specs:
        m = re.fullmatch(r"\s*(\d+)\s*=\s*([^:\s][^:]*?)\s*(?::\s*(\d+))?\s*", spec)
        if not m:
            raise UsageError(
                f"--vcpu {spec!r}: write TID=VM:INDEX, e.g. --vcpu 4242=vm0:0 (the host thread id "
                "that runs vCPU 0 of vm0)"
            )
        tid, index = int(m.group(1)), int(m.group(3)) if m.group(3) else None
        lo, hi = bounds(pl.Int32())
        if not all(lo <= n <= hi for n in (tid, index) if n is not None):
            raise UsageError(f"--vcpu {spec!r}: thread ids and vCPU indexes go up to {hi}")
        out.append(VcpuSpec(tid, m.group(2), index))
    tids = [s.tid for s in out]
    if len(set(tids)) != len(tids):
        raise UsageError("--vcpu names the same thread id twice")
    return out


def discover_vcpus(capture: Capture, explicit: list[VcpuSpec] | None = None) -> pa.Table:
    """The ``vcpus`` table of a capture (see module docstring for the methods)."""
    tasks = capture.frame("tasks")
    names = tasks.group_by("pid").agg(
        pl.col("comm").sort_by("last_ts").last(), pl.col("tgid").max()
    )
    if explicit:
        rows = pl.DataFrame(
            {
                "tid": [s.tid for s in explicit],
                "vm": [s.vm for s in explicit],
                "vcpu_index": [s.index for s in explicit],
            },
            schema={"tid": pl.Int32, "vm": pl.Utf8, "vcpu_index": pl.Int32},
        ).with_columns(pl.lit("explicit").alias("method"))
        rows = rows.join(
            names.rename({"pid": "tid", "tgid": "vm_pid"}), on="tid", how="left"
        ).with_columns(pl.col("comm").cast(pl.Utf8))
        return _table(rows)

    found: list[pl.DataFrame] = []
    entry = capture.frame("kvm_entry")
    found.append(
        entry.filter(pl.col("vcpu_id").is_not_null())
        .group_by(pl.col("common_pid").alias("tid"))
        .agg(pl.col("vcpu_id").first().alias("vcpu_index"))
        .with_columns(pl.lit("x86-vcpu-id").alias("method"))
    )
    named = _vmm_names(tasks, capture)
    found.append(named.drop("vmm").with_columns(pl.lit("thread-name").alias("method")))
    kvm_threads = pl.concat(
        [
            capture.frame(t).select(pl.col("common_pid").alias("tid"))
            for t in ("kvm_entry", "kvm_exit")
        ]
    ).unique(maintain_order=True)
    found.append(
        kvm_threads.with_columns(
            pl.lit(None, pl.Int32).alias("vcpu_index"), pl.lit("kvm-events").alias("method")
        )
    )
    rows = (
        pl.concat(
            [
                f.with_columns(pl.col("tid").cast(pl.Int32), pl.col("vcpu_index").cast(pl.Int32))
                for f in found
            ]
        )
        .unique("tid", keep="first", maintain_order=True)
        # whatever found the thread, a VMM thread name says which VMM it belongs to
        .join(named.select("tid", "vmm"), on="tid", how="left")
        .join(names.rename({"pid": "tid", "tgid": "vm_pid"}), on="tid", how="left")
        .with_columns(pl.col("comm").cast(pl.Utf8))
    )
    if rows.is_empty():
        return _table(rows.with_columns(pl.lit(None, pl.Utf8).alias("vm")))
    return _table(_group_into_vms(rows, capture.frame("sched_process_fork")))


#: skip reason of a VMM-style thread name whose index no vCPU can have
HUGE_INDEX = out_of_range("vCPU index in a thread name", pl.Int32(), "not taken as a vCPU")


def _vmm_names(tasks: pl.DataFrame, capture: Capture) -> pl.DataFrame:
    """``tid, vcpu_index, vmm`` of every thread ever named like a VMM's vCPU thread.

    A name whose index does not fit ``vcpu_index`` names no vCPU; it is counted in the
    capture's skips (with the thread and name), not read as a wrapped or unknown index.
    """
    comms = tasks.select(pl.col("pid").cast(pl.Int32).alias("tid"), pl.col("comm").cast(pl.Utf8))
    parts = []
    for vmm, pattern in VMM_THREAD_NAMES:
        index, bad = parse_text(pl.col("comm").str.extract(pattern, 1), pl.Int32())
        parts.append(
            comms.filter(pl.col("comm").str.contains(pattern)).select(
                "tid", "comm", index.alias("vcpu_index"), pl.lit(vmm).alias("vmm"), bad.alias("bad")
            )
        )
    named = pl.concat(parts)
    huge = named.filter("bad").unique("tid", maintain_order=True)
    if huge.height:
        log = SkipLog(capture.metadata.source_path)
        log.add(HUGE_INDEX, [f"thread {t} {c!r}" for t, c in huge.select("tid", "comm").rows()])
        capture.metadata.skipped.update(log.to_json())
    return (
        named.filter(~pl.col("bad"))
        .drop("comm", "bad")
        .unique("tid", keep="first", maintain_order=True)
    )


def _group_into_vms(rows: pl.DataFrame, forks: pl.DataFrame) -> pl.DataFrame:
    """Name each vCPU's VM ``<vmm>:<tgid>``, ``<vmm>:<forking tid>`` or ``<vmm>``, where the VMM
    is known from the thread-name pattern, else the thread's own name stands in for it."""
    parents = forks.select(
        pl.col("child_pid").cast(pl.Int32).alias("tid"),
        pl.col("parent_pid").cast(pl.Int32).alias("parent"),
    ).unique("tid", keep="first")
    rows = rows.join(parents, on="tid", how="left")
    vmm = pl.coalesce(pl.col("vmm"), pl.col("comm"), pl.lit("vm"))
    return rows.with_columns(
        pl.when(pl.col("vm_pid").is_not_null())
        .then(pl.format("{}:{}", vmm, pl.col("vm_pid")))
        .when(pl.col("parent").is_not_null())
        .then(pl.format("{}:{}", vmm, pl.col("parent")))
        .otherwise(vmm)
        .alias("vm"),
        pl.coalesce(pl.col("vm_pid"), pl.col("parent")).alias("vm_pid"),
    )


def _table(rows: pl.DataFrame) -> pa.Table:
    cols = ["tid", "vm", "vm_pid", "vcpu_index", "comm", "method"]
    return conform("vcpus", rows.select(c for c in cols if c in rows.columns).to_arrow())
