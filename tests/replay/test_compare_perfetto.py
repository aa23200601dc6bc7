"""`pmu-replay compare` on a Perfetto trace of a three-cluster phone (Pixel 6a: CPUs 0-3,
4-5 and 6-7), with stand-in vCPUs: the default mode's stalled time is the threads' time on
CPUs outside the cluster of the CPU that initialised them, computed here from the
sched_switch table alone."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from importers.detect import load
from replay.cli import main

TRACE = "perfetto-pixel6a-startup/api32_startup_warm.perfetto-trace"
#: busy threads that run on every cluster, standing in for vCPUs
VCPUS = {84: 0, 7547: 1, 11234: 2}
CLUSTERS = ({0, 1, 2, 3}, {4, 5}, {6, 7})
PMUS = ["--pmu", "armv8_cortex_a55=0-3", "--pmu", "armv8_cortex_a76=4-5",
        "--pmu", "armv8_cortex_x1=6-7"]  # fmt: skip


def time_per_cpu(trace: Path) -> pl.DataFrame:
    """``tid, cpu, ns``: each switch runs its next task until the CPU's next switch (the last
    to the end of the capture); before a CPU's first switch, its previous task ran from the
    start of the capture."""
    cap = load(trace)
    first, last = cap.metadata.first_ts, cap.metadata.last_ts
    sw = cap.frame("sched_switch").sort("cpu", "ts", "seq")
    after = sw.select(
        pl.col("next_pid").alias("tid"),
        "cpu",
        (pl.col("ts").shift(-1).over("cpu").fill_null(last) - pl.col("ts")).alias("ns"),
    )
    before = (
        sw.group_by("cpu")
        .first()
        .select(pl.col("prev_pid").alias("tid"), "cpu", (pl.col("ts") - first).alias("ns"))
    )
    return pl.concat([after, before]).group_by("tid", "cpu").agg(pl.col("ns").sum())


@pytest.mark.slow
@pytest.mark.parametrize("topology", ["inferred", "pmu"])
def test_default_mode_stalls_for_the_time_on_foreign_clusters(
    shared_traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], topology: str
) -> None:
    trace = shared_traces / TRACE
    vcpus = [a for tid, k in VCPUS.items() for a in ("--vcpu", f"{tid}=standin:{k}")]
    args = ["compare", str(trace), *vcpus, "-o", str(tmp_path / "out"), "--json"]
    assert main(args + (PMUS if topology == "pmu" else [])) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    inferred = any("inferred from cpu_frequency" in n for n in notes)
    assert inferred == (topology == "inferred")
    summary = pl.read_parquet(tmp_path / "out" / "summary.parquet")
    spent = time_per_cpu(trace).filter(pl.col("tid").is_in(list(VCPUS)))
    for first_cpu in (0, 4, 6):
        home = next(c for c in CLUSTERS if first_cpu in c)
        mine = summary.filter(pl.col("scenario") == f"default@cpu{first_cpu}").sort("vcpu")
        expected = (
            spent.filter(~pl.col("cpu").is_in(list(home)))
            .group_by("tid")
            .agg(pl.col("ns").sum())
            .sort("tid")
        )
        assert mine["stalled_ns"].to_list() == expected["ns"].to_list(), first_cpu
        assert mine["unknown_ns"].to_list() == [0, 0, 0]
    total = spent.group_by("tid").agg(pl.col("ns").sum()).sort("tid")["ns"].to_list()
    assert (
        summary.filter(pl.col("scenario") == "default@cpu0").sort("vcpu")["guest_ns"].to_list()
        == total
    )
