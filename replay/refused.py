"""Guest entries the capture's kernel refused: attempts without a guest window.

Linux 6.12 ``arch/arm64/kvm/arm.c`` ``kvm_arch_vcpu_ioctl_run()`` checks, in every pass of its
run loop, ``kvm_vcpu_exit_request()`` *before* ``trace_kvm_entry()``. On a pCPU outside
``kvm->arch.supported_cpus`` (``kvm_arch_vcpu_load()`` set ``vcpu_set_on_unsupported_cpu()``)
that check writes ``run->exit_reason = KVM_EXIT_FAIL_ENTRY`` (``hardware_entry_failure_reason
= KVM_EXIT_FAIL_ENTRY_CPU_UNSUPPORTED``, ``fail_entry.cpu = smp_processor_id()``), sets the
return value to 0 and leaves the loop: KVM_RUN returns, and ``kvm_vcpu_ioctl()``
(``virt/kvm/kvm_main.c``) traces ``kvm_userspace_exit`` with that reason and ``errno`` 0. A
refused entry therefore leaves no ``kvm_entry``/``kvm_exit`` pair, only that record, so the
guest windows of :mod:`replay.timeline` cannot show it. This module finds them:
``kvm_userspace_exit`` rows of a vCPU thread whose raw ``reason`` is ``KVM_EXIT_FAIL_ENTRY`` (9)
and whose ``errno`` is 0 (or not recorded: Perfetto's event has the reason only).

Two other paths of 6.12 return ``KVM_EXIT_FAIL_ENTRY`` after the guest ran (``handle_exit()``,
``arch/arm64/kvm/handle_exit.c``): ``ARM_EXCEPTION_IL`` returns -EINVAL (``errno`` -22, which
the text printer shows as ``error (22)`` without the reason) and ``ARM_EXCEPTION_HYP_GONE``
returns 0. Both follow their own ``kvm_exit``, as does every x86 ``KVM_EXIT_FAIL_ENTRY`` (a
failed VM entry is reported at the exit): a failure whose thread's previous kvm record is a
``kvm_exit`` of type ``HYP_GONE`` or of an x86 kernel is not a refusal, and is left out.

Each refusal is an entry *attempt* of the vCPU on the record's CPU at the record's time (the
refusal itself came shortly before, on the CPU the vCPU was loaded on; the record is traced
after ``kvm_arch_vcpu_put()``, so a migration between the two would put it on the next CPU:
the timeline then shows the thread switched in there first). An attempt is placed in the
thread's timeline: it must fall in a ``host`` piece (the thread on that CPU outside guest
mode) on its own CPU; the piece gives its residency (its ``vcpu_load``). Attempts that fall in
unknown time, or where the timeline does not show the thread on that CPU (records lost), are
left out, and a note counts them: their time is already unknown, or the records contradict.

For a scenario whose kernel would let the attempt enter, ``until`` closes the stretch whose
guest time the capture cannot show (:mod:`replay.paths`): the real kernel sent the thread back
to the VMM, so what follows in the capture (the VMM retrying, sleeping, being moved) is not
what the guest would have done. It ends at the vCPU's next entry attempt the capture shows
(the next refusal or ``kvm_entry``), at its next unknown piece, or at the end of the capture.
``off_cpu_ns`` is the part of that stretch the thread spent on no CPU in the capture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from replay.pmu.uapi import KVM_EXIT_FAIL_ENTRY

if TYPE_CHECKING:
    from importers.capture import Capture

#: Observation ``reason`` of the unknown stretch after a refused entry that a scenario's
#: kernel would have let in.
UNSEEN_GUEST = "refused_in_capture"
#: Columns of the attempts table, in order, with their types.
ATTEMPT_SCHEMA: dict[str, pl.DataType] = {
    "tid": pl.Int32(),
    "residency": pl.UInt32(),
    "cpu": pl.Int16(),
    "ts": pl.Int64(),
    "until": pl.Int64(),
    "off_cpu_ns": pl.Int64(),
}


def refused_entries(capture: Capture, tids: list[int]) -> pl.DataFrame:
    """``tid, ts, seq, cpu`` of every refused entry of the threads ``tids`` (module
    docstring), in thread and time order."""
    exits = capture.frame("kvm_userspace_exit").filter(pl.col("common_pid").is_in(tids))
    if exits.is_empty():
        return pl.DataFrame(
            schema={"tid": pl.Int32, "ts": pl.Int64, "seq": pl.Int64, "cpu": pl.Int16}
        )
    key: list[pl.Expr | str] = [
        pl.col("common_pid").cast(pl.Int32).alias("tid"),
        "ts",
        "seq",
        pl.col("cpu").cast(pl.Int16),
    ]
    failed = (pl.col("reason") == KVM_EXIT_FAIL_ENTRY) & (pl.col("errno").fill_null(0) == 0)
    kvm_exit = capture.frame("kvm_exit").filter(pl.col("common_pid").is_in(tids))
    # a kvm_exit after which KVM_RUN itself reports the failure (HYP_GONE; any x86 exit)
    reports = (pl.col("isa").cast(pl.Utf8) == "x86") | (
        pl.col("ret_name").cast(pl.Utf8) == "HYP_GONE"
    )
    records = pl.concat(
        [
            exits.select(
                *key, failed.fill_null(False).alias("failed"), pl.lit(False).alias("reported")
            ),
            kvm_exit.select(
                *key, pl.lit(False).alias("failed"), reports.fill_null(False).alias("reported")
            ),
            capture.frame("kvm_entry")
            .filter(pl.col("common_pid").is_in(tids))
            .select(*key, pl.lit(False).alias("failed"), pl.lit(False).alias("reported")),
        ]
    ).sort("tid", "seq")
    after_report = pl.col("reported").shift(1).over("tid").fill_null(False)
    return (
        records.filter(pl.col("failed") & ~after_report)
        .select("tid", "ts", "seq", "cpu")
        .sort("tid", "ts", "seq")
    )


def place_attempts(
    refused: pl.DataFrame, pieces: pl.DataFrame, t1: int, notes: list[str]
) -> pl.DataFrame:
    """Refused entries placed in the threads' ``pieces`` (:data:`ATTEMPT_SCHEMA`, thread and
    time order); a note counts those left out (module docstring).

    ``pieces`` are the timeline's (``tid, residency, cpu, start, end, state``), in thread and
    time order and not overlapping; ``t1`` is the end of the capture.
    """
    if refused.is_empty():
        return pl.DataFrame(schema=ATTEMPT_SCHEMA)
    probe = refused.sort("ts")
    cols = ["tid", "residency", "start", "end", "state", pl.col("cpu").alias("piece_cpu")]
    ordered = pieces.select(cols).sort("start")

    def piece_at(exact: bool) -> pl.DataFrame:
        """The thread's piece that began last before ``ts`` (or at it, when ``exact``)."""
        return probe.join_asof(
            ordered,
            left_on="ts",
            right_on="start",
            by="tid",
            strategy="backward",
            allow_exact_matches=exact,
            check_sortedness=False,
        )

    within = (
        (pl.col("state") == "host")
        & (pl.col("piece_cpu") == pl.col("cpu"))
        & (pl.col("ts") <= pl.col("end"))
    ).fill_null(False)
    # A piece that begins at ts began after the attempt when the attempt's record came first
    # in that timestamp (same microsecond in a text capture): the earlier piece is tried first.
    before = piece_at(exact=False).with_columns(within.alias("ok"))
    at = piece_at(exact=True).with_columns(within.alias("ok"))
    placed = pl.concat([before.filter("ok"), at.filter(~before["ok"] & at["ok"])]).sort(
        "tid", "ts", "seq"
    )
    if placed.height:
        cpus = placed["cpu"].unique().sort().to_list()
        notes.append(
            f"{placed.height} guest entries the capture's kernel refused (kvm_userspace_exit "
            f"KVM_EXIT_FAIL_ENTRY, no kvm_entry) on CPUs {cpus}: each is an entry attempt "
            "under every scenario"
        )
    if left_out := refused.height - placed.height:
        notes.append(
            f"{left_out} of {refused.height} refused entries (KVM_EXIT_FAIL_ENTRY) fall in "
            "unknown time or where the capture does not show their thread on that CPU: left out"
        )
    return _until(placed, pieces, t1)


def _until(placed: pl.DataFrame, pieces: pl.DataFrame, t1: int) -> pl.DataFrame:
    """Close each attempt's stretch (module docstring) and measure its time off CPUs."""
    stops = (
        pieces.filter(pl.col("state") != "host")
        .select("tid", pl.col("start").alias("stop"))
        .sort("stop")
    )
    next_attempt = pl.col("ts").shift(-1).over("tid")
    with_stop = placed.sort("ts").join_asof(
        stops, left_on="ts", right_on="stop", by="tid", strategy="forward", check_sortedness=False
    )
    until = pl.min_horizontal(next_attempt, pl.col("stop"), pl.lit(t1, pl.Int64))
    spans = with_stop.sort("tid", "ts", "seq").with_columns(until.alias("until"))
    on_cpu = _covered(pieces, spans, "until") - _covered(pieces, spans, "ts")
    return spans.with_columns((pl.col("until") - pl.col("ts") - on_cpu).alias("off_cpu_ns")).select(
        pl.col(c).cast(t) for c, t in ATTEMPT_SCHEMA.items()
    )


def _covered(pieces: pl.DataFrame, spans: pl.DataFrame, column: str) -> pl.Series:
    """Per row of ``spans``, the thread's time in pieces before ``column``'s time."""
    runs = pieces.select("tid", "start", "end").sort("tid", "start")
    length = pl.col("end") - pl.col("start")
    runs = runs.with_columns((length.cum_sum().over("tid") - length).alias("before"))
    found = (
        spans.with_row_index("row")
        .select("row", "tid", pl.col(column).alias("t"))
        .sort("t")
        .join_asof(
            runs.sort("start"),
            left_on="t",
            right_on="start",
            by="tid",
            strategy="backward",
            check_sortedness=False,
        )
        .sort("row")
    )
    within = pl.min_horizontal("end", "t") - pl.col("start")
    return found.select((pl.col("before") + within).fill_null(0).alias("covered"))["covered"]
