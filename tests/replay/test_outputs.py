"""Results directories are whole when they appear: every file of a run that belongs in one is
in it when it is renamed into place, none added after (importers.output.whole_directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

import importers.output
from replay.cli import main
from tests.conftest import FIXTURES

CAPTURE = FIXTURES / "captures" / "cross-cluster-migration.txt"
TOPOLOGY = FIXTURES / "topologies" / "two-cluster.json"


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def at_swap(monkeypatch: pytest.MonkeyPatch) -> dict[Path, list[str]]:
    """final directory -> the files it had when it was renamed into place."""
    seen: dict[Path, list[str]] = {}
    swap_in = importers.output._swap_in

    def recording(tmp: Path, out: Path) -> None:
        seen[out] = files(tmp)
        swap_in(tmp, out)

    monkeypatch.setattr(importers.output, "_swap_in", recording)
    return seen


@pytest.mark.slow
def test_demo_writes_nothing_after_its_directory_is_in_place(
    tmp_path: Path, at_swap: dict[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    assert {"demo.perfetto-trace", "report.html", "replay.json"} <= set(files(out))
    assert at_swap == {out: files(out)}
    text = capsys.readouterr().out
    # what was written is named where it is, not where it was written from
    assert (
        f"wrote {out / 'demo.perfetto-trace'}: " in text
        and f"wrote {out / 'report.html'} (" in text
    )
    assert ".partial" not in text


def test_replay_writes_a_trace_and_report_inside_its_directory_in_the_same_step(
    tmp_path: Path, at_swap: dict[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, beside = tmp_path / "cmp", tmp_path / "beside.perfetto-trace"
    argv = ["replay", str(CAPTURE), "--topology", str(TOPOLOGY), "-o", str(out)]
    argv += ["--perfetto", str(out / "traces" / "t.perfetto-trace"), "--html", str(out / "r.html")]
    assert main(argv) == 0
    assert {"traces/t.perfetto-trace", "r.html", "replay.json"} <= set(files(out))
    assert at_swap == {out: files(out)}
    # a trace asked for elsewhere is a whole file of its own, written after the directory
    assert main([*argv[:6], "--perfetto", str(beside)]) == 0
    assert beside.is_file() and at_swap == {out: files(out)}
    assert "traces/t.perfetto-trace" not in files(out)  # replaced as a whole
    assert ".partial" not in capsys.readouterr().out
