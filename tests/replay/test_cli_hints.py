"""Help texts and error messages that send the user somewhere useful."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from replay.cli import build_parser, main
from replay.pmu import KernelSemantics, Quirks
from replay.results import META_FILE, TABLE_NAMES
from tests.conftest import FIXTURES

CAPTURE = FIXTURES / "captures" / "cross-cluster-migration.txt"
TOPOLOGY = str(FIXTURES / "topologies" / "two-cluster.json")


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_demo_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "demo")
    assert "``" not in text and "`pmu-replay record`" in text
    assert "--wide" in text
    # examples, each a command line the parser takes
    examples = [
        shlex.split(line.split("#")[0])[1:]
        for line in text.split("\nexamples:\n", 1)[1].splitlines()
        if line.strip().startswith("pmu-replay ")
    ]
    assert [e[0] for e in examples[:2]] == ["demo", "demo"]
    for argv in examples:
        build_parser().parse_args(argv)


@pytest.mark.parametrize("command", ["replay", "compare", "validate", "fleet"])
def test_path_option_says_what_the_path_is(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = " ".join(help_text(capsys, command).split())
    assert "--path {vectorized,reference} engine path: vectorized (fast:" in text
    assert "reference (steps the model through every event: slow," in text


def test_a_bad_profile_points_to_a_help_that_describes_the_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "counters": [{"idx": 0}]}))  # no event
    assert main(["replay", str(CAPTURE), "--topology", TOPOLOGY, "--profile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a valid guest profile" in err and "`pmu-replay replay --help`" in err
    text = help_text(capsys, "replay")
    assert "guest profile file (--profile FILE), JSON:" in text
    for key in ('"counters"', '"idx"', '"event"', '"rates"', '"el0_share"', '"tick_ns"'):
        assert key in text
    # the example in the help is itself a valid profile
    example = text.split("JSON:\n", 1)[1].split("\n  counters ", 1)[0]
    good = tmp_path / "good.json"
    good.write_text(example)
    args = ["replay", str(CAPTURE), "--topology", TOPOLOGY, "--profile", str(good), "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["summary"]


def test_pmu_cpus_the_capture_does_not_have_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["replay", str(CAPTURE), "--pmu", "a53=0-1", "--pmu", "a57=2-99"]
    assert main(args) == 6
    err = capsys.readouterr().err
    assert "--pmu a57=2-99: CPUs 4-99 are not in" in err and "has 4 CPUs (0-3)" in err


def test_view_of_a_results_directory_says_to_export_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "replay.json").write_text("{}")
    assert main(["view", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a results directory" in err and f"pmu-replay export {tmp_path}" in err
    assert "Is a directory" not in err
    assert main(["view", str(tmp_path / "..")]) == 2
    assert "is a directory: give a Perfetto trace file" in capsys.readouterr().err


def test_an_inferred_topology_s_frequency_is_the_highest_seen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # CPUs 2-3 get their first cpu_frequency event (1.5 GHz) after the capture starts
    lines = CAPTURE.read_text().splitlines(keepends=True)
    late = (
        "0.999999: cpu_frequency: state=2000000 cpu_id=2",
        "0.999999: cpu_frequency: state=2000000 cpu_id=3",
    )
    kept = [line for line in lines if not line.rstrip().endswith(late)]
    assert len(kept) == len(lines) - 2
    capture = tmp_path / "late-frequency.txt"
    capture.write_text("".join(kept))
    assert main(["replay", str(capture), "--scenario", "default@cpu0", "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert (
        "CPUs [2, 3]: no cpu_frequency event at the start; assumed 1500000 kHz (highest frequency seen in the capture)"
        in notes
    )
    assert not any("topology maximum" in n for n in notes)


def test_replay_help_lists_every_output_table_and_whole_scenario_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_text(capsys, "replay")
    outputs = text.split("outputs (-o DIR):", 1)[1].split("\n\n", 1)[0]
    assert all(f"{name}.parquet" in outputs for name in TABLE_NAMES) and META_FILE in outputs
    syntax = text.split("scenarios (", 1)[1].split("):\n", 1)[0]
    # every option spelled whole (an option cut at a wrap could not be copied), in 100 columns
    words = {word.strip(",;()") for word in syntax.split()}
    quirks = [name.replace("_", "-") for name in Quirks.__dataclass_fields__]
    assert {*quirks, *(k.value for k in KernelSemantics)} <= words
    assert max(map(len, text.splitlines())) <= 100
