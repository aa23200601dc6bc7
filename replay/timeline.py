"""Per-vCPU timelines: where each vCPU thread ran, when it was in guest mode, what is unknown.

From a capture's ``sched_switch`` (residency on CPUs), ``kvm_entry``/``kvm_exit`` of the vCPU
thread (guest mode; arm64 events carry no vCPU id, so they are matched by thread) and
``lost_events`` (gaps), every vCPU gets consecutive, non-overlapping *pieces*::

    vm, tid, vcpu_index, residency, cpu, start, end, state, cause

``state`` is ``guest`` (guest mode on ``cpu``), ``host`` (the thread runs on ``cpu`` outside
guest mode: KVM exit handling, the VMM) or ``unknown`` (lost events, truncated CPU data or
contradictory records: the outcome cannot be known, and is reported as such, never as "no
stall"). Time off any CPU is not a piece, unless a gap in some CPU's records may hide the
thread there (:mod:`replay.unseen`): then it is unknown, on that CPU, without a residency.
``residency`` numbers the stretches the thread spends on one CPU between a
switch-in and a switch-out (``vcpu_load`` ... ``vcpu_put``).

Guest entries the capture's kernel refused (``KVM_EXIT_FAIL_ENTRY`` before any ``kvm_entry``)
have no guest window; :mod:`replay.refused` finds them and places them in the pieces, as the
timeline's ``attempts``.

Everything is computed with vectorized forward fills over the merged, time-ordered boundary
events of all vCPU threads; nothing loops over events in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import polars as pl

from importers.capture import Capture
from importers.errors import MissingEventsError
from importers.host.topology import Topology
from replay.frequency import FrequencyClock
from replay.refused import ATTEMPT_SCHEMA, place_attempts, refused_entries
from replay.standins import stand_in_advice
from replay.unseen import LOST_CAUSE, TRUNCATED, TRUNCATED_CAUSE, gap_cause, off_cpu_unknown

# Boundary kinds (Int8), numbered in the order they apply at equal timestamps and seq. LEAD is
# the row each thread gets at the capture's start, carrying its state before its first record.
LEAD, IN, ENTRY, EXIT, OUT = -1, 0, 1, 2, 3
# piece states before they are named (filtering and merging on small integers is cheap)
_UNKNOWN, _GUEST, _HOST, _OFF = 0, 1, 2, 3
_STATE_NAMES = {_UNKNOWN: "unknown", _GUEST: "guest", _HOST: "host"}


@dataclass
class Timeline:
    """Pieces of every vCPU, the CPUs they ran on, the cycle clock of every CPU, the refused
    entry attempts (:mod:`replay.refused`: ``vm``, ``vcpu_index`` and
    :data:`~replay.refused.ATTEMPT_SCHEMA`), and what was assumed."""

    pieces: pl.DataFrame
    cpus: list[int]
    clock: FrequencyClock
    start: int
    end: int
    attempts: pl.DataFrame
    notes: list[str] = field(default_factory=list)


def build_timeline(capture: Capture, topology: Topology) -> Timeline:
    """The timeline of every vCPU listed in the capture's ``vcpus`` table.

    Raises
    ------
    MissingEventsError
        When the capture names no vCPU thread, or has neither scheduling nor kvm events.
    """
    vcpus = capture.frame("vcpus")
    if vcpus.is_empty():
        advice = stand_in_advice(capture, topology)
        raise MissingEventsError(
            f"{capture.metadata.source_path}: no vCPU threads found; name them with "
            "--vcpu TID=VM:INDEX (host thread id that runs each vCPU)"
            + (f"; {advice}" if advice else "")
        )
    meta = capture.metadata
    if meta.first_ts is None or meta.last_ts is None:
        raise MissingEventsError(f"{meta.source_path}: the capture has no timed events")
    tids = vcpus["tid"].to_list()
    notes: list[str] = []
    switches = _scheduling(capture, tids, notes)
    kvm = _kvm_events(capture, tids)
    refused = refused_entries(capture, tids)
    if switches.is_empty() and kvm.is_empty() and refused.is_empty():
        raise MissingEventsError(
            f"{meta.source_path}: no sched_switch and no kvm_entry/kvm_exit events of the vCPU "
            f"threads {tids}; the capture cannot show where they ran"
        )
    # a refusal is a kvm record too: its thread's run time is not guest time
    with_kvm = set(kvm["tid"].unique().to_list()) | set(refused["tid"].to_list())
    from_runtime = sorted(t for t in tids if t not in with_kvm)
    if from_runtime:
        notes.append(
            f"threads {from_runtime} have no kvm_entry/kvm_exit events: their whole run time "
            "is taken as guest time"
        )
    if switches.is_empty():
        notes.append("no sched_switch events: residency is taken from the kvm events' CPUs")
        switches = _residency_from_kvm(
            pl.concat([kvm, refused.with_columns(pl.lit(EXIT, pl.Int8).alias("kind"))])
        )
    pieces = _pieces(switches, kvm, from_runtime, meta.first_ts, meta.last_ts)
    gaps = _loss_gaps(capture, meta.last_ts)
    if not gaps.is_empty():
        cut = gaps.filter(pl.col("kind") == TRUNCATED)
        seen = [f"{gaps.height - cut.height} lost-event gaps"] if gaps.height > cut.height else []
        seen += [f"the truncated data of CPUs {sorted(cut['cpu'].to_list())}"] if cut.height else []
        notes.append(
            f"{' and '.join(seen)}: time there, and time the vCPU threads were on no CPU then, "
            "is reported as unknown"
        )
        pieces = _mark_gaps(pieces, gaps)
        hidden = off_cpu_unknown(pieces, gaps, tids, meta.first_ts, meta.last_ts)
        pieces = pl.concat([pieces, hidden]).sort("tid", "start")
    names = vcpus.select(
        pl.col("tid").cast(pl.Int32), pl.col("vm").cast(pl.Utf8), pl.col("vcpu_index")
    )
    attempts = place_attempts(refused, pieces, meta.last_ts, notes).join(
        names, on="tid", how="left", maintain_order="left"
    )
    pieces = pieces.join(names, on="tid", how="left", maintain_order="left").select(
        "vm", "tid", "vcpu_index", "residency", "cpu", "start", "end", "state", "cause"
    )
    ran_on = pieces["cpu"].drop_nulls().unique().sort().to_list()
    clocked = sorted(set(ran_on) | set(topology.cpus))
    clock = FrequencyClock.build(capture.frame("cpu_frequency"), clocked, topology, meta.first_ts)
    return Timeline(
        pieces,
        ran_on,
        clock,
        meta.first_ts,
        meta.last_ts,
        attempts.select("vm", "vcpu_index", *ATTEMPT_SCHEMA),
        notes + clock.notes,
    )


def _switches(sched_switch: pl.DataFrame, tids: list[int]) -> pl.DataFrame:
    """Switch-in / switch-out boundaries of the vCPU threads: ``tid, ts, seq, cpu, kind``."""
    cols = [pl.col("ts"), pl.col("seq"), pl.col("cpu").cast(pl.Int16)]
    ins = sched_switch.filter(pl.col("next_pid").is_in(tids)).select(
        pl.col("next_pid").cast(pl.Int32).alias("tid"), *cols, pl.lit(IN, pl.Int8).alias("kind")
    )
    outs = sched_switch.filter(pl.col("prev_pid").is_in(tids)).select(
        pl.col("prev_pid").cast(pl.Int32).alias("tid"), *cols, pl.lit(OUT, pl.Int8).alias("kind")
    )
    return pl.concat([ins, outs])


def _scheduling(capture: Capture, tids: list[int], notes: list[str]) -> pl.DataFrame:
    """Switch boundaries of the vCPU threads from ``sched_switch``; in a capture without any,
    from perf's switch records (``perf record --switch-events``, simpleperf
    ``--trace-offcpu``), and the notes say so."""
    sched_switch = capture.frame("sched_switch")
    perf = capture.frame("perf_switches")
    if not sched_switch.is_empty() or perf.is_empty():
        return _switches(sched_switch, tids)
    wide = perf["next_prev_tid"].is_not_null().any()
    kind = "PERF_RECORD_SWITCH_CPU_WIDE" if wide else "PERF_RECORD_SWITCH"
    notes.append(f"no sched_switch events: residency is taken from perf's {kind} records")
    return _perf_switches(perf, tids, notes)


def _perf_switches(perf: pl.DataFrame, tids: list[int], notes: list[str]) -> pl.DataFrame:
    """Boundaries from switch records (``perf_switches``): a switch-in record of a thread is
    its arrival on the record's CPU, a switch-out record its departure.

    Each record carries the thread it concerns (sample_id TID: the task switched in or out,
    for CPU-wide and per-thread records alike) and, with sample_id CPU, the CPU
    (kernel/events/core.c ``perf_event_switch_output``). An exiting thread is switched out
    after its pid is gone, so that record's TID reads -1 (``perf_event_pid_type``): it is
    the thread the CPU's last switch-in brought. Records of the vCPU threads without a CPU
    cannot place them and are left out, with a note.
    """
    running = pl.when(~pl.col("out")).then("tid").forward_fill().over("cpu", order_by="seq")
    resolved = perf.with_columns(
        pl.when(pl.col("out") & (pl.col("tid") < 0) & pl.col("cpu").is_not_null())
        .then(running)
        .otherwise("tid")
        .alias("tid")
    )
    mine = resolved.filter(pl.col("tid").is_in(tids))
    unplaced = mine.filter(pl.col("cpu").is_null()).height
    if unplaced:
        notes.append(
            f"{unplaced} switch records of the vCPU threads carry no CPU (recorded without "
            "sample CPU) and cannot say where they ran: left out"
        )
    return (
        mine.filter(pl.col("cpu").is_not_null())
        .select(
            pl.col("tid").cast(pl.Int32),
            "ts",
            "seq",
            pl.col("cpu").cast(pl.Int16),
            pl.when("out").then(pl.lit(OUT, pl.Int8)).otherwise(pl.lit(IN, pl.Int8)).alias("kind"),
        )
        .unique(["tid", "ts", "cpu", "kind"], keep="first", maintain_order=True)
    )


def _kvm_events(capture: Capture, tids: list[int]) -> pl.DataFrame:
    parts = [
        capture.frame(table)
        .filter(pl.col("common_pid").is_in(tids))
        .select(
            pl.col("common_pid").cast(pl.Int32).alias("tid"),
            "ts",
            "seq",
            pl.col("cpu").cast(pl.Int16),
            pl.lit(kind, pl.Int8).alias("kind"),
        )
        for table, kind in (("kvm_entry", ENTRY), ("kvm_exit", EXIT))
    ]
    return pl.concat(parts)


def _residency_from_kvm(kvm: pl.DataFrame) -> pl.DataFrame:
    """Without sched_switch: a thread is taken to move CPUs when its kvm events do."""
    ordered = kvm.sort("tid", "ts", "seq")
    # ne_missing: a thread's first kvm event (no previous CPU) is its first switch-in
    moved = ordered.filter(pl.col("cpu").ne_missing(pl.col("cpu").shift(1).over("tid")))
    ins = moved.with_columns(pl.lit(IN, pl.Int8).alias("kind"))
    prev = ordered.with_columns(
        pl.col("cpu").shift(-1).over("tid").alias("next_cpu"),
        pl.col("ts").shift(-1).over("tid").alias("next_ts"),
        pl.col("seq").shift(-1).over("tid").alias("next_seq"),
    )
    outs = prev.filter(pl.col("next_cpu").is_not_null() & (pl.col("next_cpu") != pl.col("cpu")))
    # the switch-out sorts just before the switch-in it makes room for (same time, one seq
    # before): the arriving event's seq, not the departing one's, which is later in a file
    # whose CPUs' lines are not in time order
    outs = outs.select(
        "tid", pl.col("next_ts").alias("ts"), (pl.col("next_seq") - 1).alias("seq"), "cpu"
    ).with_columns(pl.lit(OUT, pl.Int8).alias("kind"))
    return pl.concat([ins.select(outs.columns), outs])


def _pieces(
    switches: pl.DataFrame, kvm: pl.DataFrame, from_runtime: list[int], t0: int, t1: int
) -> pl.DataFrame:
    """State segments between consecutive boundaries of each thread (see module docstring).

    One sort puts every thread's boundaries in order behind a LEAD row at ``t0``; after it,
    everything is a whole-column forward fill or shift. Those never run across threads because
    each thread's first row (its LEAD) has every filled value set.
    """
    bounds = pl.concat([switches, kvm])
    lead = bounds.select(pl.col("tid").unique()).select(
        "tid",
        pl.lit(t0, pl.Int64).alias("ts"),
        pl.lit(-1, pl.Int64).alias("seq"),
        pl.lit(None, pl.Int16).alias("cpu"),
        pl.lit(LEAD, pl.Int8).alias("kind"),
    )
    b = pl.concat([lead, bounds])
    # np.lexsort (last key first): polars' multi-column sort is ~2.5x slower on these columns
    b = b[np.lexsort([*(b[c].to_numpy() for c in ("kind", "seq", "ts")), _ranks(b["tid"])])]
    kind, tid = pl.col("kind"), pl.col("tid")
    is_sw = kind.is_in([IN, OUT])
    is_kvm = kind.is_in([ENTRY, EXIT])
    first = kind == LEAD
    last = (tid != tid.shift(-1)).fill_null(True)

    def next_of(is_kind: pl.Expr, value: pl.Expr) -> pl.Expr:
        """``value`` of the thread's next boundary matching ``is_kind`` (null if none)."""
        same_thread = pl.when(is_kind).then(tid).backward_fill() == tid
        return pl.when(same_thread).then(pl.when(is_kind).then(value).backward_fill())

    # Before its first switch a thread is on the CPU of that switch if the switch is an out (it
    # was already running when tracing began), else off; it is in guest mode if its first kvm
    # event is an exit.
    lead_res = pl.when(next_of(is_sw, kind) == OUT).then(next_of(is_sw, pl.col("cpu")))
    lead_guest = (next_of(is_kvm, kind) == EXIT).fill_null(False)
    # Residency after each boundary: the CPU after a switch-in, -1 after a switch-out; kvm
    # events carry it forward. Guest mode: on after an entry, off after anything else.
    b = b.with_columns(
        pl.when(first)
        .then(lead_res.fill_null(-1))
        .when(kind == IN)
        .then(pl.col("cpu"))
        .when(kind == OUT)
        .then(pl.lit(-1, pl.Int16))
        .forward_fill()
        .alias("res"),
        pl.when(first).then(lead_guest).otherwise(kind == ENTRY).alias("guest"),
        (kind == IN).cum_sum().alias("ins"),
    )
    b = b.with_columns(
        pl.when(last).then(t1).otherwise(pl.col("ts").shift(-1)).alias("end"),
        pl.col("res").shift(1).alias("res_before"),
        pl.col("guest").shift(1).alias("guest_before"),
        (pl.col("ins") - pl.when(first).then(pl.col("ins")).forward_fill()).alias("residency"),
    )
    # Contradictions (records lost): a switch-in while resident, a switch-out or kvm event
    # while off, a switch-out in guest mode (KVM exits before the thread can be switched out),
    # a kvm event on another CPU than the residency, an entry while in guest mode, an exit while
    # not. The stretch before such a record has an unknown outcome.
    bad = (
        ((kind == IN) & (pl.col("res_before") >= 0))
        | ((kind == OUT) & ((pl.col("res_before") < 0) | pl.col("guest_before")))
        | (is_kvm & ((pl.col("res_before") < 0) | (pl.col("cpu") != pl.col("res"))))
        | ((kind == ENTRY) & pl.col("guest_before"))
        | ((kind == EXIT) & ~pl.col("guest_before"))
    )
    doubtful = pl.when(last).then(False).otherwise(bad.shift(-1))
    in_guest = pl.col("guest") | tid.is_in(from_runtime)
    state = (
        pl.when(doubtful)
        .then(pl.lit(_UNKNOWN, pl.Int8))
        .when(pl.col("res") < 0)
        .then(pl.lit(_OFF, pl.Int8))
        .when(in_guest)
        .then(pl.lit(_GUEST, pl.Int8))
        .otherwise(pl.lit(_HOST, pl.Int8))
    )
    seg = b.select(
        "tid",
        pl.col("residency").cast(pl.UInt32),
        pl.when(pl.col("res") >= 0).then(pl.col("res")).alias("cpu"),
        pl.col("ts").alias("start"),
        "end",
        state.alias("state"),
    ).filter((pl.col("end") > pl.col("start")) & (pl.col("state") != _OFF))
    seg = _merge_runs(seg)
    return seg.select(
        "tid",
        "residency",
        "cpu",
        "start",
        "end",
        pl.col("state").replace_strict(_STATE_NAMES, return_dtype=pl.Utf8),
        pl.when(pl.col("state") == _UNKNOWN)
        .then(pl.lit("contradictory records (events lost)"))
        .otherwise(pl.lit(None, pl.Utf8))
        .alias("cause"),
    )


def _ranks(tid: pl.Series) -> npt.NDArray[np.unsignedinteger]:
    """Each thread's rank among the threads, in the same order as the thread ids, in 16 bits
    where they fit: numpy sorts those by radix, the one key of the boundaries in no order
    (0.49 -> 0.18 s for the lexsort of 9.6 M boundaries)."""
    threads = tid.unique().sort().to_numpy()
    dtype = np.uint16 if threads.size <= np.iinfo(np.uint16).max else np.uint32
    return np.searchsorted(threads, tid.to_numpy()).astype(dtype)


def _merge_runs(seg: pl.DataFrame) -> pl.DataFrame:
    """Join adjacent segments of one thread with the same state, CPU and residency.

    ``seg`` is in thread and time order; a run keeps its first row with the last row's end.
    """
    run_starts = ~(
        (pl.col("tid") == pl.col("tid").shift(1))
        & (pl.col("residency") == pl.col("residency").shift(1))
        & pl.col("cpu").eq_missing(pl.col("cpu").shift(1))
        & (pl.col("state") == pl.col("state").shift(1))
        & (pl.col("start") == pl.col("end").shift(1))
    ).fill_null(False)
    marked = seg.with_columns(run_starts.alias("run_start"))
    if marked["run_start"].all():
        return seg
    ends = marked.filter(pl.col("run_start").shift(-1).fill_null(True))["end"]
    return marked.filter("run_start").drop("run_start").with_columns(ends)


def _loss_gaps(capture: Capture, t1: int) -> pl.DataFrame:
    """``cpu, gap_start, gap_end, kind, cause`` for every lost-event marker.

    Events were lost on ``cpu`` between its last recorded event before the marker and the
    marker's time (the next record of that CPU), or the end of the capture; ``kind`` is the
    marker's (``truncated``: the file ends before the CPU's data does), ``cause`` its words.
    """
    lost = capture.frame("lost_events")
    if lost.is_empty():
        return pl.DataFrame(
            schema={
                "cpu": pl.Int16,
                "gap_start": pl.Int64,
                "gap_end": pl.Int64,
                "kind": pl.Utf8,
                "cause": pl.Utf8,
            }
        )
    seen = pl.concat(
        [
            capture.frame(t).select(pl.col("cpu").cast(pl.Int16), "ts", "seq")
            for t in ("sched_switch", "kvm_entry", "kvm_exit", "events")
        ]
    ).sort("seq")
    kind = pl.col("kind").cast(pl.Utf8)
    gaps = lost.select(
        pl.col("cpu").cast(pl.Int16),
        "seq",
        pl.col("ts").fill_null(t1).alias("gap_end"),
        kind.alias("kind"),
        gap_cause(kind).alias("cause"),
    )
    found = gaps.sort("seq").join_asof(
        seen.rename({"ts": "gap_start"}),
        on="seq",
        by="cpu",
        strategy="backward",
        check_sortedness=False,
    )
    first = pl.col("gap_start").fill_null(capture.metadata.first_ts)
    return found.select("cpu", first, "gap_end", "kind", "cause")


def _mark_gaps(pieces: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """Cut pieces at the gap boundaries of their CPU and mark the covered parts unknown, for
    the cause of the gaps' ``kind`` (:func:`replay.unseen.gap_cause`; truncated data wins
    where a truncated stretch and lost events overlap).

    A CPU's gap boundaries split its time into stretches, each covered by a gap or not; a piece
    is cut at the boundaries strictly inside it and each part takes its stretch's flag. Two
    as-of joins find, per piece, the boundary at or before its start and the last one before
    its end, so the work grows with pieces plus cuts: pairing every piece with every gap of its
    CPU would grow with their product.
    """
    # A gap ending before it starts (its CPU's clock went back) covers no time.
    gaps = gaps.filter(pl.col("gap_start") <= pl.col("gap_end"))
    if gaps.is_empty():
        return pieces
    cut = (pl.col("kind") == TRUNCATED).cast(pl.Int64)
    bounds = (
        pl.concat(
            [
                gaps.select("cpu", pl.col("gap_start").alias("t"), pl.lit(1).alias("step"), cut),
                gaps.select("cpu", pl.col("gap_end").alias("t"), pl.lit(-1).alias("step"), -cut),
                # one boundary before all time per CPU: every piece on a CPU with gaps finds a
                # boundary at or before its start
                gaps.select(
                    pl.col("cpu").unique(),
                    pl.lit(np.iinfo(np.int64).min).alias("t"),
                    pl.lit(0).alias("step"),
                    pl.lit(0, pl.Int64).alias("kind"),
                ),
            ]
        )
        .group_by("cpu", "t")
        .agg(pl.col("step", "kind").sum())
        .sort("cpu", "t")
        # gaps begun minus gaps ended so far: how many gaps cover the stretch after a boundary
        # (and how many of them are truncated data)
        .with_columns(
            (pl.col("step").cum_sum().over("cpu") > 0).alias("lost"),
            pl.when(pl.col("kind").cum_sum().over("cpu") > 0)
            .then(pl.lit(TRUNCATED_CAUSE))
            .otherwise(pl.lit(LOST_CAUSE))
            .alias("why"),
        )
        .with_row_index("bound")
    )
    probe = pieces.select("cpu", "start", "end").with_row_index("piece")

    def bound_before(column: str, inclusive: bool) -> npt.NDArray[np.int64]:
        """Per piece, the index of its CPU's last boundary before ``column`` (-1 if none)."""
        found = (
            probe.sort(column)
            .join_asof(
                bounds.select("cpu", pl.col("t").alias(column), "bound"),
                on=column,
                by="cpu",
                strategy="backward",
                allow_exact_matches=inclusive,
                check_sortedness=False,
            )
            .sort("piece")
        )
        return found["bound"].cast(pl.Int64).fill_null(-1).to_numpy()

    first = bound_before("start", inclusive=True)
    cuts = np.where(first >= 0, bound_before("end", inclusive=False) - first, 0)
    # one part per piece and cut: part k of a piece starts at its k-th cut, in stretch first + k
    parts_of = cuts + 1
    piece = np.repeat(np.arange(pieces.height), parts_of)
    part = np.arange(piece.size) - np.repeat(np.cumsum(parts_of) - parts_of, parts_of)
    stretch = np.maximum(first[piece], 0) + part
    bound_t = bounds["t"].to_numpy()
    start = np.where(part == 0, pieces["start"].to_numpy()[piece], bound_t[stretch])
    # a part ends where the next part of its piece starts
    end = np.where(part == cuts[piece], pieces["end"].to_numpy()[piece], np.roll(start, -1))
    lost = (first[piece] >= 0) & bounds["lost"].to_numpy()[stretch]
    parts = pieces[piece].with_columns(
        pl.Series("start", start),
        pl.Series("end", end),
        pl.Series("lost", lost),
        bounds["why"].gather(stretch).alias("why"),
    )
    return parts.with_columns(
        pl.when("lost").then(pl.lit("unknown")).otherwise("state").alias("state"),
        pl.when("lost").then("why").otherwise("cause").alias("cause"),
    ).select(pieces.columns)
