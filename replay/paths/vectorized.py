"""Vectorized path of the engine: the model asked once per CPU, the history applied in polars.

Within a scenario, whether a counter counts a guest piece depends only on the CPU the piece
runs on: the default PMU is fixed at setup, SET_PMU fixes the supported CPUs, and in
FIXED_COUNTERS_ONLY mode the cycle counter's event follows the CPU with its value preserved
(spec §8.2-§8.4). So the model itself is *probed*: for every CPU, a freshly configured and
booted VM is loaded there and entered, and its counter statuses (and which exception levels
the backing events count) are read. Joining every guest piece with the probe of its CPU gives
counting and deltas; a cumulative sum per vCPU and counter gives the values. The reference
path steps the model through the full history instead; a differential test holds the two
equal on every shared capture. Perf-event re-creations follow from the loads and the kernel's
reload rule (:mod:`replay.paths.reloads`). An entry the capture's kernel refused
(:mod:`replay.refused`) is an entry attempt on its CPU like a guest window: where the probe
refuses entry it is a ``fail_entry``, where it lets the vCPU in, the stretch up to the vCPU's
next entry attempt is unknown (:mod:`replay.paths.reference` says why).

That premise fails where a backing event gets no hardware counter on some CPU (host counter
contention, spec §1.5): perf leaves it in the error state, so whether it counts later depends on
where the vCPU ran before and on what re-enabled it since. When any probe shows that,
:func:`replay_vectorized` returns ``None`` and the engine steps the scenario instead.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from replay.paths.reloads import SEED_SCHEMA, recreations
from replay.pmu import ENTERED, StallReason
from replay.pmu.counters import counter_width_mask
from replay.refused import UNSEEN_GUEST
from replay.scenarios import Scenario
from replay.work import (
    OBSERVATION_SCHEMA,
    RECREATION_SCHEMA,
    ScenarioResult,
    Work,
    boot_vm,
    finish_observations,
    finish_recreations,
)


def replay_vectorized(work: Work, scenario: Scenario) -> ScenarioResult | None:
    """Observations of ``scenario``, or ``None`` when counting depends on history (see module
    docstring)."""
    requests = work.profile.counters
    probe = _probe(work, scenario)
    if probe.select((pl.col("reason") == str(StallReason.CONTENTION)).any()).item():
        return None
    starts: list[dict[str, object]] = []
    lost: dict[str, list[str]] = {}
    recreated = [pl.DataFrame(schema=RECREATION_SCHEMA)]
    supported = work.host.possible_cpus
    for vm_name, tids in work.vms.items():
        vm, lost[vm_name] = boot_vm(work, scenario, tids)
        supported = vm.kvm.supported_cpus
        seeds = []
        for vcpu, tid in zip(vm.vcpus, tids, strict=True):
            for r in requests:
                mask = counter_width_mask(vcpu, r.idx)
                starts.append(
                    {
                        "tid": tid,
                        "counter": r.idx,
                        "initial": vcpu.counter_value(r.idx),
                        "mask": mask,
                    }
                )
                event = vcpu.backing_event(r.idx)
                if event is not None and event.enabled:
                    seeds.append((tid, r.idx, event.pmu.name))
        seeded = pl.DataFrame(seeds, schema=SEED_SCHEMA, orient="row")
        recreated.append(recreations(work.loads, tids, seeded, vm.kvm, scenario.name))
    initial = pl.DataFrame(
        starts,
        schema={"tid": pl.Int32, "counter": pl.Int8, "initial": pl.UInt64, "mask": pl.UInt64},
    )

    rows = counter_rows(work)
    # the probe's and the start values' rows by their positions (_probe, _start): a join on
    # two keys encoded every one of millions of rows per scenario
    at_probe, at_start = rows.get_column("_probe"), rows.get_column("_start")
    rows = rows.with_columns(
        *(probe.get_column(c).gather(at_probe) for c in _PROBED),
        *(initial.get_column(c).gather(at_start) for c in ("initial", "mask")),
    )
    guest = pl.col("state") == "guest"
    attempt = pl.col("state") == "attempt"  # an entry the capture's kernel refused
    entered = guest & pl.col("entered")
    refused = (guest | attempt) & ~pl.col("entered")
    unseen = attempt & pl.col("entered")  # let in here: the stretch after it is unknown
    delta = (
        pl.when(entered & pl.col("counting"))
        .then(pl.col("el0") * pl.col("counts_el0") + pl.col("el1") * pl.col("counts_el1"))
        .when(guest | refused)
        .then(0)
        .otherwise(None)
    )
    columns = [
        pl.when(entered)
        .then(pl.col("counting"))
        .when(refused)
        .then(False)
        .otherwise(None)
        .alias("counting"),
        pl.when(entered)
        .then(pl.col("reason"))
        .when(refused)
        .then(pl.lit("fail_entry"))
        .when(unseen)
        .then(pl.lit(UNSEEN_GUEST))
        .otherwise(pl.col("cause"))
        .alias("reason"),
        pl.when(entered).then(pl.col("host_pmu")).otherwise(None).alias("host_pmu"),
        delta.cast(pl.Int64).alias("delta"),
    ]
    # What every scenario shares stays shared where this one changes nothing: the state
    # where no entry is refused and there are no attempts; the events the guest ran
    # (counter_rows() nulls those of unknown pieces) and the ends without attempts.
    attempts = not work.attempts.is_empty()
    if attempts or not probe.get_column("entered").all():
        columns.append(
            pl.when(refused)
            .then(pl.lit("fail_entry"))
            .when(unseen)
            .then(pl.lit("unknown"))
            .otherwise(pl.col("state"))
            .alias("state")
        )
    if attempts:
        columns += [
            pl.when(unseen).then(None).otherwise(pl.col("true_events")).alias("true_events"),
            pl.when(unseen).then(pl.col("until")).otherwise(pl.col("end")).alias("end"),
        ]
    rows = rows.with_columns(columns)
    # a running sum per (thread, counter) block, from one whole-column sum
    step = pl.col("delta").fill_null(0).cast(pl.UInt64)
    block_start = (pl.col("tid") != pl.col("tid").shift(1)) | (
        pl.col("counter") != pl.col("counter").shift(1)
    )
    before_block = pl.when(block_start.fill_null(True)).then(step.cum_sum() - step).forward_fill()
    total = pl.col("initial") + (step.cum_sum() - before_block)
    # delta is the change a guest reading the counter before and after the piece sees: the
    # events counted, modulo the counter's width (what the reference reads off the model).
    rows = rows.with_columns(
        pl.when(pl.col("state") == "unknown")
        .then(None)
        .otherwise(total & pl.col("mask"))
        .alias("value"),
        (pl.col("delta").cast(pl.UInt64) & pl.col("mask")).cast(pl.Int64).alias("delta"),
        # one string for every row: a literal column is made a column anew by every
        # operation on it (the detectors', the concatenation of the scenarios), each row
        # a copy of the name
        pl.Series("scenario", [scenario.name]).new_from_index(0, rows.height),
        pl.col("tid").alias("vcpu"),
    )
    return ScenarioResult(
        scenario,
        finish_observations(rows.select(list(OBSERVATION_SCHEMA))),
        lost,
        finish_recreations(pl.concat(recreated)),
        supported,
    )


#: The probe's columns each observation row takes from its CPU and counter's probe row.
_PROBED = ("entered", "counting", "reason", "host_pmu", "counts_el0", "counts_el1")


def counter_rows(work: Work) -> pl.DataFrame:
    """Every piece a scenario observes (guest pieces, unknown ones and the refused entry
    attempts: not host time) once per counter the guest programs, in the observations' order
    (vcpu, counter, start), with ``_probe`` and ``_start``, the positions of the row's CPU and
    counter in :func:`_probe` and of its thread and counter in the start values (null: none).

    The same for every scenario, so built once per ``work`` and kept there: each scenario's
    observations then share the columns it does not change (vm, vcpu, vcpu_index, counter,
    window, tick, start, cpu; state, true_events and end where replay_vectorized says)
    instead of holding copies of their own: on a compare of 9.8 M sched events page faults
    were most of its time.
    """
    if work.counter_rows is not None:
        return work.counter_rows
    requests = work.profile.counters
    pieces = work.pieces.filter(pl.col("state") != "host")
    pieces = pl.concat([pieces, work.attempts], how="diagonal_relaxed")
    if not work.attempts.is_empty():  # an attempt goes before a piece that begins at its time
        pieces = pieces.sort("tid", "start", "end", "window")
    cpus = {cpu: k for k, cpu in enumerate(sorted(work.host.possible_cpus))}
    tids = {tid: k for k, tid in enumerate(t for tids in work.vms.values() for t in tids)}
    per_counter = []
    for k, r in enumerate(requests):
        el0, el1 = pl.col(f"el0_{r.event:#x}"), pl.col(f"el1_{r.event:#x}")
        # _probe() and replay_vectorized's start values list the counters within each CPU and
        # each thread, in the profile's order
        per_counter.append(
            pieces.select(
                "vm",
                "tid",
                "vcpu_index",
                "window",
                "tick",
                "start",
                "end",
                "cpu",
                "state",
                "cause",
                "until",
                # a column of its own, not a literal: made anew from a literal by every
                # operation on it, in every scenario (see the scenario column)
                pl.Series("counter", [r.idx], pl.Int8).new_from_index(0, pieces.height),
                pl.when(pl.col("state") == "unknown")
                .then(None)
                .otherwise(el0 + el1)
                .alias("true_events"),
                el0.alias("el0"),
                el1.alias("el1"),
                (
                    pl.col("cpu").replace_strict(cpus, default=None, return_dtype=pl.UInt32)
                    * len(requests)
                    + k
                ).alias("_probe"),
                (
                    pl.col("tid").replace_strict(tids, default=None, return_dtype=pl.UInt32)
                    * len(requests)
                    + k
                ).alias("_start"),
            )
        )
    rows = pl.concat(per_counter)
    if len(requests) > 1:
        # counter-major -> (vcpu, counter, start): a stable sort on the two small keys
        keys = rows.select("counter", "tid")
        rows = rows[np.lexsort([keys["counter"].to_numpy(), keys["tid"].to_numpy()])]
    shared = ("vm", "tid", "vcpu_index", "window", "tick", "start", "end", "cpu")
    work.counter_rows = rows.with_columns(
        pl.col(c).cast(OBSERVATION_SCHEMA["vcpu" if c == "tid" else c]) for c in shared
    )
    return work.counter_rows


def _probe(work: Work, scenario: Scenario) -> pl.DataFrame:
    """Per CPU (in order) and counter (in the profile's order): entry possible, counting,
    host PMU, reason, ELs counted."""
    rows = []
    for cpu in sorted(work.host.possible_cpus):
        vm, _ = boot_vm(work, scenario, [None])
        vcpu = vm.vcpus[0]
        vcpu.vcpu_load(cpu)
        entered = vcpu.guest_enter() is ENTERED
        for r in work.profile.counters:
            st = vcpu.counter_status(r.idx) if entered else None
            event = vcpu.backing_event(r.idx)
            rows.append(
                {
                    "cpu": cpu,
                    "counter": r.idx,
                    "entered": entered,
                    "counting": bool(st and st.counting),
                    "reason": None if st is None or st.reason is None else str(st.reason),
                    "host_pmu": None if st is None else st.host_pmu,
                    "counts_el0": int(event is not None and not event.exclude_user),
                    "counts_el1": int(event is not None and not event.exclude_kernel),
                }
            )
        if entered:
            vcpu.guest_exit()
        vcpu.vcpu_put()
    return pl.DataFrame(rows).with_columns(
        pl.col("cpu").cast(pl.Int16), pl.col("counter").cast(pl.Int8)
    )
