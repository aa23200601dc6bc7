"""Scenarios as data, and the VMM sequence that configures a VM for one (spec §8.2-§8.4)."""

from __future__ import annotations

import errno
from itertools import product

import pytest

from importers.errors import PmuReplayError, UsageError
from replay.pmu import (
    EventFilter,
    FilterAction,
    HostPmu,
    HostPmus,
    KernelSemantics,
    KvmRefusedError,
    PmuVer,
    Quirks,
)
from replay.scenarios import MODES, Mode, Scenario, build_vm, parse_scenario
from tests.replay.pmu.helpers import A53, A57, two_clusters


def test_every_mode_is_described_by_data() -> None:
    assert set(MODES) == set(Mode)
    assert [m.value for m in Mode] == ["default", "set-pmu", "fixed-counters-only", "no-pmu"]


@pytest.mark.parametrize(
    ("scenario", "name"),
    [
        (Scenario(), "default@cpu0"),
        (Scenario(init_cpu=5), "default@cpu5"),
        (Scenario(mode=Mode.SET_PMU, set_pmu=A57), "set-pmu:armv8_cortex_a57"),
        (Scenario(mode=Mode.FIXED_COUNTERS_ONLY), "fixed-counters-only+v8"),
        (
            Scenario(mode=Mode.FIXED_COUNTERS_ONLY, kernel=KernelSemantics.V4),
            "fixed-counters-only+v4",
        ),
        (Scenario(kernel=KernelSemantics.V4), "default@cpu0+v4"),
        (Scenario(kernel=KernelSemantics.MAINLINE), "default@cpu0"),
        (Scenario(mode=Mode.NO_PMU), "no-pmu"),
        (Scenario(nr_counters=2, event_filters=(EventFilter(0x11, 1),)), "default@cpu0+filter+n2"),
        (Scenario(mode="fixed-counters-only", kernel="v4"), "fixed-counters-only+v4"),  # type: ignore[arg-type]
    ],
)
def test_scenario_names(scenario: Scenario, name: str) -> None:
    assert scenario.name == name


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario(mode, kernel, 3, A57 if mode == Mode.SET_PMU else None, quirks=Quirks(*quirks))
        for mode, kernel, quirks in product(Mode, KernelSemantics, product((False, True), repeat=2))
        if (mode, kernel) != (Mode.FIXED_COUNTERS_ONLY, KernelSemantics.MAINLINE)
    ],
    ids=lambda s: s.name,
)
def test_parse_scenario_reads_back_every_name_without_filter_or_n(scenario: Scenario) -> None:
    assert parse_scenario(scenario.name, default_init_cpu=scenario.init_cpu) == scenario


@pytest.mark.parametrize(
    ("text", "kernel"),
    [
        ("default", KernelSemantics.MAINLINE),
        ("set-pmu:x", KernelSemantics.MAINLINE),
        ("no-pmu", KernelSemantics.MAINLINE),
        ("fixed-counters-only", KernelSemantics.V8),
        ("fixed-counters-only+v4", KernelSemantics.V4),
        ("default+v4", KernelSemantics.V4),
        ("default+v8+mainline", KernelSemantics.MAINLINE),
    ],
)
def test_every_mode_assumes_a_released_kernel_except_the_proposed_one(
    text: str, kernel: KernelSemantics
) -> None:
    scenario = parse_scenario(text)
    assert scenario.kernel == kernel
    assert scenario.proposed == (kernel != KernelSemantics.MAINLINE)
    label = scenario.kernel_label
    if scenario.proposed:
        assert label == f"proposed (series revision {kernel}), not in a released kernel"
    else:
        assert label == "mainline"


def test_fixed_counters_only_on_a_released_kernel_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"proposed .* \+v8 or \+v4"):
        parse_scenario("fixed-counters-only+mainline")
    with pytest.raises(UsageError, match="not in a released kernel"):
        Scenario(Mode.FIXED_COUNTERS_ONLY, KernelSemantics.MAINLINE)


@pytest.mark.parametrize(
    ("scenario", "part"),
    [(Scenario(event_filters=(EventFilter(0x11, 1),)), "filter"), (Scenario(nr_counters=2), "n2")],
)
def test_parse_scenario_rejects_the_filter_and_n_name_parts(scenario: Scenario, part: str) -> None:
    with pytest.raises(UsageError, match=f"unknown option '{part}'"):
        parse_scenario(scenario.name)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Scenario(mode=Mode.SET_PMU),
        lambda: Scenario(set_pmu=A53),
        lambda: Scenario(mode=Mode.NO_PMU, nr_counters=1),
        lambda: Scenario(mode=Mode.NO_PMU, event_filters=(EventFilter(0, 1),)),
        lambda: Scenario(init_cpu=-1),
    ],
)
def test_inconsistent_scenarios_are_usage_errors(make: object) -> None:
    with pytest.raises(UsageError):
        make()  # type: ignore[operator]
    with pytest.raises(ValueError):
        Scenario(mode="bogus")  # type: ignore[arg-type]


def test_default_mode_binds_the_pmu_of_the_first_init_cpu_and_runs_everywhere() -> None:
    host = two_clusters()
    for init_cpu, bound in ((1, A53), (6, A57)):
        cfg = build_vm(Scenario(init_cpu=init_cpu), host, nr_vcpus=3)
        assert cfg.kvm.arm_pmu is host.by_name(bound)
        assert cfg.kvm.supported_cpus == host.possible_cpus
        assert all(v.created and v.irq_num == 23 for v in cfg.vcpus)
        assert [v.vcpu_id for v in cfg.vcpus] == [0, 1, 2]


def test_set_pmu_narrows_supported_cpus_and_resets_n() -> None:
    host = two_clusters(a53_counters=6, a57_counters=4)
    cfg = build_vm(Scenario(mode=Mode.SET_PMU, set_pmu=A57), host)
    assert cfg.kvm.arm_pmu is host.by_name(A57)
    assert cfg.kvm.supported_cpus == frozenset(range(4, 8))
    assert cfg.vcpus[0].pmcr_n == 4


@pytest.mark.parametrize(
    ("kernel", "supported"), [(KernelSemantics.V4, range(8)), (KernelSemantics.V8, range(9))]
)
def test_fixed_counters_only(kernel: KernelSemantics, supported: range) -> None:
    cfg = build_vm(
        Scenario(mode=Mode.FIXED_COUNTERS_ONLY, kernel=kernel), two_clusters(no_pmu_cpus=1)
    )
    assert cfg.kvm.fixed_counters_only and cfg.vcpus[0].pmcr_n == 0
    assert cfg.kvm.supported_cpus == frozenset(supported)


def test_no_pmu_mode_has_no_vpmu() -> None:
    cfg = build_vm(Scenario(mode=Mode.NO_PMU), two_clusters())
    assert not cfg.vcpus[0].has_pmu and cfg.kvm.arm_pmu is None


@pytest.mark.parametrize(
    ("scenario", "host", "code", "message"),
    [
        (Scenario(init_cpu=8), two_clusters(no_pmu_cpus=1), errno.ENODEV, "pick an init_cpu"),
        (
            Scenario(),
            HostPmus(
                [
                    HostPmu("a", 8, frozenset({0}), pmuver=PmuVer.V3P1),
                    HostPmu("b", 9, frozenset({1}), pmuver=PmuVer.IMP),
                ]
            ),
            errno.EINVAL,
            "no-pmu mode",
        ),
        (
            Scenario(mode=Mode.SET_PMU, set_pmu="armv9_nope"),
            two_clusters(),
            errno.ENXIO,
            "registered: armv8",
        ),
        (
            Scenario(
                mode=Mode.FIXED_COUNTERS_ONLY,
                kernel=KernelSemantics.V8,
                event_filters=(EventFilter(0, 1),),
            ),
            two_clusters(),
            errno.EBUSY,
            "filter cannot follow",
        ),
        (
            Scenario(event_filters=(EventFilter(0xFFFF, 2, FilterAction.DENY),)),
            two_clusters(),
            errno.EINVAL,
            "event space",
        ),
        (Scenario(nr_counters=7), two_clusters(), errno.EINVAL, "more counters"),
        (
            Scenario(mode=Mode.FIXED_COUNTERS_ONLY, nr_counters=1),
            two_clusters(),
            errno.EINVAL,
            "more counters",
        ),
    ],
)
def test_configurations_the_kernel_refuses(
    scenario: Scenario, host: HostPmus, code: int, message: str
) -> None:
    with pytest.raises(KvmRefusedError, match=message) as err:
        build_vm(scenario, host)
    assert err.value.errno == code
    assert isinstance(err.value, PmuReplayError)
    assert scenario.name in str(err.value)


def test_v4_allows_a_filter_after_fixed_counters_only() -> None:
    deny_cycles = (EventFilter(0x11, 1, FilterAction.DENY),)
    cfg = build_vm(
        Scenario(
            mode=Mode.FIXED_COUNTERS_ONLY, kernel=KernelSemantics.V4, event_filters=deny_cycles
        ),
        two_clusters(),
    )
    assert cfg.kvm.pmu_filter is not None and not cfg.kvm.event_allowed(0x11)


def test_bad_build_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="at least one vCPU"):
        build_vm(Scenario(), two_clusters(), nr_vcpus=0)
    with pytest.raises(UsageError, match="not a host CPU"):
        build_vm(Scenario(init_cpu=99), two_clusters())
