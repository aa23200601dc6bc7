"""Fleet replay: many captures on Dask distributed, results as one partitioned Parquet dataset.

Each capture (a *member*) is replayed by a pure function :func:`replay_member` — path, host
description and settings in, Arrow tables out — mapped over a Dask cluster with the futures API
(``perfetto-and-scale.md`` §2.6): a local cluster sized to the machine by default, or an
existing one through ``scheduler="tcp://HOST:PORT"``. Workers pin polars to one thread each
(``POLARS_MAX_THREADS=1``) so N workers do not oversubscribe N cores. A member that fails to
import or replay becomes a row of ``failures``; a worker that dies is retried once.

Output directory::

    findings/scenario=<s>/host=<h>/<key>.parquet    stall episodes, failed entries, unknown time
    summary/scenario=<s>/host=<h>/<key>.parquet     one row per scenario and vCPU
    members.parquet   every member: path, host, input sha256, status, events, metadata columns
    failures.parquet  members that failed, with the error
    fleet.json        settings

``<key>`` is the member's input sha256 plus the settings hash: rerunning with the same settings
skips members whose results are there (resumable); changed settings replay everything.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from importers.capture import sha256_of
from importers.errors import PmuReplayError, UsageError
from importers.output import whole_file
from replay.summary import NS_PER_HOUR

PARTITIONS = ("scenario", "host")
#: Dask configuration of replay workers: point ``DASK_CONFIG`` at its folder for ``dask worker``.
WORKER_CONFIG = Path(__file__).parent / "dask_config" / "pmu-replay.yml"
MANIFEST_COLUMNS = ("path", "host", "topology", "pmus", "vcpus")
WORKER_PRELOAD = "replay.fleet_worker"


@dataclass(frozen=True)
class Member:
    """One capture of the fleet and how to read it.

    ``pmus``/``vcpus`` are ``;``-separated ``--pmu``/``--vcpu`` values; ``extra`` carries the
    manifest's other columns (region, host model, ...) into every result row.
    """

    path: str
    host: str
    topology: str | None = None
    pmus: str | None = None
    vcpus: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    sha256: str = ""


@dataclass(frozen=True)
class Settings:
    """What every member is replayed with (part of the resume key)."""

    profile: str = "windows"
    scenarios: tuple[str, ...] | None = None  # None: the compare matrix of each host
    path: str = "vectorized"

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class MemberResult:
    """What :func:`replay_member` returns: tables, or the error that stopped the member."""

    member: Member
    findings: pl.DataFrame | None = None
    summary: pl.DataFrame | None = None
    events: int = 0
    error: str | None = None
    error_type: str | None = None


def replay_member(member: Member, settings: Settings) -> MemberResult:
    """Import and replay one capture; errors of bad input become part of the result.

    Pure: reads the member's files, returns tables; the driver writes them.
    """
    from replay.api import open_capture, what_if

    try:
        capture = open_capture(
            member.path,
            topology=member.topology,
            pmus=_split(member.pmus),
            vcpus=_split(member.vcpus),
        )
        results = what_if(
            capture,
            list(settings.scenarios) if settings.scenarios else None,
            profile=settings.profile,
            path="reference" if settings.path == "reference" else "vectorized",
            keep_observations=False,  # a member's result is its findings and summary
        )
    except PmuReplayError as exc:
        return MemberResult(member, error=str(exc), error_type=type(exc).__name__)
    labels = {
        "capture": member.path,
        "host": member.host,
        "input_sha256": member.sha256,
        **member.extra,
    }
    tag = [pl.lit(v, pl.Utf8).alias(k) for k, v in labels.items()]
    events = sum(capture.event_counts().values())
    return MemberResult(
        member,
        findings=results.findings.with_columns(tag),
        summary=results.summary.with_columns(tag),
        events=events,
    )


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(";") if s.strip()]


def read_members(source: str | Path) -> list[Member]:
    """Members from a manifest (CSV/Parquet), a directory of captures, or a glob.

    In a directory, every capture file and capture directory at the top level is a member;
    ``host`` is then the file's stem. Files that are not captures are skipped later as failures
    (with the reason), not silently.
    """
    src = Path(source)
    if src.is_file() and src.suffix in (".csv", ".parquet"):
        table = (
            pl.read_csv(src, infer_schema=False) if src.suffix == ".csv" else pl.read_parquet(src)
        )
        if "path" not in table.columns:
            raise UsageError(
                f"{src}: a fleet manifest needs a 'path' column (optional: "
                f"{', '.join(MANIFEST_COLUMNS[1:])})"
            )
        base = src.parent
        members = []
        for row in table.with_columns(pl.all().cast(pl.Utf8)).iter_rows(named=True):
            path = row["path"] if os.path.isabs(row["path"]) else str(base / row["path"])
            topo = row.get("topology")
            extra = {k: v for k, v in row.items() if k not in MANIFEST_COLUMNS and v is not None}
            members.append(
                Member(
                    path=path,
                    host=row.get("host") or Path(path).stem,
                    topology=(topo if topo is None or os.path.isabs(topo) else str(base / topo)),
                    pmus=row.get("pmus"),
                    vcpus=row.get("vcpus"),
                    extra=extra,
                )
            )
        return members
    if src.is_dir():
        paths = sorted(str(p) for p in src.iterdir() if not p.name.startswith("."))
    else:
        paths = sorted(glob.glob(str(source)))
    if not paths:
        raise UsageError(
            f"{source}: no captures (give a directory, a glob or a manifest .csv/.parquet)"
        )
    return [Member(path=p, host=Path(p).stem) for p in paths]


def with_hashes(members: Iterable[Member]) -> list[Member]:
    """Members with the sha256 of their input (a directory: of its files, in name order)."""
    out = []
    for m in members:
        p = Path(m.path)
        if p.is_dir():
            h = hashlib.sha256()
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                h.update(f.relative_to(p).as_posix().encode())
                h.update(sha256_of(f).encode())
            digest = h.hexdigest()
        elif p.is_file():
            digest = sha256_of(p)
        else:
            digest = "missing:" + hashlib.sha256(m.path.encode()).hexdigest()
        out.append(Member(**{**asdict(m), "sha256": digest}))
    return out


def member_key(member: Member, settings: Settings) -> str:
    return f"{member.sha256[:24]}-{settings.key()}"


@dataclass
class FleetRun:
    """Outcome of :func:`run_fleet`."""

    output: Path
    done: list[MemberResult]
    skipped: list[Member]
    failures: pl.DataFrame


def run_fleet(
    members: list[Member],
    settings: Settings,
    output: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Any = None,
    on_done: Callable[[MemberResult], None] | None = None,
    task: Callable[[Member, Settings], MemberResult] = replay_member,
) -> FleetRun:
    """Replay every member on Dask and write the dataset (see module docstring).

    ``client`` is an existing Dask client to use as is; ``task`` the per-member function
    (:func:`replay_member`; tests wrap it to kill workers).
    """
    from dask.distributed import as_completed

    output.mkdir(parents=True, exist_ok=True)
    members = with_hashes(members)
    todo = [
        m for m in members if not (output / "done" / f"{member_key(m, settings)}.json").exists()
    ]
    skipped = [m for m in members if m not in todo]
    results: list[MemberResult] = []
    if todo:
        with dask_client(client, scheduler, workers) as connected:
            futures = connected.map(task, todo, settings=settings, pure=False, retries=1)
            by_key = {f.key: m for f, m in zip(futures, todo, strict=True)}
            for future in as_completed(futures):
                try:
                    result: MemberResult = future.result()
                except Exception as exc:  # the worker died twice, or the task itself crashed
                    result = MemberResult(
                        by_key[future.key],
                        error=f"replay task failed: {exc!r}",
                        error_type=type(exc).__name__,
                    )
                _write_member(output, result, settings)
                results.append(result)
                if on_done:
                    on_done(result)
    _write_index(output, members, settings)
    failures = read_failures(output)
    return FleetRun(output, results, skipped, failures)


@contextmanager
def dask_client(client: Any, scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """The given client, one connected to ``scheduler``, or a local cluster sized to the host."""
    import dask
    from dask.distributed import Client, LocalCluster

    if client is not None:
        yield client
        return
    if scheduler:
        with Client(scheduler) as remote:
            # takes effect in workers that have not imported polars yet; external workers
            # should start with WORKER_CONFIG to be sure
            remote.run(os.environ.__setitem__, "POLARS_MAX_THREADS", "1")
            yield remote
        return
    # our own workers get the environment external ones are told to start with (see the file)
    section = "distributed.nanny.pre-spawn-environ"
    environ = yaml.safe_load(WORKER_CONFIG.read_text())["distributed"]["nanny"]["pre-spawn-environ"]
    with dask.config.set({f"{section}.{name}": value for name, value in environ.items()}):
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            preload=[WORKER_PRELOAD],  # workers leave Ctrl-C to this driver
        )
    with cluster, Client(cluster) as local:
        yield local


def _write_member(output: Path, result: MemberResult, settings: Settings) -> None:
    """The member's partition files, then its ``done`` record: each file appears whole
    (:func:`importers.output.whole_file`), and :func:`read_dataset` reads a member's files
    only once its record is there, so a member is in the dataset whole or not at all."""
    key = member_key(result.member, settings)
    if result.error is None:
        for name in ("findings", "summary"):
            table: pl.DataFrame = getattr(result, name)
            for (scenario, host), part in table.group_by(*PARTITIONS, maintain_order=True):
                folder = output / name / f"scenario={_safe(scenario)}" / f"host={_safe(host)}"
                with whole_file(folder / f"{key}.parquet") as tmp:
                    part.drop(*PARTITIONS).write_parquet(tmp, compression="zstd")
    record = {
        "member": asdict(result.member),
        "events": result.events,
        "error": result.error,
        "error_type": result.error_type,
    }
    with whole_file(output / "done" / f"{key}.json") as tmp:
        tmp.write_text(json.dumps(record, sort_keys=True) + "\n")


def _safe(value: object) -> str:
    return str(value).replace("/", "_").replace("=", "_")


def _write_index(output: Path, members: list[Member], settings: Settings) -> None:
    rows = []
    for m in members:
        rec = json.loads((output / "done" / f"{member_key(m, settings)}.json").read_text())
        rows.append(
            {
                "path": m.path,
                "host": m.host,
                "input_sha256": m.sha256,
                "status": "failed" if rec["error"] else "ok",
                "events": rec["events"],
                "error_type": rec["error_type"],
                "error": rec["error"],
                **m.extra,
            }
        )
    members_table = pl.DataFrame(rows, infer_schema_length=None)
    with whole_file(output / "members.parquet") as tmp:
        members_table.write_parquet(tmp)
    with whole_file(output / "failures.parquet") as tmp:
        members_table.filter(pl.col("status") == "failed").write_parquet(tmp)
    with whole_file(output / "fleet.json") as tmp:
        tmp.write_text(json.dumps(asdict(settings), indent=2, sort_keys=True) + "\n")


def read_dataset(output: Path, name: str) -> pl.DataFrame:
    """One of the partitioned tables (``findings`` or ``summary``) of a fleet run: the files
    of members whose ``done`` record is written (a run killed mid-member left the others)."""
    done = {p.stem for p in (output / "done").glob("*.json")}
    files = sorted(p for p in (output / name).rglob("*.parquet") if p.stem in done)
    if not files:
        return pl.DataFrame()
    return pl.read_parquet(files, hive_partitioning=True)


def read_failures(output: Path) -> pl.DataFrame:
    return pl.read_parquet(output / "failures.parquet")


def fleet_summary(summary: pl.DataFrame) -> pl.DataFrame:
    """Per scenario: guest-hours, stalled guest-hours, risky ticks per guest-hour,
    fail-entries, hosts affected (any stall, risky tick or failed entry)."""
    if summary.is_empty():
        return summary
    affected = (
        (pl.col("stalled_ns") > 0)
        | (pl.col("risky_ticks").fill_null(0) > 0)
        | (pl.col("fail_entries") > 0)
    )
    per_host = summary.group_by("scenario", "host").agg(affected.any().alias("affected"))
    return (
        summary.group_by("scenario")
        .agg(
            (pl.col("guest_ns").sum() / NS_PER_HOUR).alias("guest_hours"),
            (pl.col("stalled_ns").sum() / NS_PER_HOUR).alias("stalled_guest_hours"),
            pl.col("risky_ticks").sum().alias("risky_ticks"),
            pl.col("fail_entries").sum(),
            pl.col("host").n_unique().alias("hosts"),
            pl.len().alias("vcpus"),
        )
        .join(
            per_host.group_by("scenario").agg(pl.col("affected").sum().alias("hosts_affected")),
            on="scenario",
        )
        .with_columns(
            (pl.col("risky_ticks") / pl.col("guest_hours"))
            .fill_nan(0.0)
            .alias("risky_ticks_per_guest_hour")
        )
        .sort("stalled_guest_hours", "scenario")
    )
