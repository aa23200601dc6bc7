"""The replay's guest entries against the real kernel's, for ``pmu-replay validate``.

A validation case's capture shows two kinds of entry attempts, and the replay of the case's
scenario makes a prediction for each:

* **Guest windows** (``kvm_entry`` ... ``kvm_exit``): entries the kernel let run. The replay
  must not make them ``fail_entry`` observations.
* **Refused entries** (``kvm_userspace_exit`` with ``KVM_EXIT_FAIL_ENTRY`` and no
  ``kvm_entry``, :mod:`replay.refused`): the replay reports those its scenario refuses as
  ``fail_entry`` findings. The VMM's exit log is the ground truth: every ``KVM_EXIT_FAIL_ENTRY``
  it logged must be such a finding on the logged pCPU (``run->fail_entry.cpu``), and every such
  finding must be a logged ``KVM_EXIT_FAIL_ENTRY``. This holds the whole pipeline to the kernel
  (importer, timeline, engine path, detectors), not the model alone.

Pairing a finding with the log: each ``KVM_RUN`` return is traced by ``kvm_vcpu_ioctl()``
(``kvm_userspace_exit``, the finding's time) before the ioctl returns to the VMM, which then
logs it, and the VMM logs each return before its next ``KVM_RUN``. So a finding at ``t``
belongs to the vCPU's first logged return at or after ``t``; of several findings before one
return (a return missing from the log), the last one is its pair.

Both functions return ``vm, vcpu, tid, ts, cpu, observed, predicted``; ``observed`` is
``entered`` or ``failed`` (what the kernel did), or ``not_failed`` for a finding whose logged
return is no ``KVM_EXIT_FAIL_ENTRY`` on its pCPU; ``predicted`` is ``entered`` or ``failed``.
"""

from __future__ import annotations

import polars as pl

_COLUMNS = ("vm", "vcpu", "tid", "ts", "cpu", "observed", "predicted")


def entered_windows(
    obs: pl.DataFrame, attempts: pl.DataFrame, threads: pl.DataFrame
) -> pl.DataFrame:
    """Every guest window of the capture, an entry the kernel let run, and the replay's
    prediction (``obs``: its observations of one counter; ``attempts``:
    :attr:`replay.work.Work.attempts`, whose windows are not guest windows)."""
    return (
        obs.filter(
            pl.col("state").is_in(["guest", "fail_entry"])
            & ~pl.col("window").is_in(attempts["window"].implode())
        )
        .group_by(pl.col("vcpu").alias("tid"), "window")
        .agg(
            pl.col("start").min().alias("ts"),
            pl.col("cpu").first().cast(pl.Int32),
            (pl.col("state") == "fail_entry").any().alias("fails"),
        )
        .join(threads, on="tid")
        .with_columns(
            pl.lit("entered").alias("observed"),
            pl.when(pl.col("fails"))
            .then(pl.lit("failed"))
            .otherwise(pl.lit("entered"))
            .alias("predicted"),
        )
        .select(_COLUMNS)
    )


def failed_entries(
    findings: pl.DataFrame, attempts: pl.DataFrame, threads: pl.DataFrame, log: pl.DataFrame
) -> pl.DataFrame:
    """Every ``KVM_EXIT_FAIL_ENTRY`` of the exit log, and every ``fail_entry`` finding at an
    entry the capture's kernel refused that the log does not have (module docstring).

    ``findings`` are the replay's; ``log`` is :func:`replay.guest_logs.read_exit_log`'s, with
    the ``tid`` of each row's vCPU.
    """
    found = (
        findings.filter(pl.col("kind") == "fail_entry")
        .select(pl.col("vcpu").alias("tid"), pl.col("start").alias("ts"), pl.col("cpu"))
        .join(attempts.select("tid", pl.col("start").alias("ts")), on=["tid", "ts"], how="semi")
        .cast({"cpu": pl.Int32})
    )
    returns = log.select(
        "tid",
        pl.col("ts").alias("returned"),
        "failed",
        pl.col("cpu").alias("logged_cpu"),
    )
    paired = found.sort("ts").join_asof(
        returns.sort("returned"),
        left_on="ts",
        right_on="returned",
        by="tid",
        strategy="forward",
        check_sortedness=False,
    )
    same = (pl.col("failed") & (pl.col("logged_cpu") == pl.col("cpu"))).fill_null(False)
    matched = paired.filter(same).group_by("tid", "returned").agg(pl.col("ts").max())
    logged = log.filter("failed").join(
        matched.select("tid", pl.col("returned").alias("ts"), pl.lit(True).alias("paired")),
        on=["tid", "ts"],
        how="left",
    )
    unlogged = found.join(matched.select("tid", "ts"), on=["tid", "ts"], how="anti")
    failed = pl.lit("failed")
    return (
        pl.concat(
            [
                logged.select(
                    "tid",
                    "ts",
                    "cpu",
                    failed.alias("observed"),
                    pl.when(pl.col("paired").fill_null(False))
                    .then(failed)
                    .otherwise(pl.lit("entered"))
                    .alias("predicted"),
                ),
                unlogged.select(
                    "tid",
                    "ts",
                    "cpu",
                    pl.lit("not_failed").alias("observed"),
                    failed.alias("predicted"),
                ),
            ]
        )
        .join(threads, on="tid")
        .select(_COLUMNS)
    )
