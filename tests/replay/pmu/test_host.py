"""Host PMUs: registration order, coverage, sanitised PMU version, validation (spec §1.1, §5.3)."""

from __future__ import annotations

import pytest

from importers.errors import TopologyError
from replay.pmu import (
    DEFAULT_NUM_COUNTERS,
    DEFAULT_PMCEID,
    DEFAULT_PMUVER,
    HostPmu,
    HostPmus,
    PmuVer,
)
from replay.scenarios import Scenario, build_vm


def test_from_topology_registers_pmus_in_cpu_order_with_defaults() -> None:
    host = HostPmus.from_topology({3: "big", 0: "little", 1: "little", 2: "big", 4: None})
    assert [p.name for p in host.pmus] == ["little", "big"]
    assert [p.perf_type for p in host.pmus] == [8, 9]
    assert host.pmus[1].cpus == frozenset({2, 3})
    assert (host.pmus[0].num_counters, host.pmus[0].pmuver, host.pmus[0].pmceid) == (
        DEFAULT_NUM_COUNTERS,
        DEFAULT_PMUVER,
        DEFAULT_PMCEID,
    )
    assert host.possible_cpus == frozenset(range(5))
    assert host.probe_armpmu(4) is None  # PMUv3 CPU without a registered PMU
    assert host.supports_guest_pmuv3()
    typed = HostPmus.from_topology({0: "a", 1: "b"}, perf_types={"b": 42})
    assert typed.by_type(42) is typed.by_name("b")


def test_probe_returns_the_first_registered_pmu_covering_the_cpu() -> None:
    first = HostPmu("first", 8, frozenset({0, 1}))
    second = HostPmu("second", 9, frozenset({1, 2}))
    host = HostPmus([first, second])
    assert [host.probe_armpmu(c) for c in range(3)] == [first, first, second]
    assert host.union_cpus == frozenset({0, 1, 2})


@pytest.mark.parametrize(
    ("versions", "override", "limit", "registered"),
    [
        ((PmuVer.V3P1, PmuVer.V3P1), {}, PmuVer.V3P1, True),
        ((PmuVer.V3P7, PmuVer.V3P7), {}, PmuVer.V3P5, True),  # capped at V3P5
        ((PmuVer.V3P1, PmuVer.IMP), {}, PmuVer.NI, False),  # FTR_EXACT: CPUs disagree
        ((PmuVer.V3P1, PmuVer.V3P1), {5: PmuVer.NI}, PmuVer.NI, False),  # one CPU lacks PMUv3
        ((PmuVer.IMP_DEF, PmuVer.IMP_DEF), {}, PmuVer.NI, False),  # IMPDEF is unimplemented
    ],
)
def test_sanitised_pmu_version_decides_whether_kvm_offers_a_vpmu(
    versions: tuple[int, int], override: dict[int, int], limit: int, registered: bool
) -> None:
    pmus = [
        HostPmu("a", 8, frozenset({0}), pmuver=versions[0]),
        HostPmu("b", 9, frozenset({1}), pmuver=versions[1]),
    ]
    host = HostPmus(pmus, possible_cpus=range(2 if not override else 6), cpu_pmuver=override)
    assert host.pmuver_limit() == limit
    assert host.supports_guest_pmuv3() == registered
    assert (host.probe_armpmu(0) is not None) == registered
    assert (host.by_type(8) is not None) == registered


def test_impdef_traps_expose_pmuv3_imp_with_one_counter() -> None:
    host = HostPmus(
        [HostPmu("apple_icestorm_pmu", 8, frozenset({0}), 10, PmuVer.IMP_DEF)], impdef_traps=True
    )
    assert host.pmuver_limit() == PmuVer.IMP
    vcpu = build_vm(Scenario(), host).vcpus[0]
    assert vcpu.pmcr_n == 1
    assert vcpu.kvm.event_mask == 0x3FF


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: HostPmu("", 8, frozenset({0})), "non-empty name"),
        (lambda: HostPmu("x", 8, frozenset()), "non-empty set"),
        (lambda: HostPmu("x", 8, frozenset({-1})), "CPU ids"),
        (lambda: HostPmu("x", 8, frozenset({0}), num_counters=32), "0..31"),
        (lambda: HostPmu("x", 8, frozenset({0}), pmuver=16), "4-bit"),
        (lambda: HostPmu("x", 8, frozenset({0}), pmceid=(1 << 64, 0)), "64-bit"),
        (
            lambda: HostPmus([HostPmu("x", 8, frozenset({0})), HostPmu("x", 9, frozenset({1}))]),
            "unique",
        ),
        (
            lambda: HostPmus([HostPmu("x", 8, frozenset({0})), HostPmu("y", 8, frozenset({1}))]),
            "unique",
        ),
        (lambda: HostPmus([HostPmu("x", 8, frozenset({3}))], possible_cpus=[0, 1]), r"\[3\]"),
        (lambda: HostPmus([]), "no CPUs"),
    ],
)
def test_bad_host_descriptions_are_topology_errors(build: object, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        build()  # type: ignore[operator]


def test_host_without_pmus_offers_no_vpmu() -> None:
    host = HostPmus([], possible_cpus=[0, 1])
    assert not host.supports_guest_pmuv3()
    assert host.probe_armpmu(0) is None
    assert "possible_cpus=[0, 1]" in repr(host)
