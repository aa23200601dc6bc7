"""Hold the model's predictions to what a real guest saw: ``pmu-replay validate``.

A *validation case* is a capture of a real KVM host, taken while a guest logged what it read,
plus that log. The capture is replayed under the scenario the host really ran (the public API:
:func:`replay.api.open_capture`, :func:`replay.api.what_if`), and two things are compared:

* **Reads.** For every guest read of ``PMCCNTR_EL0`` after the first of its vCPU, the guest saw
  a zero delta since its previous read, a counted (non-zero) delta, or an UNDEF (no vPMU). The
  model predicts the same from the observations between the two read times: ``zero``,
  ``counted``, ``no_vpmu``, or ``unknown`` (unknown time between the reads, no guest execution
  at all, or a read time that falls inside a guest window, which the log's time must not).
* **Entries.** Every guest window of the capture is an entry the kernel let run; every
  ``KVM_EXIT_FAIL_ENTRY`` in the VMM's exit log is one it refused. The replay must predict no
  failure for the former, and its own ``fail_entry`` findings at the entries the capture shows
  refused (:mod:`replay.refused`) must be exactly the latter, on the same pCPUs
  (:mod:`replay.entry_checks`).

The case directory and the two logs are specified in :data:`FORMAT_HELP`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from importers.errors import CaptureFormatError, UsageError
from replay.api import open_capture, prepare_replay, what_if
from replay.engine import Path_
from replay.entry_checks import entered_windows, failed_entries
from replay.guest_logs import read_exit_log, read_guest_reads, with_tid
from replay.pmu import CYCLE_IDX
from replay.pmu_reads import read_checks

CASE_FORMAT = "pmu-replay-validate/1"
CASE_FILE = "case.json"
#: Exit code of ``pmu-replay validate`` when a prediction disagrees or cannot be made; its own
#: code, listed in ``replay.cli.EXIT_CODES`` (8 is a file that cannot be read or written).
DISAGREE_EXIT = 9

FORMAT_HELP = f"""\
case directory: {CASE_FILE} (JSON) names the files, relative to the directory:
  {{"format": "{CASE_FORMAT}", "capture": "trace.txt", "scenario": "default@cpu0",
   "reads": "guest-reads.csv", "exits": "exits.csv", "topology": "topology.json",
   "vcpus": ["4242=vm0:0"], "profile": "guest-profile.json"}}
  capture, scenario and reads are required; exits, topology, vcpus (TID=VM:INDEX, as --vcpu)
  and profile (a built-in guest profile or a JSON file; default windows) are optional. The
  profile must enable the cycle counter (counter 31).

read log (CSV with a header): one row per guest read of PMCCNTR_EL0, any order
  ts       host time of the read, integer nanoseconds in the capture's clock; it must lie
           between the guest exit that ended the window in which the guest read and the vCPU's
           next guest entry (KVM's kvm_sys_access of the trapped read is such a time)
  vcpu     vCPU index in its VM
  pmccntr  the 64-bit value read; empty when the read raised UNDEF (no vPMU)
  vm       (optional) VM name as in the capture's vcpus table; needed with several VMs
  other columns (e.g. cntvct) are ignored. Each read is compared with the vCPU's previous one.

exit log (CSV with a header): one row per return of KVM_RUN, logged before the next KVM_RUN
  ts       host time just after KVM_RUN returned, in the capture's clock (a refused entry's
           kvm_userspace_exit record pairs with the vCPU's first return at or after it)
  vcpu     vCPU index in its VM
  exit_reason  run->exit_reason (9 = KVM_EXIT_FAIL_ENTRY: these are compared)
  fail_cpu run->fail_entry.cpu of a KVM_EXIT_FAIL_ENTRY
  vm       (optional) VM name as in the capture's vcpus table
"""


@dataclass(frozen=True)
class Case:
    """A validation case (see :data:`FORMAT_HELP`); paths are absolute."""

    name: str
    capture: Path
    scenario: str
    reads: Path
    exits: Path | None = None
    topology: Path | None = None
    vcpus: tuple[str, ...] = ()
    profile: str = "windows"


#: The case's fields that name files: relative to the case directory in ``case.json``.
_FILE_FIELDS = ("capture", "reads", "exits", "topology")


def load_case(directory: str | Path, **overrides: Any) -> Case:
    """Read ``directory/case.json``; ``overrides`` (non-None values) replace its fields.

    Files named in ``case.json`` are relative to ``directory``; files given as ``overrides``
    (``--reads``, ``--exits``) are relative to the current directory, as a user types them.
    """
    root = Path(directory)
    overrides = {
        key: os.path.abspath(value) if key in _FILE_FIELDS and value is not None else value
        for key, value in overrides.items()
    }
    spec_file = root / CASE_FILE
    try:
        spec = json.loads(spec_file.read_text())
    except OSError as exc:
        raise UsageError(f"{spec_file}: cannot read the case file ({exc.strerror})") from None
    except ValueError as exc:
        raise CaptureFormatError(f"{spec_file}: not valid JSON ({exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != CASE_FORMAT:
        raise CaptureFormatError(f'{spec_file}: expected {{"format": "{CASE_FORMAT}", ...}}')
    spec.update({k: v for k, v in overrides.items() if v is not None})
    missing = [k for k in ("capture", "scenario", "reads") if not spec.get(k)]
    if missing:
        raise UsageError(f"{spec_file}: {', '.join(missing)} missing (see validate --help)")

    def path(key: str) -> Path | None:
        return root / str(spec[key]) if spec.get(key) else None

    profile = str(spec.get("profile") or "windows")
    if (root / profile).is_file():
        profile = str(root / profile)
    return Case(
        name=root.resolve().name,
        capture=root / str(spec["capture"]),
        scenario=str(spec["scenario"]),
        reads=root / str(spec["reads"]),
        exits=path("exits"),
        topology=path("topology"),
        vcpus=tuple(str(v) for v in spec.get("vcpus") or ()),
        profile=profile,
    )


@dataclass
class Validation:
    """What :func:`validate` found.

    ``reads``: one row per read (``vm, vcpu, tid, ts, prev_ts, observed, predicted,
    observed_delta, predicted_delta, guest_ns, outcome``), ``outcome`` one of ``agree``,
    ``disagree``, ``unknown``, ``first``. ``entries``: one row per entry (``vm, vcpu, tid, ts,
    cpu, observed, predicted, outcome``; :mod:`replay.entry_checks`).
    """

    case: Case
    scenario: str
    reads: pl.DataFrame
    entries: pl.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        """Every read and entry agrees (none disagrees, none is unknown)."""
        checked = pl.concat([self.reads["outcome"], self.entries["outcome"]])
        return bool(checked.is_in(["agree", "first"]).all())

    def matrix(self, table: Literal["reads", "entries"]) -> pl.DataFrame:
        """Counts per observed and predicted class of ``reads`` or ``entries``."""
        frame = self.reads if table == "reads" else self.entries
        return (
            frame.filter(pl.col("outcome") != "first")
            .group_by("observed", "predicted", "outcome")
            .len("count")
            .sort("observed", "predicted")
        )

    def cycles_ratio(self) -> float | None:
        """Observed / predicted cycles over the agreeing counted reads (information only: the
        capture's cycle clock is an assumption unless the topology gives frequencies)."""
        counted = self.reads.filter(
            (pl.col("observed") == "counted") & (pl.col("outcome") == "agree")
        )
        predicted = int(counted["predicted_delta"].sum())
        return int(counted["observed_delta"].sum()) / predicted if predicted else None

    def to_json(self) -> dict[str, Any]:
        def outcomes(frame: pl.DataFrame) -> dict[str, int]:
            counts = frame.group_by("outcome").len()
            return dict(zip(counts["outcome"].to_list(), counts["len"].to_list(), strict=True))

        bad = ~pl.col("outcome").is_in(["agree", "first"])
        return {
            "case": self.case.name,
            "capture": str(self.case.capture),
            "scenario": self.scenario,
            "agrees": self.agrees,
            "reads": {
                "total": self.reads.height,
                "outcomes": outcomes(self.reads),
                "matrix": self.matrix("reads").to_dicts(),
                "observed_over_predicted_cycles": self.cycles_ratio(),
            },
            "entries": {
                "total": self.entries.height,
                "outcomes": outcomes(self.entries),
                "matrix": self.matrix("entries").to_dicts(),
            },
            "disagreements": {
                "reads": self.reads.filter(bad).to_dicts(),
                "entries": self.entries.filter(bad).to_dicts(),
            },
            "notes": self.notes,
        }


def validate(case: Case, path: Path_ = "vectorized") -> Validation:
    """Replay ``case`` under its scenario and compare (module docstring)."""
    capture = open_capture(case.capture, topology=case.topology, vcpus=case.vcpus)
    work = prepare_replay(capture, case.profile)
    results = what_if(capture, [case.scenario], path=path, work=work, rank=False)
    obs = results.observations.filter(pl.col("counter") == CYCLE_IDX)
    if obs.is_empty():
        raise UsageError(
            f"guest profile {work.profile.name!r} does not program the cycle counter, so the "
            "replay predicts nothing about PMCCNTR_EL0 reads; give a profile with counter 31"
        )
    threads = work.pieces.select(
        pl.col("vm").cast(pl.Utf8), pl.col("vcpu_index").alias("vcpu"), "tid"
    ).unique()
    reads = _check_reads(obs, with_tid(read_guest_reads(case.reads), threads, case.reads))
    entries = entered_windows(obs, work.attempts, threads)
    if case.exits is not None:
        log = with_tid(read_exit_log(case.exits), threads, case.exits)
        fails = failed_entries(results.findings, work.attempts, threads, log)
        entries = pl.concat([entries, fails])
    agreeing = {("entered", "entered"), ("failed", "failed")}
    name = str(results.meta["scenarios"][0]["name"])
    checked = _outcome(entries, agreeing).sort("tid", "ts", "observed")
    return Validation(case, name, reads, checked, list(results.meta["notes"]))


def _check_reads(obs: pl.DataFrame, reads: pl.DataFrame) -> pl.DataFrame:
    """Observed and predicted class of every read (module docstring).

    Guest time and counted cycles since the vCPU's previous read come from
    :func:`replay.pmu_reads.read_checks`, the check the replay makes at traced PMCCNTR_EL0
    reads; this adds what a log of its own needs: the guest's side, reads whose time lies
    inside a guest window, and UNDEF reads without a vPMU (which need no previous read).
    """
    accesses = reads.select(
        "tid", "ts", pl.lit("PMCCNTR_EL0").alias("sysreg"), pl.lit(False).alias("is_write")
    )
    checks = read_checks(obs, accesses).select(
        pl.col("vcpu").alias("tid"), "ts", "since", "guest_ns", "delta", "zero_delta", "unknown"
    )
    pieces = obs.select(
        pl.col("vcpu").alias("tid"), "start", pl.col("end").alias("piece_end"), "state"
    )
    vpmu = obs.group_by(pl.col("vcpu").alias("tid")).agg(
        (pl.col("reason") != "no_vpmu").fill_null(True).any().alias("vpmu")
    )
    at = (
        reads.with_columns((pl.col("ts") - 1).alias("before"))
        .sort("before")
        # the piece that began last before the read: a guest piece still running at ts means
        # the log's time is not after the exit of the read's guest window
        .join_asof(
            pieces.sort("start"),
            left_on="before",
            right_on="start",
            by="tid",
            strategy="backward",
            check_sortedness=False,  # sorted by the key above, so within every tid too
        )
        .join(checks, on=["tid", "ts"], how="left")
        .join(vpmu, on="tid", how="left")
        .sort("tid", "ts")
    )
    inside = ((pl.col("state") == "guest") & (pl.col("piece_end") > pl.col("ts"))).fill_null(False)
    prev_value = pl.col("pmccntr").shift(1).over("tid")
    at = at.with_columns(
        pl.col("ts").shift(1).over("tid").alias("prev_ts"),
        (inside | inside.shift(1).over("tid").fill_null(False)).alias("inside"),
        pl.when(pl.col("pmccntr") >= prev_value)
        .then(pl.col("pmccntr") - prev_value)
        .cast(pl.Int64)
        .alias("observed_delta"),
        pl.col("delta").alias("predicted_delta"),
    )
    observed = (
        pl.when(pl.col("pmccntr").is_null())
        .then(pl.lit("undef"))
        .when(pl.col("since").is_null() | prev_value.is_null())
        .then(pl.lit("first"))
        .when(pl.col("pmccntr") == prev_value)
        .then(pl.lit("zero"))
        .otherwise(pl.lit("counted"))
    )
    predicted = (
        pl.when(~pl.col("vpmu").fill_null(True))
        .then(pl.lit("no_vpmu"))
        .when(pl.col("since").is_null())
        .then(pl.lit("first"))
        .when(pl.col("inside") | pl.col("unknown") | (pl.col("guest_ns") <= 0))
        .then(pl.lit("unknown"))
        .when(pl.col("zero_delta"))
        .then(pl.lit("zero"))
        .otherwise(pl.lit("counted"))
    )
    return _outcome(
        at.with_columns(observed.alias("observed"), predicted.alias("predicted")),
        {("zero", "zero"), ("counted", "counted"), ("undef", "no_vpmu")},
    ).select(
        "vm",
        "vcpu",
        "tid",
        "ts",
        "prev_ts",
        "observed",
        "predicted",
        "observed_delta",
        "predicted_delta",
        "guest_ns",
        "outcome",
    )


def _outcome(frame: pl.DataFrame, agreeing: set[tuple[str, str]]) -> pl.DataFrame:
    pair = pl.concat_str("observed", "predicted", separator="/")
    return frame.with_columns(
        pl.when(pl.col("observed") == "first")
        .then(pl.lit("first"))
        .when(pl.col("predicted") == "unknown")
        .then(pl.lit("unknown"))
        .when(pair.is_in([f"{o}/{p}" for o, p in agreeing]))
        .then(pl.lit("agree"))
        .otherwise(pl.lit("disagree"))
        .alias("outcome")
    )
