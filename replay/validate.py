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
  failure for the former; for the latter the model itself is asked what an entry on the refusing
  pCPU gives (the real capture has no guest window there, so the replay's ``fail_entry``
  findings cannot show it): ``vcpu_load`` then ``guest_enter``, which mirror
  ``kvm_arch_vcpu_load()``'s ``supported_cpus`` test and ``kvm_vcpu_exit_request()``.

The case directory and the two logs are specified in :data:`FORMAT_HELP`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from importers.errors import CaptureFormatError, UsageError
from replay.api import open_capture, prepare_replay, what_if
from replay.engine import Path_
from replay.pmu import CYCLE_IDX, ENTERED, FailEntry, HostPmus
from replay.pmu_reads import read_checks
from replay.scenarios import Scenario, build_vm, parse_scenario

CASE_FORMAT = "pmu-replay-validate/1"
CASE_FILE = "case.json"
KVM_EXIT_FAIL_ENTRY = 9  # include/uapi/linux/kvm.h
#: Exit code of ``pmu-replay validate`` when a prediction disagrees or cannot be made.
DISAGREE_EXIT = 8

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

exit log (CSV with a header): one row per return of KVM_RUN; only failed entries are used
  ts, vcpu, exit_reason (9 = KVM_EXIT_FAIL_ENTRY), fail_cpu (run->fail_entry.cpu), vm (optional)
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


def load_case(directory: str | Path, **overrides: Any) -> Case:
    """Read ``directory/case.json``; ``overrides`` (non-None values) replace its fields."""
    root = Path(directory)
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


def _read_csv(path: Path, required: tuple[str, ...], types: dict[str, pl.DataType]) -> pl.DataFrame:
    try:
        header = pl.read_csv(path, n_rows=0).columns
        frame = pl.read_csv(path, schema_overrides={c: t for c, t in types.items() if c in header})
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise CaptureFormatError(f"{path}: not a readable CSV log ({exc})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CaptureFormatError(
            f"{path}:1: the header lacks {', '.join(missing)} (see validate --help)"
        )
    for column in ("ts", "vcpu"):
        if frame[column].null_count():
            line = int(frame.with_row_index().filter(pl.col(column).is_null())["index"][0]) + 2
            raise CaptureFormatError(f"{path}:{line}: no {column}")
    return frame


def read_guest_reads(path: Path) -> pl.DataFrame:
    """The read log: ``vm`` (null if absent), ``vcpu``, ``ts``, ``pmccntr`` (null: UNDEF)."""
    frame = _read_csv(
        path,
        ("ts", "vcpu", "pmccntr"),
        {"ts": pl.Int64(), "vcpu": pl.Int32(), "pmccntr": pl.UInt64(), "vm": pl.Utf8()},
    )
    if frame.is_empty():
        raise CaptureFormatError(f"{path}: no reads: nothing to validate")
    twice = frame.filter(
        pl.struct(["vcpu", "ts", *(["vm"] if "vm" in frame.columns else [])]).is_duplicated()
    )
    if twice.height:
        raise CaptureFormatError(
            f"{path}: vCPU {twice['vcpu'][0]} has two reads at ts {twice['ts'][0]}; reads of one "
            "vCPU need distinct times to be ordered"
        )
    vm = pl.col("vm") if "vm" in frame.columns else pl.lit(None, pl.Utf8).alias("vm")
    return frame.select(vm, "vcpu", "ts", "pmccntr")


def read_failed_entries(path: Path) -> pl.DataFrame:
    """``vm``, ``vcpu``, ``ts``, ``cpu`` of every ``KVM_EXIT_FAIL_ENTRY`` in an exit log."""
    frame = _read_csv(
        path,
        ("ts", "vcpu", "exit_reason", "fail_cpu"),
        {
            "ts": pl.Int64(),
            "vcpu": pl.Int32(),
            "exit_reason": pl.Int64(),
            "fail_cpu": pl.Int32(),
            "vm": pl.Utf8(),
        },
    )
    vm = pl.col("vm") if "vm" in frame.columns else pl.lit(None, pl.Utf8).alias("vm")
    fails = frame.filter(pl.col("exit_reason") == KVM_EXIT_FAIL_ENTRY)
    if fails["fail_cpu"].null_count():
        raise CaptureFormatError(f"{path}: a KVM_EXIT_FAIL_ENTRY row has no fail_cpu")
    return fails.select(vm, "vcpu", "ts", pl.col("fail_cpu").alias("cpu"))


@dataclass
class Validation:
    """What :func:`validate` found.

    ``reads``: one row per read (``vm, vcpu, tid, ts, prev_ts, observed, predicted,
    observed_delta, predicted_delta, guest_ns, outcome``), ``outcome`` one of ``agree``,
    ``disagree``, ``unknown``, ``first``. ``entries``: one row per entry (``vm, vcpu, tid, ts,
    cpu, observed, predicted, outcome``), ``observed`` ``entered`` or ``failed``.
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
    reads = _check_reads(obs, _with_tid(read_guest_reads(case.reads), threads, case.reads))
    entries = _entered(obs, threads)
    if case.exits is not None:
        failed = _with_tid(read_failed_entries(case.exits), threads, case.exits)
        scenario = parse_scenario(case.scenario, min(work.host.possible_cpus))
        entries = pl.concat([entries, _check_failed(scenario, work.host, work.vms, failed)])
    name = str(results.meta["scenarios"][0]["name"])
    return Validation(case, name, reads, entries.sort("tid", "ts"), list(results.meta["notes"]))


def _with_tid(log: pl.DataFrame, threads: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The log with the host thread (``tid``) of each row's vCPU."""
    vms = threads["vm"].unique().sort().to_list()
    if log["vm"].null_count() and len(vms) != 1:
        raise CaptureFormatError(
            f"{path}: the capture has {len(vms)} VMs ({', '.join(vms)}); give a vm column"
        )
    named = log.with_columns(pl.col("vm").fill_null(vms[0]))
    joined = named.join(threads, on=["vm", "vcpu"], how="left", maintain_order="left")
    unknown = joined.filter(pl.col("tid").is_null()).select("vm", "vcpu").unique()
    if unknown.height:
        known = ", ".join(f"{r['vm']}:{r['vcpu']}" for r in threads.sort("vm", "vcpu").to_dicts())
        missing = ", ".join(f"{r['vm']}:{r['vcpu']}" for r in unknown.to_dicts())
        raise CaptureFormatError(
            f"{path}: vCPU {missing} is not a vCPU thread of the capture (known: {known}); "
            "name the threads with vcpus in the case file"
        )
    return joined


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


_ENTRY_COLUMNS = ("vm", "vcpu", "tid", "ts", "cpu", "observed", "predicted", "outcome")


def _entered(obs: pl.DataFrame, threads: pl.DataFrame) -> pl.DataFrame:
    """Every guest window of the capture: an entry the kernel let run."""
    windows = (
        obs.filter(pl.col("state").is_in(["guest", "fail_entry"]))
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
    )
    return _outcome(windows, {("entered", "entered")}).select(_ENTRY_COLUMNS)


def _check_failed(
    scenario: Scenario, host: HostPmus, vms: dict[str, list[int]], fails: pl.DataFrame
) -> pl.DataFrame:
    """The model's outcome of an entry on each pCPU that refused one (module docstring).

    The VM is configured the way :func:`replay.api.what_if` configures it, then each attempt
    is one ``vcpu_load`` (``kvm_arch_vcpu_load()``), ``guest_enter`` (the
    ``kvm_vcpu_exit_request()`` check) and ``vcpu_put``.
    """
    predicted: list[str] = []
    built = {name: build_vm(scenario, host, len(tids)) for name, tids in vms.items()}
    for vm, tid, cpu in fails.select("vm", "tid", "cpu").iter_rows():
        vcpu = built[vm].vcpus[vms[vm].index(tid)]
        vcpu.vcpu_load(cpu)
        outcome = vcpu.guest_enter()
        if outcome is ENTERED:
            vcpu.guest_exit()
        vcpu.vcpu_put()
        refused = isinstance(outcome, FailEntry) and outcome.cpu == cpu
        predicted.append("failed" if refused else "entered")
    rows = fails.with_columns(
        pl.lit("failed").alias("observed"), pl.Series("predicted", predicted, pl.Utf8)
    )
    return _outcome(rows, {("failed", "failed")}).select(_ENTRY_COLUMNS)
