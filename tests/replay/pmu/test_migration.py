"""The series' key claim, which no kernel selftest checks (spec §4.6 note), on a 2-cluster host.

A Windows-like guest keeps PMCCNTR_EL0 enabled and reads it at every tick while its vCPU thread
migrates between a Cortex-A53 cluster (CPUs 0-3, 1 GHz) and a Cortex-A57 cluster (CPUs 4-7,
2 GHz). In ``fixed-counters-only`` the cycle counter advances in every guest interval, by the
cycles of the core it ran on; in ``default`` it freezes on the cluster whose PMU the VM is not
bound to; ``set-pmu`` refuses entry there instead.
"""

from __future__ import annotations

import pytest

from replay.pmu import (
    CPU_CYCLES,
    CYCLE_IDX,
    FailEntry,
    HostPmus,
    KernelSemantics,
    StallReason,
    UndefinedAccess,
    Vcpu,
)
from replay.pmu.arch import PMCR_C, PMCR_E
from replay.scenarios import Mode, Scenario, build_vm
from tests.replay.pmu.helpers import A53, A57, two_clusters

#: Cycles per 1 ms guest interval: the A53 cluster runs at 1 GHz, the A57 cluster at 2 GHz.
CYCLES_PER_MS = {cpu: 1_000_000 if cpu < 4 else 2_000_000 for cpu in range(10)}
#: The vCPU thread's pCPU for successive 1 ms guest intervals.
SCHEDULE = [0, 1, 5, 6, 2, 7, 3, 4, 0]
KERNELS = [KernelSemantics.V4, KernelSemantics.V8]  # the FIXED_COUNTERS_ONLY series


def _windows_guest(vcpu: Vcpu) -> None:
    """What Windows does at boot: cycle counter enabled, counting EL0 and EL1."""
    vcpu.write_sysreg("PMCCFILTR_EL0", 0)
    vcpu.write_sysreg("PMCNTENSET_EL0", 1 << CYCLE_IDX)
    vcpu.write_sysreg("PMCR_EL0", PMCR_E | PMCR_C)


def _replay(vcpu: Vcpu, schedule: list[int]) -> list[tuple[int, int, str | None, bool]]:
    """Run one 1 ms interval per entry of ``schedule``; returns (cpu, PMCCNTR delta, host PMU,
    entered) per interval, as the guest reads it at its tick."""
    out: list[tuple[int, int, str | None, bool]] = []
    for cpu in schedule:
        if vcpu.loaded:
            vcpu.vcpu_put()
        vcpu.vcpu_load(cpu)
        outcome = vcpu.guest_enter()
        if not outcome.entered:
            assert outcome == FailEntry(cpu=cpu)
            out.append((cpu, 0, None, False))
            continue
        before = vcpu.read_sysreg("PMCCNTR_EL0")
        status = vcpu.counter_status(CYCLE_IDX)
        vcpu.advance({CPU_CYCLES: CYCLES_PER_MS[cpu]})
        out.append((cpu, vcpu.read_sysreg("PMCCNTR_EL0") - before, status.host_pmu, True))
        vcpu.guest_exit()
    return out


def _booted(scenario: Scenario, host: HostPmus) -> Vcpu:
    vcpu = build_vm(scenario, host).vcpus[0]
    vcpu.vcpu_load(scenario.init_cpu)
    assert vcpu.guest_enter().entered
    _windows_guest(vcpu)
    vcpu.guest_exit()
    vcpu.vcpu_put()
    return vcpu


@pytest.mark.parametrize("kernel", KERNELS)
def test_fixed_counters_only_cycle_counter_advances_across_clusters(
    kernel: KernelSemantics,
) -> None:
    vcpu = _booted(Scenario(mode=Mode.FIXED_COUNTERS_ONLY, kernel=kernel), two_clusters())
    windows = _replay(vcpu, SCHEDULE)
    assert [delta for _, delta, _, _ in windows] == [CYCLES_PER_MS[c] for c in SCHEDULE]
    assert [pmu for _, _, pmu, _ in windows] == [A53 if c < 4 else A57 for c in SCHEDULE]
    # The guest counter is the sum of the cycles of the cores it ran on (spec §5.4).
    assert vcpu.counter_value(CYCLE_IDX) == sum(CYCLES_PER_MS[c] for c in SCHEDULE)
    # One re-creation per change of PMU (invariant 14), plus the creations while booting.
    changes = sum(1 for a, b in zip([0, *SCHEDULE], SCHEDULE, strict=False) if (a < 4) != (b < 4))
    booted = _booted(Scenario(mode=Mode.FIXED_COUNTERS_ONLY, kernel=kernel), two_clusters())
    assert vcpu.creations[CYCLE_IDX] - booted.creations[CYCLE_IDX] == changes


@pytest.mark.parametrize(
    ("kernel", "per_foreign_load"),
    [(KernelSemantics.MAINLINE, 0), (KernelSemantics.V4, 1), (KernelSemantics.V8, 0)],
)
def test_only_v4_recreates_the_default_pmu_event_on_every_foreign_load(
    kernel: KernelSemantics, per_foreign_load: int
) -> None:
    """Spec §3.4/§8.1 item 5: v4's kvm_vcpu_load_pmu() reloads in every mode when the event's
    PMU does not cover the new CPU (re-creating it on the same default PMU); a released kernel
    has no such reload, and v8 reloads only in FIXED mode."""
    vcpu = _booted(Scenario(init_cpu=0, kernel=kernel), two_clusters())
    before = vcpu.creations[CYCLE_IDX]
    _replay(vcpu, SCHEDULE)
    foreign_loads = sum(1 for cpu in SCHEDULE if cpu >= 4)
    assert vcpu.creations[CYCLE_IDX] - before == per_foreign_load * foreign_loads


@pytest.mark.parametrize("kernel", list(KernelSemantics))
@pytest.mark.parametrize(("init_cpu", "bound"), [(0, A53), (6, A57)])
def test_default_mode_cycle_counter_freezes_on_the_foreign_cluster(
    kernel: KernelSemantics, init_cpu: int, bound: str
) -> None:
    vcpu = _booted(Scenario(init_cpu=init_cpu, kernel=kernel), two_clusters())
    windows = _replay(vcpu, SCHEDULE)
    home = range(4) if bound == A53 else range(4, 8)
    for cpu, delta, pmu, entered in windows:
        assert entered  # the vCPU runs everywhere in default mode
        assert pmu == bound  # the event stays on the VM's PMU
        assert delta == (CYCLES_PER_MS[cpu] if cpu in home else 0)
    assert vcpu.counter_value(CYCLE_IDX) == sum(CYCLES_PER_MS[c] for c in SCHEDULE if c in home)


@pytest.mark.parametrize("kernel", list(KernelSemantics))
def test_default_mode_reports_why_the_counter_is_frozen(kernel: KernelSemantics) -> None:
    vcpu = _booted(Scenario(kernel=kernel), two_clusters(no_pmu_cpus=1))
    for cpu, reason in [(5, StallReason.FOREIGN_CPU), (8, StallReason.NO_PMU_CPU), (2, None)]:
        vcpu.vcpu_load(cpu)
        assert vcpu.guest_enter().entered
        status = vcpu.counter_status(CYCLE_IDX)
        assert (status.counting, status.host_pmu, status.reason) == (reason is None, A53, reason)
        vcpu.guest_exit()
        vcpu.vcpu_put()


@pytest.mark.parametrize("kernel", list(KernelSemantics))
def test_set_pmu_refuses_entry_on_the_other_cluster(kernel: KernelSemantics) -> None:
    vcpu = _booted(
        Scenario(mode=Mode.SET_PMU, set_pmu=A57, init_cpu=4, kernel=kernel), two_clusters()
    )
    windows = _replay(vcpu, SCHEDULE)
    for cpu, delta, pmu, entered in windows:
        assert entered == (cpu >= 4)
        assert delta == (CYCLES_PER_MS[cpu] if entered else 0)
        assert pmu == (A57 if entered else None)


def test_fixed_counters_only_on_a_cpu_without_a_registered_pmu() -> None:
    """v4: outside the union of PMU CPUs, entry fails; v8: the vCPU runs with the cycle counter
    frozen until it is loaded on a covered CPU again (spec §8.1 item 1, invariant 8)."""
    host = two_clusters(no_pmu_cpus=2)  # CPUs 8 and 9
    v4 = _booted(Scenario(mode=Mode.FIXED_COUNTERS_ONLY, kernel=KernelSemantics.V4), host)
    assert [w[3] for w in _replay(v4, [0, 8, 9, 5])] == [True, False, False, True]
    assert v4.counter_value(CYCLE_IDX) == 3_000_000
    v8 = _booted(Scenario(mode=Mode.FIXED_COUNTERS_ONLY, kernel=KernelSemantics.V8), host)
    windows = _replay(v8, [0, 8, 9, 5, 8, 1])
    assert [w[1] for w in windows] == [1_000_000, 0, 0, 2_000_000, 0, 1_000_000]
    assert all(w[3] for w in windows)
    v8.vcpu_put()
    v8.vcpu_load(9)
    assert v8.guest_enter().entered
    assert v8.counter_status(CYCLE_IDX).reason == StallReason.NO_PMU_CPU


def test_no_pmu_mode_has_no_cycle_counter() -> None:
    vcpu = build_vm(Scenario(mode=Mode.NO_PMU), two_clusters()).vcpus[0]
    vcpu.vcpu_load(5)
    assert vcpu.guest_enter().entered
    with pytest.raises(UndefinedAccess):
        vcpu.read_sysreg("PMCCNTR_EL0")
    assert vcpu.counter_status(CYCLE_IDX).reason == StallReason.NO_VPMU


def test_package_docstring_example_runs() -> None:
    """The usage example of ``replay.pmu`` is executable and shows the default-mode freeze."""
    import textwrap

    import replay.pmu

    assert replay.pmu.__doc__ is not None
    code = textwrap.dedent(replay.pmu.__doc__.split("Typical use::")[1])
    namespace = {name: getattr(replay.pmu, name) for name in replay.pmu.__all__}
    exec(code, namespace)
    assert namespace["vcpu"].counter_status(CYCLE_IDX).reason == StallReason.FOREIGN_CPU
