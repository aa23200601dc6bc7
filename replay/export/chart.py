"""What every chart of the HTML report shares: the tables it reads and the :class:`Chart` it gives.

:class:`ReportFrame` is read once from :class:`~replay.results.Results` (a results directory):
the tables, the scenarios in the order the report lists them (ranking order when the results
are ranked), one palette slot per scenario so a scenario has the same colour in every chart and
table, the host PMU (cluster) of every CPU, and the time unit: seconds only when the capture's
clock converts to nanoseconds (``DESIGN.md``, "What a verdict must say"), clock units otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from replay.export.svg import SERIES
from replay.host_report import host_clusters
from replay.results import Results


@dataclass(frozen=True)
class Chart:
    """One drawn chart: its HTML id, heading, caption and inline ``<svg>`` element."""

    key: str
    title: str
    caption: str
    svg: str


@dataclass(frozen=True)
class TimeUnit:
    """How raw timestamps are shown: divide by ``scale`` and label with ``unit``."""

    scale: float
    unit: str


@dataclass
class ReportFrame:
    """The tables and settings the charts and sections of one report read."""

    summary: pl.DataFrame
    findings: pl.DataFrame
    pieces: pl.DataFrame
    observations: pl.DataFrame
    scenarios: list[str]
    colour: dict[str, int]
    clusters: dict[str, list[int]]
    primary: int
    start: int
    end: int
    long: TimeUnit
    short: TimeUnit

    @classmethod
    def of(cls, results: Results) -> ReportFrame:
        meta = results.meta
        listed = [s["name"] for s in meta.get("scenarios", [])]
        ranked = [r["scenario"] for r in meta.get("ranking") or []]
        order = [*ranked, *(s for s in listed if s not in ranked)]
        in_summary = results.summary["scenario"].unique().sort().to_list()
        order += [s for s in in_summary if s not in order]
        # palette slots follow the replay's own scenario order, so colours do not move when
        # the ranking changes between two captures of the same matrix
        slots = list(dict.fromkeys([*listed, *sorted(order)]))
        colour = {s: slots.index(s) % len(SERIES) for s in order}
        ns = (meta.get("capture") or {}).get("ts_unit", "ns") == "ns"
        return cls(
            summary=results.summary,
            findings=results.findings,
            pieces=results.pieces,
            observations=results.observations,
            scenarios=order,
            colour=colour,
            clusters=host_clusters(meta),
            primary=int(meta.get("primary_counter", 31)),
            start=_bound(meta.get("start"), results.pieces["start"].min()),
            end=_bound(meta.get("end"), results.pieces["end"].max()),
            long=TimeUnit(1e9, "s") if ns else TimeUnit(1.0, "clock units"),
            short=TimeUnit(1e6, "ms") if ns else TimeUnit(1.0, "clock units"),
        )


def _bound(stated: Any, seen: Any) -> int:
    """A time bound from replay.json, else from the tables (0 when both are empty)."""
    value = stated if stated is not None else seen
    return int(value) if isinstance(value, int) else 0
