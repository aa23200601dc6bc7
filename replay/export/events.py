"""Replay tables -> TrackEvent batches (slices, instants, counter samples), all with polars.

Each function takes the rows of some vCPUs (or CPUs) and a frame mapping their keys to track
uuids, and returns :class:`~replay.export.packets.Batch` es; nothing loops over rows in Python.
A slice whose end equals its start becomes an instant, so every row of the replay tables shows
up as exactly one slice (the trace processor stores instants as slices of duration 0).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from replay.export.packets import Batch, Kind

VCPU_KEY = ["vm", "vcpu"]
COUNTER_KEY = ["scenario", "vm", "vcpu", "counter"]


def slices(
    frame: pl.DataFrame, int_args: tuple[str, ...] = (), str_args: tuple[str, ...] = ()
) -> list[Batch]:
    """BEGIN/END batches for ``frame`` (``start, end, uuid, depth, name`` + args), and
    INSTANT for its zero-length rows."""
    spans = frame.filter(pl.col("end") > pl.col("start"))
    points = frame.filter(pl.col("end") <= pl.col("start"))
    keep = ["uuid", "depth", "name", *int_args, *str_args]
    return [
        Batch(Kind.BEGIN, spans.select(pl.col("start").alias("ts"), *keep), int_args, str_args),
        Batch(Kind.END, spans.select(pl.col("end").alias("ts"), "uuid", "depth")),
        Batch(Kind.INSTANT, points.select(pl.col("start").alias("ts"), *keep), int_args, str_args),
    ]


def placement(pieces: pl.DataFrame, threads: pl.DataFrame, pmus: pl.DataFrame) -> list[Batch]:
    """Where each vCPU ran: one slice per residency (``CPU 2 · armv8_cortex_a72``, args
    ``cpu``/``host_pmu``) holding one slice per stretch of ``guest``, ``host`` or ``unknown``
    time (args ``cycles`` executed in guest mode, ``cause`` of unknown time).

    ``threads`` maps ``vm, tid`` to ``uuid``; ``pmus`` maps ``cpu`` to ``host_pmu``.
    """
    p = pieces.sort("tid", "start", "end").join(threads, on=["vm", "tid"], how="left")

    def changed(*cols: str) -> pl.Expr:
        return pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in cols)

    # Runs of pieces, not the raw ``residency`` value, so a slice never spans foreign pieces.
    # Unknown time inside a residency may have no CPU; it stays in its residency.
    p = p.with_columns(
        changed("tid", "residency").fill_null(True).cum_sum().alias("_res"),
    ).with_columns(
        (changed("_res", "state", "window", "cause") | pl.col("start").ne(pl.col("end").shift(1)))
        .fill_null(True)
        .cum_sum()
        .alias("_run"),
    )
    first, last = _run_ends("_res")
    residencies = (
        pl.concat(
            [
                p.filter(first).select("uuid", "start", pl.col("cpu").alias("_first_cpu")),
                p.filter(last).select("end", pl.col("cpu").alias("_last_cpu")),
            ],
            how="horizontal",
        )
        # A residency's CPU is that of its pieces; unknown time at either end may lack it.
        .with_columns(pl.coalesce("_first_cpu", "_last_cpu").alias("cpu"))
        .join(pmus, on="cpu", how="left", maintain_order="left")
        .with_columns(
            pl.lit(0).alias("depth"),
            pl.when(pl.col("cpu").is_null())
            .then(pl.lit("CPU ?"))
            .otherwise(pl.format("CPU {} · {}", "cpu", pl.col("host_pmu").fill_null("no PMU")))
            .alias("name"),
        )
    )
    first, last = _run_ends("_run")
    # guest cycles of a stretch: the difference of the running sum over its pieces
    p = p.with_columns(pl.col("cycles").fill_null(0).cum_sum().alias("_cycles"))
    stretches = pl.concat(
        [
            p.filter(first).select(
                "uuid",
                pl.col("state").alias("name"),
                "start",
                "cause",
                (pl.col("_cycles") - pl.col("cycles").fill_null(0)).alias("_before"),
            ),
            p.filter(last).select("end", pl.col("_cycles").alias("_after")),
        ],
        how="horizontal",
    ).with_columns(
        pl.lit(1).alias("depth"),
        pl.when(pl.col("name") == "guest")
        .then(pl.col("_after") - pl.col("_before"))
        .alias("cycles"),
    )
    return [
        *slices(residencies, ("cpu",), ("host_pmu",)),
        *slices(stretches, ("cycles",), ("cause",)),
    ]


def _run_ends(run: str) -> tuple[pl.Expr, pl.Expr]:
    """Masks of the first and the last row of each run of equal ``run`` values (rows sorted)."""
    col = pl.col(run)
    return col.ne(col.shift(1)).fill_null(True), col.ne(col.shift(-1)).fill_null(True)


def counter_samples(observations: pl.DataFrame, tracks: pl.DataFrame) -> Batch:
    """The guest-visible value of every counter, per scenario: a sample where each guest piece
    starts (the value before it) and ends (``value``), kept only where the value changes.

    Between pieces the value holds (guest counters do not count host time), so the step
    function through these samples is what the guest would read at any instant up to the
    resolution of the pieces. ``tracks`` maps ``scenario, vm, vcpu, counter`` to ``uuid``.
    """
    obs = (
        observations.filter(pl.col("value").is_not_null())
        .select(*COUNTER_KEY, "start", "end", "delta", "value")
        .join(tracks, on=COUNTER_KEY, how="left")
    )
    value, delta, uuid = pl.col("value"), pl.col("delta").cast(pl.UInt64), pl.col("uuid")
    # The value before the piece is ``value - delta`` modulo the counter width; only a 32-bit
    # event counter can wrap at the values a replay reaches (PMEVCNTR<n> without PMUv3p5).
    before = pl.when(value >= delta).then(value - delta).otherwise(value + (1 << 32) - delta)
    samples = (
        pl.concat(
            [
                obs.select(uuid, pl.col("end").alias("ts"), value),
                obs.select(uuid, pl.col("start").alias("ts"), before.alias("value")),
            ]
        )
        .sort("uuid", "ts", maintain_order=True)  # a piece's end before the next one's start
        .filter(uuid.ne(uuid.shift(1)).fill_null(True) | value.ne(value.shift(1)))
    )
    return Batch(Kind.COUNTER, samples)


def zero_deltas(
    ticks: pl.DataFrame, reads: pl.DataFrame, t0: int, tick_ns: int | None
) -> pl.DataFrame:
    """Where a guest would divide by a zero cycle delta: ``scenario, vm, vcpu, ts, name, tick,
    guest_ns`` of every risky tick and every traced zero-delta read.

    A risky tick is marked at its end, where the guest reads the counter (tick ``k`` spans
    ``t0 + k * tick_ns`` to ``t0 + (k + 1) * tick_ns``); a traced ``PMCCNTR_EL0`` read
    (``kvm_sys_access``, :mod:`replay.pmu_reads`) at its own time.
    """
    schema = {
        "scenario": pl.Utf8,
        "vm": pl.Utf8,
        "vcpu": pl.Int32,
        "ts": pl.Int64,
        "name": pl.Utf8,
        "tick": pl.Int64,
        "guest_ns": pl.Int64,
    }
    parts = [pl.DataFrame(schema=schema)]
    if tick_ns and ticks.width:
        parts.append(
            ticks.filter(pl.col("risky")).select(
                "scenario",
                "vm",
                "vcpu",
                (t0 + (pl.col("tick") + 1) * tick_ns).alias("ts"),
                pl.lit("risky tick").alias("name"),
                "tick",
                "guest_ns",
            )
        )
    if reads.width:
        parts.append(
            reads.filter(pl.col("zero_delta")).select(
                "scenario",
                "vm",
                "vcpu",
                "ts",
                pl.lit("zero-delta read").alias("name"),
                pl.lit(None, pl.Int64).alias("tick"),
                "guest_ns",
            )
        )
    return pl.concat([p.cast(schema) for p in parts])  # type: ignore[arg-type]


def findings_events(
    findings: pl.DataFrame, zero: pl.DataFrame, tracks: pl.DataFrame, primary: int
) -> list[Batch]:
    """Stall episodes and unknown time as slices; fail-entries, perf-event re-creations and
    zero deltas (:func:`zero_deltas`) as instants.

    Stalls and re-creations go on the track of their counter, everything per-vCPU on the
    track of the ``primary`` counter.
    """
    f = findings.with_columns(pl.col("counter").fill_null(primary).cast(pl.Int8)).join(
        tracks, on=COUNTER_KEY, how="left"
    )
    stalls = f.filter(pl.col("kind") == "stall").with_columns(
        pl.lit("stall").alias("name"), pl.lit(0).alias("depth")
    )
    unknown = f.filter(pl.col("kind") == "unknown").with_columns(
        pl.lit("unknown").alias("name"), pl.lit(0).alias("depth")
    )
    fails = f.filter(pl.col("kind") == "fail_entry").select(
        pl.col("start").alias("ts"),
        "uuid",
        pl.lit("fail-entry").alias("name"),
        "cpu",
        pl.col("duration").alias("guest_ns"),
        "cause",
    )
    recreated = f.filter(pl.col("kind") == "recreation").select(
        pl.col("start").alias("ts"),
        "uuid",
        pl.lit("perf event re-created").alias("name"),
        "cpu",
        "host_pmu",
        "cause",
    )
    zeros = zero.with_columns(pl.lit(primary, pl.Int8).alias("counter")).join(
        tracks, on=COUNTER_KEY, how="left"
    )
    return [
        *slices(
            stalls.rename({"duration": "stalled_ns"}),
            ("cpu", "stalled_ns"),
            ("host_pmu", "cause"),
        ),
        *slices(unknown, ("duration",), ("cause",)),
        Batch(Kind.INSTANT, fails, ("cpu", "guest_ns"), ("cause",)),
        Batch(Kind.INSTANT, recreated, ("cpu",), ("host_pmu", "cause")),
        Batch(
            Kind.INSTANT,
            zeros.select("ts", "uuid", "name", "tick", "guest_ns"),
            ("tick", "guest_ns"),
        ),
    ]


def frequency_samples(frequency: pl.DataFrame, tracks: pl.DataFrame) -> Batch:
    """Every CPU frequency step as a counter sample (kHz; the track's multiplier makes it Hz);
    ``tracks`` maps ``cpu`` to ``uuid``."""
    steps = frequency.sort("cpu", "ts").join(tracks, on="cpu", how="left")
    return Batch(Kind.COUNTER, steps.select("ts", "uuid", pl.col("khz").alias("value")))


def verdict_instant(verdict: dict[str, Any], ts: int, uuid: int) -> Batch:
    """The verdict (``replay.json``'s ``"verdict"``) as one instant on track ``uuid`` at ``ts``:
    named by its status and scenario, the rest in string args (reasons one per line)."""
    args = ("kernel", "mainline_fallback", "reasons", "text")
    row = {
        "ts": ts,
        "uuid": uuid,
        "name": f"{verdict['status']}: {verdict['scenario']}",
        **{a: verdict[a] for a in args if a != "reasons"},
        "reasons": "\n".join(verdict["reasons"]) or None,
    }
    schema = {"ts": pl.Int64, "uuid": pl.UInt64, **{k: pl.Utf8 for k in ("name", *args)}}
    return Batch(Kind.INSTANT, pl.DataFrame([row], schema=schema), (), args)
