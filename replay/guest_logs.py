"""The two logs a validation case holds the replay to: the guest's reads, the VMM's exits.

Their formats are :data:`replay.validate.FORMAT_HELP`'s; each reader checks the header and the
columns every row needs, and names the file and line of what it cannot use.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from importers.errors import CaptureFormatError
from replay.pmu.uapi import KVM_EXIT_FAIL_ENTRY


def _read_csv(path: Path, required: tuple[str, ...], types: dict[str, pl.DataType]) -> pl.DataFrame:
    try:
        header = pl.read_csv(path, n_rows=0).columns
        frame = pl.read_csv(path, schema_overrides={c: t for c, t in types.items() if c in header})
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise CaptureFormatError(f"{path}: not a readable CSV log ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CaptureFormatError(
            f"{path}:1: the header lacks {', '.join(missing)} (see validate --help)"
        )
    for column in ("ts", "vcpu"):
        if frame[column].null_count():
            line = int(frame.with_row_index().filter(pl.col(column).is_null())["index"][0]) + 2
            raise CaptureFormatError(f"{path}:{line}: no {column}")
    return frame


def read_guest_reads(path: Path) -> pl.DataFrame:
    """The read log: ``vm`` (null if absent), ``vcpu``, ``ts``, ``pmccntr`` (null: UNDEF)."""
    frame = _read_csv(
        path,
        ("ts", "vcpu", "pmccntr"),
        {"ts": pl.Int64(), "vcpu": pl.Int32(), "pmccntr": pl.UInt64(), "vm": pl.Utf8()},
    )
    if frame.is_empty():
        raise CaptureFormatError(f"{path}: no reads: nothing to validate")
    twice = frame.filter(
        pl.struct(["vcpu", "ts", *(["vm"] if "vm" in frame.columns else [])]).is_duplicated()
    )
    if twice.height:
        raise CaptureFormatError(
            f"{path}: vCPU {twice['vcpu'][0]} has two reads at ts {twice['ts'][0]}; reads of one "
            "vCPU need distinct times to be ordered"
        )
    vm = pl.col("vm") if "vm" in frame.columns else pl.lit(None, pl.Utf8).alias("vm")
    return frame.select(vm, "vcpu", "ts", "pmccntr")


def read_exit_log(path: Path) -> pl.DataFrame:
    """``vm`` (null if absent), ``vcpu``, ``ts``, ``failed`` and ``cpu`` of every return of
    ``KVM_RUN`` in an exit log; ``failed``: ``KVM_EXIT_FAIL_ENTRY``, on pCPU ``cpu``
    (``run->fail_entry.cpu``; null for other exits)."""
    frame = _read_csv(
        path,
        ("ts", "vcpu", "exit_reason", "fail_cpu"),
        {
            "ts": pl.Int64(),
            "vcpu": pl.Int32(),
            "exit_reason": pl.Int64(),
            "fail_cpu": pl.Int32(),
            "vm": pl.Utf8(),
        },
    )
    vm = pl.col("vm") if "vm" in frame.columns else pl.lit(None, pl.Utf8).alias("vm")
    failed = pl.col("exit_reason") == KVM_EXIT_FAIL_ENTRY
    if frame.filter(failed)["fail_cpu"].null_count():
        raise CaptureFormatError(f"{path}: a KVM_EXIT_FAIL_ENTRY row has no fail_cpu")
    return frame.select(
        vm,
        "vcpu",
        "ts",
        failed.fill_null(False).alias("failed"),
        pl.when(failed).then(pl.col("fail_cpu")).alias("cpu"),
    )


def with_tid(log: pl.DataFrame, threads: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The log with the host thread (``tid``) of each row's vCPU."""
    vms = threads["vm"].unique().sort().to_list()
    if log["vm"].null_count() and len(vms) != 1:
        raise CaptureFormatError(
            f"{path}: the capture has {len(vms)} VMs ({', '.join(vms)}); give a vm column"
        )
    named = log.with_columns(pl.col("vm").fill_null(vms[0]))
    joined = named.join(threads, on=["vm", "vcpu"], how="left", maintain_order="left")
    unknown = joined.filter(pl.col("tid").is_null()).select("vm", "vcpu").unique()
    if unknown.height:
        known = ", ".join(f"{r['vm']}:{r['vcpu']}" for r in threads.sort("vm", "vcpu").to_dicts())
        missing = ", ".join(f"{r['vm']}:{r['vcpu']}" for r in unknown.to_dicts())
        raise CaptureFormatError(
            f"{path}: vCPU {missing} is not a vCPU thread of the capture (known: {known}); "
            "name the threads with vcpus in the case file"
        )
    return joined
