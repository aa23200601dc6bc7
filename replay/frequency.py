"""Per-CPU cycle clocks: how many cycles a core ran between two instants.

``cpu_frequency`` events (power.h; ``state`` in kHz, ``cpu_id`` the CPU it applies to) make the
frequency of each CPU piecewise constant. Before a CPU's first event, and on CPUs without
events, the topology's highest frequency stands in (for an inferred topology, the highest the
capture showed), and failing that a nominal 1 GHz; all are reported, since cycle counts then
rest on an assumption.

Cycles are integers from a cumulative clock ``C(cpu, t)`` (floor of the integral of the
frequency), so the cycles of adjacent intervals add up exactly to those of their union and
every consumer (reference engine, vectorized engine, summaries) sees identical numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from importers.host.topology import Topology

NOMINAL_KHZ = 1_000_000
_NS_PER_MS = 1_000_000  # kHz x ns / 1e6 = cycles


@dataclass
class FrequencyClock:
    """Cumulative cycle clock per CPU.

    ``steps`` has one row per frequency step: ``cpu, ts, khz, base, assumed`` where ``base``
    is ``C(cpu, ts)`` and ``assumed`` marks a frequency no event measured (a CPU's first step,
    when the capture has no ``cpu_frequency`` event before its start). ``notes`` explain them.
    """

    steps: pl.DataFrame
    notes: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls, cpu_frequency: pl.DataFrame, cpus: list[int], topology: Topology | None, t0: int
    ) -> FrequencyClock:
        """Steps for ``cpus`` from ``cpu_frequency`` events, starting at time ``t0``."""
        notes: list[str] = []
        events = (
            cpu_frequency.select(
                pl.col("cpu_id").cast(pl.Int16).alias("cpu"),
                pl.col("ts").cast(pl.Int64),
                pl.col("seq"),
                pl.col("state").cast(pl.Int64).alias("khz"),
            )
            .filter(pl.col("cpu").is_in(cpus))
            .sort("cpu", "ts", "seq")
            .unique(["cpu", "ts"], keep="last", maintain_order=True)
            .drop("seq")
        )
        # the frequency in force at t0: the last event at or before it, else an assumption
        at_start = events.filter(pl.col("ts") <= t0).group_by("cpu").agg(pl.col("khz").last())
        known = dict(zip(at_start["cpu"].to_list(), at_start["khz"].to_list(), strict=True))
        starts = []
        fallback_cpus: dict[str, list[int]] = {}
        for cpu in cpus:
            khz = known.get(cpu)
            if khz is None:
                top = topology.max_freq_khz(cpu) if topology else None
                khz = top or NOMINAL_KHZ
                label = f"{khz} kHz ({_source(topology)})" if top else f"{khz} kHz (nominal)"
                fallback_cpus.setdefault(label, []).append(cpu)
            starts.append({"cpu": cpu, "ts": t0, "khz": khz, "assumed": cpu not in known})
        for label, group in fallback_cpus.items():
            notes.append(f"CPUs {group}: no cpu_frequency event at the start; assumed {label}")
        measured = events.filter(pl.col("ts") > t0).with_columns(assumed=pl.lit(False))
        steps = (
            pl.concat([pl.DataFrame(starts, schema=measured.schema), measured])
            .sort("cpu", "ts")
            .with_columns(
                _cycles(pl.col("khz"), pl.col("ts").shift(-1).over("cpu") - pl.col("ts"))
                .fill_null(0)
                .alias("span")
            )
            .with_columns((pl.col("span").cum_sum().over("cpu") - pl.col("span")).alias("base"))
        )
        return cls(steps.select("cpu", "ts", "khz", "base", "assumed"), notes)

    def cycles(self, frame: pl.DataFrame, start: str = "start", end: str = "end") -> pl.Series:
        """Cycles run on ``frame["cpu"]`` between ``start`` and ``end`` (int64, per row)."""
        return (self.at(frame, end) - self.at(frame, start)).alias("cycles")

    def at(self, frame: pl.DataFrame, column: str) -> pl.Series:
        """``C(cpu, t)`` for the rows of ``frame`` (columns ``cpu`` and ``column``)."""
        probe = frame.select(pl.col("cpu").cast(pl.Int16), pl.col(column).alias("t"))
        probe = probe.with_row_index("row").sort("t")
        steps = self.steps.select(
            "cpu", pl.col("ts").alias("t"), pl.col("ts").alias("step"), "khz", "base"
        )
        found = probe.join_asof(
            steps, on="t", by="cpu", strategy="backward", check_sortedness=False
        )
        value = pl.col("base") + _cycles(pl.col("khz"), pl.col("t") - pl.col("step"))
        values = found.select(value.fill_null(0)).to_series().to_numpy()
        # back to the frame's row order: a scatter, cheaper than sorting by row again
        ordered = np.empty(len(values), dtype=np.int64)
        ordered[found["row"].to_numpy()] = values
        return pl.Series("c", ordered)


def _source(topology: Topology | None) -> str:
    """Where a stand-in frequency comes from: an inferred topology only knows the highest
    frequency the capture showed, not the cluster's maximum."""
    if topology is not None and topology.inferred:
        return "highest frequency seen in the capture"
    return "topology maximum"


def _cycles(khz: pl.Expr, dt_ns: pl.Expr) -> pl.Expr:
    # kHz x ns / 1e6 without overflowing int64 on long spans: split dt into ms and the rest.
    return khz * (dt_ns // _NS_PER_MS) + (khz * (dt_ns % _NS_PER_MS)) // _NS_PER_MS
