"""Importer of a directory written by ``pmu-replay record`` (format ``pmu-replay-record/1``).

The trace inside (``trace.dat`` or tracefs ``trace.txt``) is imported by its own importer; the
snapshots recorded beside it then say what the trace cannot: which PMU covers each CPU
(``topology.json``), every thread's name and process (``threads.json``, added to ``tasks``), and
the vCPU threads KVM's debugfs named (``vcpus``, method ``kvm-debugfs``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from importers.capture import Capture
from importers.detect import RECORD_META as META
from importers.detect import ProgressFn, load
from importers.errors import CaptureFormatError, TopologyError
from importers.host.resolve import load_topology
from importers.schema import conform
from importers.tasks import name_spans

RECORD_FORMAT = "pmu-replay-record/1"


def read_record_dir(
    path: Path, *, fmt: str, strict: bool = False, progress: ProgressFn | None = None
) -> Capture:
    """Import a ``pmu-replay record`` directory (see module docstring)."""
    meta = _meta(path)
    trace = path / str(meta.get("trace", ""))
    if not trace.is_file():
        raise CaptureFormatError(f"{path}: {META} names trace {trace.name!r}, which is missing")
    capture = load(trace, strict=strict, progress=progress)
    if (path / "topology.json").is_file():
        try:
            capture.tables["topology"] = load_topology(path / "topology.json").to_table()
        except TopologyError as exc:  # e.g. a VM host without a CPU PMU: say so, keep going
            capture.metadata.extra.setdefault("notes", []).append(f"topology snapshot: {exc}")
    threads = _threads(path)
    if not threads.is_empty():
        end = capture.metadata.last_ts
        snap = threads.select(
            pl.col("tid").alias("pid"),
            pl.col("tgid"),
            pl.col("comm"),
            pl.lit(end, pl.Int64).alias("first_ts"),
            pl.lit(end, pl.Int64).alias("last_ts"),
            pl.lit("proc snapshot").alias("source"),
        )
        tasks = name_spans([capture.table("tasks"), snap])
        capture.tables["tasks"] = conform("tasks", tasks)
        kvm = (
            threads.filter(pl.col("kvm_vcpu").is_not_null())
            if "kvm_vcpu" in threads.columns
            else threads.clear()
        )
        if not kvm.is_empty():
            capture.tables["vcpus"] = conform(
                "vcpus",
                kvm.select(
                    "tid",
                    pl.format("vm:{}", "kvm_vm_pid").alias("vm"),
                    pl.col("kvm_vm_pid").alias("vm_pid"),
                    pl.col("kvm_vcpu").alias("vcpu_index"),
                    "comm",
                    pl.lit("kvm-debugfs").alias("method"),
                ).to_arrow(),
            )
    capture.metadata.source_path = str(path)
    capture.metadata.extra["record"] = {k: meta[k] for k in sorted(meta) if k != "format"}
    return capture


def _meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError) as exc:
        raise CaptureFormatError(f"{path / META}: unreadable ({exc})") from None
    if meta.get("format") != RECORD_FORMAT:
        raise CaptureFormatError(
            f"{path / META}: format {meta.get('format')!r}, expected {RECORD_FORMAT!r}"
        )
    return dict(meta)


def _threads(path: Path) -> pl.DataFrame:
    file = path / "threads.json"
    if not file.is_file():
        return pl.DataFrame()
    try:
        rows = json.loads(file.read_text())
        return pl.DataFrame(rows, infer_schema_length=None).with_columns(
            pl.col("tid", "tgid").cast(pl.Int32), pl.col("comm").cast(pl.Utf8)
        )
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise CaptureFormatError(f"{file}: unreadable thread snapshot ({exc})") from None
