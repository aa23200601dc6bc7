"""The host as it really is, end to end: the hand-written fixture captures replayed on hosts
described by sysfs snapshots, with the kernel consequences of their PMU facts (spec §1.1, §1.5,
§2.2, §2.4, §5.6) checked in observations, findings, replay.json, the terminal and Perfetto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from replay.api import open_capture, prepare_replay, what_if
from replay.cli import main
from replay.compare import scenario_matrix
from replay.engine import replay
from replay.export.tracks import ROOT_NAME
from replay.host_report import host_lines
from replay.scenarios import Mode, Scenario, build_vm
from tests.conftest import FIXTURES
from tests.replay.export.decode import read_trace, track_names

A53, A55, A76 = 0x410F_D034, 0x412F_D050, 0x414F_D0B1
ICESTORM, FIRESTORM = 0x611F_0220, 0x611F_0230
CAPTURES = FIXTURES / "captures"


def _topology(tmp_path: Path, devices: dict[str, str], midr: dict[int, int], **extra: Any) -> Path:
    """The fixtures' 4-CPU host (two clusters, 1 GHz and 2 GHz), with these PMUs and MIDRs."""
    data = json.loads((FIXTURES / "topologies" / "two-cluster.json").read_text())
    data["event_source_devices"] = {
        name: {"type": str(8 + i), "cpus": cpus} for i, (name, cpus) in enumerate(devices.items())
    }
    data["midr_el1"] = {str(cpu): hex(value) for cpu, value in midr.items()}
    data.update(extra)
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(data))
    return path


def _profile(tmp_path: Path, event_counters: int) -> Path:
    """A guest pinning the cycle counter and ``event_counters`` INST_RETIRED event counters."""
    counters = [{"idx": 31, "event": "0x11", "name": "cycles"}]
    counters += [{"idx": i, "event": "0x08", "name": f"inst{i}"} for i in range(event_counters)]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"name": "pin", "counters": counters, "rates": {"0x08": 1.0}}))
    return path


def test_a55_a76_host_is_described_from_its_midrs(tmp_path: Path) -> None:
    midr = {0: A55, 1: A55, 2: A76, 3: A76}
    topo = _topology(tmp_path, {"armv8_cortex_a55": "0-1", "armv8_cortex_a76": "2-3"}, midr)
    cap = open_capture(CAPTURES / "cross-cluster-migration.txt", topology=topo)
    results = what_if(cap, ["default@cpu0"])
    host = results.meta["host"]
    assert host["vpmu_offered"] and host["kvm"]["guest_pmuver"] == "3.1"
    assert host["kvm"]["max_counters"] == {"armv8_cortex_a55": 6, "armv8_cortex_a76": 6}
    rows = [
        (p["name"], p["cpus"], p["core"], p["pmuver"], p["counters"], p["aarch32_el0"])
        for p in host["pmus"]
    ]
    assert rows == [
        ("armv8_cortex_a55", "0-1", "Cortex-A55", "3.1", 6, True),
        ("armv8_cortex_a76", "2-3", "Cortex-A76", "3.1", 6, True),
    ]
    assert host_lines(host) == [
        "host: vPMU offered, guest PMUv3p1, 32-bit event counters",
        "  armv8_cortex_a55 (CPUs 0-1, Cortex-A55): PMUv3p1, 6 counters, AArch32 EL0 "
        "(assumed: common events)",
        "  armv8_cortex_a76 (CPUs 2-3, Cortex-A76): PMUv3p1, 6 counters, AArch32 EL0 "
        "(assumed: common events)",
    ]
    # every fact that can be assumed is worded, none shows as its JSON key
    unknown = {**host["pmus"][0], "assumed": sorted(host["pmus"][0]["source"])}
    (line,) = host_lines({**host, "pmus": [unknown]})[1:]
    assert line.endswith(
        "(assumed: AArch32 EL0, core, counter count, common events, PMU version)"
    ), line
    for p in host["pmus"]:
        assert "MIDR_EL1" in p["source"]["core"]
        assert p["source"]["pmuver"].startswith(f"catalogue, {p['core']}: ")
        assert p["assumed"] == ["events"]


def test_different_pmu_versions_mean_no_vpmu_in_every_mainline_scenario(tmp_path: Path) -> None:
    """Cortex-A53 (PMUv3) and Cortex-A55 (PMUv3p1): the sanitised PMUVer is 0, KVM registers no
    PMU, and whatever the VMM asks for, the guest has no vPMU."""
    midr = {0: A53, 1: A53, 2: A55, 3: A55}
    topo = _topology(tmp_path, {"armv8_cortex_a53": "0-1", "armv8_cortex_a55": "2-3"}, midr)
    cap = open_capture(CAPTURES / "cross-cluster-migration.txt", topology=topo)
    work = prepare_replay(cap, "windows")
    matrix = scenario_matrix(work.host)
    assert [s.name for s in matrix] == [
        "default@cpu0",
        "default@cpu2",
        "set-pmu:armv8_cortex_a53",
        "set-pmu:armv8_cortex_a55",
        "fixed-counters-only+v8",
        "no-pmu",
    ]
    results = what_if(cap, matrix, work=work)
    guest = results.observations.filter(pl.col("state") == "guest")
    assert set(guest["scenario"]) == {s.name for s in matrix}
    assert set(guest["reason"]) == {"no_vpmu_offered"}
    assert guest["value"].null_count() == guest.height
    assert results.findings.filter(pl.col("kind") == "stall").is_empty()
    assert set(results.summary["lost_counters"]) == {"cycles"}
    host = results.meta["host"]
    assert not host["vpmu_offered"] and "disagree on PMUVer" in host["why_not"]
    assert results.meta["recommendation"].startswith("This host offers no vPMU (the CPUs disagree")


def test_an_apple_m1_host_gives_one_event_counter(tmp_path: Path) -> None:
    midr = {0: ICESTORM, 1: ICESTORM, 2: FIRESTORM, 3: FIRESTORM}
    topo = _topology(tmp_path, {"apple_icestorm_pmu": "0-1", "apple_firestorm_pmu": "2-3"}, midr)
    cap = open_capture(CAPTURES / "cross-cluster-migration.txt", topology=topo)
    results = what_if(cap, ["default@cpu0"], profile=str(_profile(tmp_path, 2)))
    kvm = results.meta["host"]["kvm"]
    # PMUVer IMPDEF on every CPU and Apple MIDRs: the trap workaround, PMUv3 IMP, N = 1.
    assert results.meta["host"]["vpmu_offered"] and kvm["impdef_traps"]
    assert kvm["guest_pmuver"] == "3.0"
    assert kvm["max_counters"] == {"apple_icestorm_pmu": 1, "apple_firestorm_pmu": 1}
    assert set(results.summary["lost_counters"]) == {"inst1"}  # only PMEVCNTR0 exists
    # Apple publishes no TRM: the catalogue leaves AArch32 EL0 unconfirmed, and the output says
    # the value used is assumed.
    assert results.meta["host"]["pmus"][0]["assumed"] == ["aarch32_el0"]


def test_on_pmuv3p5_an_event_counter_reads_its_64_bit_value(tmp_path: Path) -> None:
    """``kvm_pmc_is_64bit()``: event counters are 64-bit when the VM has PMUv3p5, so the 2^32 +
    704 instructions of migration-at-overflow no longer wrap to 704."""
    pmus = {"armv8_cortex_a53": "0-1", "armv8_cortex_a72": "2-3"}
    stated = {name: {"pmuver": "3.5"} for name in pmus}
    topo = _topology(tmp_path, pmus, {}, pmus=stated)
    cap = open_capture(CAPTURES / "migration-at-overflow.txt", topology=topo)
    work = prepare_replay(cap, "linux-perf")
    for path in ("reference", "vectorized"):
        obs = replay(work, Scenario(Mode.DEFAULT, init_cpu=2), path).observations
        instructions = obs.filter(pl.col("counter") == 0).sort("start")
        assert instructions["value"].to_list() == [(1 << 32) + 704] * 2
        assert instructions["delta"].to_list() == [(1 << 32) + 704, 0]
    host = what_if(cap, ["default@cpu2"], work=work).meta["host"]
    assert host["kvm"]["guest_pmuver"] == "3.5" and host["kvm"]["guest_event_counters_64bit"]
    assert host_lines(host)[0] == "host: vPMU offered, guest PMUv3p5, 64-bit event counters"


def test_one_pmu_without_aarch32_el0_makes_pmcr_lc_res1(tmp_path: Path) -> None:
    """``kvm_supports_32bit_el0()`` needs AArch32 EL0 on every CPU; without it the cycle
    counter's LC bit is RES1 (``reset_pmcr()``)."""
    devices = {"armv8_cortex_a53": "0-1", "armv8_cortex_a72": "2-3"}
    stated = {"armv8_cortex_a72": {"aarch32_el0": False}}
    topo = _topology(tmp_path, devices, {}, pmus=stated)
    cap = open_capture(CAPTURES / "cross-cluster-migration.txt", topology=topo)
    work = prepare_replay(cap, "windows")
    host = what_if(cap, ["default@cpu0"], work=work).meta["host"]
    assert host["kvm"]["pmcr_lc_res1"]
    assert host_lines(host)[0].endswith("32-bit event counters, PMCR_EL0.LC RES1")
    vcpu = build_vm(Scenario(), work.host).vcpus[0]  # just reset: LC is all that is set
    assert vcpu.get_one_reg("PMCR_EL0")[1] & 0xFF == 1 << 6


@pytest.mark.parametrize(
    ("kernel", "stalled"),
    [
        # v8+: the events stay as the guest created them, the cycle counter's first; PMEVCNTR5's
        # event, created last, finds no counter on the big cluster and stays in error.
        ("v8", {5}),
        # v4: each visit to the little cluster makes kvm_vcpu_load_pmu() request a reload that
        # recreates every event (ascending index, so the cycle counter's last); back on the
        # big cluster PMEVCNTR5's event fails first, and nothing after it goes on.
        ("v4", {5, 31}),
    ],
)
def test_a_reserved_counter_stalls_the_pinned_event_that_finds_none(
    tmp_path: Path, kernel: str, stalled: set[int]
) -> None:
    """One counter held by the host on every CPU, a guest pinning the cycle counter and all
    six event counters: seven events for six general counters and PMCCNTR."""
    devices = {"armv8_cortex_a53": "0-1", "armv8_cortex_a72": "2-3"}
    profile = str(_profile(tmp_path, 6))
    scenario = Scenario(Mode.SET_PMU, kernel=kernel, set_pmu="armv8_cortex_a72")  # type: ignore[arg-type]
    found = {}
    for held in ([], ["0-3=1"]):
        cap = open_capture(
            CAPTURES / "cross-cluster-migration.txt",
            topology=_topology(tmp_path, devices, {}),
            reserved_counters=held,
        )
        work = prepare_replay(cap, profile)
        ref = replay(work, scenario, "reference")
        vec = replay(work, scenario, "vectorized")
        assert_frame_equal(ref.observations, vec.observations)
        found[bool(held)] = what_if(cap, [scenario], work=work)
    assert found[False].findings.filter(pl.col("kind") == "stall").is_empty()
    stalls = found[True].findings.filter(pl.col("kind") == "stall")
    assert set(stalls["counter"]) == stalled
    assert set(stalls["cpu"]) == {2, 3}
    assert all(c.startswith("host counter contention") for c in stalls["cause"])
    obs = found[True].observations.filter((pl.col("state") == "guest") & (pl.col("counter") == 5))
    assert set(obs["reason"]) == {"counter_contention"}
    assert found[True].meta["host"]["reserved_counters"] == {"0-3": "1"}
    assert any("stepped on the reference path" in n for n in found[True].meta["notes"])


def test_host_facts_show_in_compare_output_and_perfetto_track_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    midr = {0: A53, 1: A53, 2: A55, 3: A55}
    topo = _topology(
        tmp_path,
        {"armv8_cortex_a53": "0-1", "armv8_cortex_a55": "2-3"},
        midr,
        host_reserved_counters={"0-3": "cycles"},
    )
    trace = tmp_path / "cmp.perfetto-trace"
    argv = ["compare", str(CAPTURES / "cross-cluster-migration.txt"), "--topology", str(topo)]
    assert main([*argv, "--perfetto", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "host: no vPMU offered: the CPUs disagree on PMUVer" in out
    assert "armv8_cortex_a53 (CPUs 0-1, Cortex-A53): PMUv3, 6 counters, AArch32 EL0" in out
    assert "armv8_cortex_a55 (CPUs 2-3, Cortex-A55): PMUv3p1, 6 counters, AArch32 EL0" in out
    assert "reserved by host pinned events on CPUs 0-3: cycles" in out
    names = set(track_names(read_trace(trace)).values())
    # the host group sits under the trace's one top-level group
    top = f"{ROOT_NAME}/host: no vPMU offered"
    (head,) = [n for n in names if n.startswith(top) and n.count("/") == 1]
    assert (
        f"{head}/armv8_cortex_a55 (CPUs 2-3, Cortex-A55): PMUv3p1, 6 counters, AArch32 EL0 "
        "(assumed: common events)" in names
    )
    assert f"{head}/reserved by host pinned events on CPUs 0-3: cycles" in names
    assert main([*argv, "--json", "--host-reserved-counters", "0-1=2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["host"]["pmus"][1]["pmuver"] == "3.1"
    # the option states CPUs 0-1 anew; CPUs 2-3 keep what the topology file says
    assert printed["host"]["reserved_counters"] == {"0-1": "2", "2-3": "cycles"}
