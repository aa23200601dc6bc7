"""Fleet replay on Dask (issue 8 acceptance).

A fleet of >= 20 captures — the shared real text captures, this project's fixtures and demo
recording, and time-shifted variants of them made here — plus one corrupt file, replayed on a
local 2-worker cluster and on a separate `dask scheduler` + `dask worker` pair on loopback. The
fleet's results must equal the union of single-capture replays.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from dask.distributed import Client
from polars.testing import assert_frame_equal

from replay.api import open_capture, what_if
from replay.cli import main
from replay.fleet import (
    WORKER_CONFIG,
    Member,
    MemberResult,
    Settings,
    read_dataset,
    read_members,
    replay_member,
    run_fleet,
)
from replay.results import Results
from tests.conftest import FIXTURES
from tests.importers.textcap import shift_text
from tests.replay.export.fixture_results import CAPTURES

SCENARIOS = ("default@cpu0", "fixed-counters-only+v8", "no-pmu")


def shifted(src: Path, dst: Path, seconds: int) -> None:
    """A copy of a text capture with every timestamp moved by ``seconds``."""
    dst.write_text(shift_text(src.read_text(), seconds))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory, shared_traces: Path) -> Path:
    root = tmp_path_factory.mktemp("fleet")
    topo = FIXTURES / "topologies" / "two-cluster.json"
    rows = [
        (
            shared_traces / "juno-trace-txt/trace.txt",
            "juno",
            str(shared_traces / "juno-trace-txt/plat_info.yml"),
            "",
            "1706=vm0:0;8=vm0:1",
            "eu",
        ),
        (
            shared_traces / "kvm-x86-host-report-txt/host_report.txt",
            "x86-host",
            "",
            "lo=0-9;hi=10-19",
            "",
            "us",
        ),
        (
            FIXTURES / "demo" / "capture",
            "demo-host",
            str(FIXTURES / "demo" / "two-cluster-what-if.json"),
            "",
            "",
            "eu",
        ),
    ]
    for fixture in ("cross-cluster-migration", "migration-at-overflow"):
        for k in range(9):
            path = root / f"{fixture}-{k}.txt"
            shifted(FIXTURES / "captures" / f"{fixture}.txt", path, 10 * k)
            rows.append(
                (path, f"{fixture[:5]}-host-{k % 4}", str(topo), "", "", "eu" if k % 2 else "us")
            )
    corrupt = root / "corrupt.dat"
    corrupt.write_bytes(b"\x17\x08Dtracing6\x00" + os.urandom(64))
    rows.append((corrupt, "broken-host", "", "", "", "us"))
    rows = [(str(r[0]), *(v or None for v in r[1:])) for r in rows]
    frame = pl.DataFrame(
        rows, schema=["path", "host", "topology", "pmus", "vcpus", "region"], orient="row"
    )
    out = root / "manifest.csv"
    frame.write_csv(out)
    return out


def single(members: list[Member], settings: Settings) -> pl.DataFrame:
    """The union of single-capture replays, done in this process."""
    parts = []
    for m in members:
        result = replay_member(m, settings)
        if result.summary is not None:
            parts.append(result.summary)
    return pl.concat(parts, how="diagonal_relaxed")


def _norm(frame: pl.DataFrame) -> pl.DataFrame:
    cols = sorted(c for c in frame.columns if c != "input_sha256")
    return frame.select(pl.col(c).cast(pl.Utf8) for c in cols).sort(cols)


@pytest.mark.slow
def test_local_cluster_fleet_equals_single_replays(manifest: Path, tmp_path: Path) -> None:
    members = read_members(manifest)
    assert len(members) >= 20
    settings = Settings("windows", SCENARIOS)
    fleet = run_fleet(members, settings, tmp_path / "out", workers=2)
    assert fleet.failures["path"].to_list() == [str(manifest.parent / "corrupt.dat")]
    assert "CaptureFormatError" in fleet.failures["error_type"].to_list()
    summary = read_dataset(tmp_path / "out", "summary")
    expected = single(members, settings)
    assert_frame_equal(_norm(summary), _norm(expected))
    assert set(summary["scenario"].unique()) == set(SCENARIOS)
    findings = read_dataset(tmp_path / "out", "findings")
    assert findings.filter(pl.col("kind") == "stall")["host"].n_unique() > 5
    # a rerun skips everything; other settings replay again
    again = run_fleet(members, settings, tmp_path / "out", workers=2)
    assert again.done == [] and len(again.skipped) == len(members)
    other = Settings("windows", ("fixed-counters-only",))
    redone = run_fleet(members, other, tmp_path / "out", workers=2)
    assert len(redone.done) == len(members) and redone.skipped == []


@pytest.mark.slow
def test_cli_fleet_with_separate_scheduler_and_workers(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dask = shutil.which("dask")
    if dask is None:
        pytest.skip("the dask CLI is not installed")
    env = {**os.environ, "DASK_CONFIG": str(WORKER_CONFIG.parent)}
    sched_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [
            dask,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(sched_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.2)
        import json

        address = json.loads(sched_file.read_text())["address"]
        worker = subprocess.Popen(
            [
                dask,
                "worker",
                "--scheduler-file",
                str(sched_file),
                "--nworkers",
                "2",
                "--nthreads",
                "1",
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        code = main(
            [
                "fleet",
                str(manifest),
                "-o",
                str(tmp_path / "out"),
                "--scheduler",
                address,
                "--json",
                *[a for s in SCENARIOS for a in ("--scenario", s)],
            ]
        )
        assert code == 0
        import json as _json

        out = _json.loads(capsys.readouterr().out)
        assert out["replayed"] == out["captures"] >= 20 and len(out["failures"]) == 1
        expected = single(read_members(manifest), Settings("windows", SCENARIOS))
        assert_frame_equal(_norm(read_dataset(tmp_path / "out", "summary")), _norm(expected))
        # the documented worker configuration took effect in the external workers
        with Client(address) as client:
            assert set(client.run(pl.thread_pool_size).values()) == {1}
            assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.mark.slow
def test_fleet_summary_equals_the_cli_compare_of_each_capture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Dask fleet (compare matrix, two workers) and ``pmu-replay compare`` run on each
    capture give the same summary rows, capture by capture."""
    topo = FIXTURES / "topologies" / "two-cluster.json"
    captures = [FIXTURES / "captures" / f"{name}.txt" for name in CAPTURES]
    shifted(captures[0], tmp_path / "later.txt", 30)
    captures.append(tmp_path / "later.txt")
    frame = pl.DataFrame(
        {
            "path": [str(c) for c in captures],
            "host": [f"host-{k}" for k in range(len(captures))],
            "topology": [str(topo)] * len(captures),
        }
    )
    frame.write_csv(tmp_path / "manifest.csv")
    fleet = run_fleet(
        read_members(tmp_path / "manifest.csv"), Settings(), tmp_path / "fleet", workers=2
    )
    assert fleet.failures.is_empty()
    summary = read_dataset(tmp_path / "fleet", "summary")
    for k, capture in enumerate(captures):
        out = tmp_path / f"compare-{k}"
        assert main(["compare", str(capture), "--topology", str(topo), "-o", str(out)]) == 0
        capsys.readouterr()
        cli = Results.load(out).summary
        mine = summary.filter(pl.col("host") == f"host-{k}").select(cli.columns)
        assert mine.height == cli.height > 0
        assert_frame_equal(_norm(mine), _norm(cli))


def _dies_first_time(member: Member, settings: Settings) -> MemberResult:
    marker = Path(member.path + ".died")
    if not marker.exists():
        marker.write_text("x")
        os._exit(1)  # the worker process dies mid-task
    return replay_member(member, settings)


def _always_dies(member: Member, settings: Settings) -> MemberResult:
    os._exit(1)


@pytest.mark.slow
def test_dead_worker_is_retried_once(tmp_path: Path) -> None:
    capture = tmp_path / "c.txt"
    shutil.copy(FIXTURES / "captures" / "cross-cluster-migration.txt", capture)
    member = Member(str(capture), "h", topology=str(FIXTURES / "topologies" / "two-cluster.json"))
    settings = Settings("windows", ("fixed-counters-only",))
    fleet = run_fleet([member], settings, tmp_path / "a", workers=1, task=_dies_first_time)
    assert fleet.failures.is_empty() and len(fleet.done) == 1
    doomed = run_fleet([member], settings, tmp_path / "b", workers=1, task=_always_dies)
    assert doomed.failures.height == 1 and "KilledWorker" in doomed.failures["error"][0]


@pytest.mark.slow
def test_local_workers_run_polars_single_threaded(tmp_path: Path) -> None:
    # a main module that imports polars first, as the CLI does: spawned workers re-import it
    script = tmp_path / "probe.py"
    script.write_text(
        "import os\n"
        "import polars\n"
        "from replay.fleet import dask_client\n"
        "if __name__ == '__main__':\n"
        "    with dask_client(None, None, 2) as client:\n"
        "        print(sorted(client.run(polars.thread_pool_size).values()))\n"
        "        trim = client.run(os.environ.get, 'MALLOC_TRIM_THRESHOLD_')\n"
        "        print(sorted(map(str, trim.values())))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    # one polars thread per worker; glibc's malloc left dynamic (Dask's default trim threshold
    # made the replay ~50% slower)
    assert run.stdout.split("\n")[:2] == ["[1, 1]", "['None', 'None']"]


def test_manifest_and_directory_sources(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("y")
    assert [m.host for m in read_members(tmp_path)] == ["a", "b"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,host,rack\na.txt,h1,r7\n")
    (member,) = read_members(manifest)
    assert (member.path, member.host, member.extra) == (
        str(tmp_path / "a.txt"),
        "h1",
        {"rack": "r7"},
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx\n")
    with pytest.raises(Exception, match="'path' column"):
        read_members(bad)
    cap = open_capture(
        FIXTURES / "captures" / "cross-cluster-migration.txt",
        topology=FIXTURES / "topologies" / "two-cluster.json",
    )
    assert what_if(cap, ["fixed-counters-only"]).summary.height == 2
