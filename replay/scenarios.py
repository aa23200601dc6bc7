"""KVM vPMU configurations to replay, as data, and the VMM sequence that sets one up.

A :class:`Scenario` names a vPMU mode (``default``, ``set-pmu``, ``fixed-counters-only``,
``no-pmu``; spec §8.2-§8.4), the kernel it assumes (``mainline``: a released kernel, the default
of every mode a released kernel has; or a revision of the proposed FIXED_COUNTERS_ONLY series,
``v8`` by default for that mode, ``v4`` selectable; §8.1), the pCPU of the first
``KVM_ARM_VCPU_INIT`` (which picks the default PMU), an optional event filter and
``SET_NR_COUNTERS``, and the opt-in kernel quirks of §8.7. :func:`build_vm` issues the userspace
calls a VMM would, in the order a VMM issues them, and raises :class:`KvmRefusedError` when the
kernel would refuse.
"""

from __future__ import annotations

import errno as errno_names
import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from importers.errors import UsageError
from replay.pmu import (
    DEFAULT_PMU_IRQ,
    EventFilter,
    HostPmus,
    KernelSemantics,
    Kvm,
    KvmRefusedError,
    PmuAttr,
    Quirks,
    Vcpu,
    create_vcpu,
)
from replay.pmu.kvm import KERNEL_RULES


class Mode(StrEnum):
    """How the VMM configures the vPMU."""

    DEFAULT = "default"
    SET_PMU = "set-pmu"
    FIXED_COUNTERS_ONLY = "fixed-counters-only"
    NO_PMU = "no-pmu"


@dataclass(frozen=True, slots=True)
class ModeSpec:
    """What a mode means in userspace calls.

    Attributes
    ----------
    pmu_v3
        vCPUs are initialised with the ``KVM_ARM_VCPU_PMU_V3`` feature.
    vm_attrs
        VM-wide PMU attributes issued once, before any PMU INIT.
    takes_target
        The mode needs a ``SET_PMU`` target PMU name.
    label
        ``str.format`` template of the scenario name (fields of :class:`Scenario`).
    kernel
        The kernel a scenario of this mode assumes unless told otherwise: mainline where a
        released kernel has the mode, else the latest series revision the model knows.
    """

    pmu_v3: bool
    vm_attrs: tuple[PmuAttr, ...]
    takes_target: bool
    label: str
    kernel: KernelSemantics


_MAINLINE = KernelSemantics.MAINLINE
MODES: dict[Mode, ModeSpec] = {
    Mode.DEFAULT: ModeSpec(True, (), False, "default@cpu{init_cpu}", _MAINLINE),
    Mode.SET_PMU: ModeSpec(True, (PmuAttr.SET_PMU,), True, "set-pmu:{set_pmu}", _MAINLINE),
    Mode.FIXED_COUNTERS_ONLY: ModeSpec(
        True, (PmuAttr.FIXED_COUNTERS_ONLY,), False, "fixed-counters-only", KernelSemantics.V8
    ),
    Mode.NO_PMU: ModeSpec(False, (), False, "no-pmu", _MAINLINE),
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """One vPMU configuration to replay.

    Parameters
    ----------
    mode
        The vPMU mode.
    kernel
        The kernel: ``mainline`` (released kernels), or the FIXED_COUNTERS_ONLY series at
        ``v4`` or ``v8`` (v8 07-10 respin and later). Default (None): the mode's
        :attr:`ModeSpec.kernel`. ``mainline`` has no FIXED_COUNTERS_ONLY.
    init_cpu
        pCPU on which the VMM thread runs the first ``KVM_ARM_VCPU_INIT``: the default PMU is the
        first registered PMU covering it (every mode, spec §8.2).
    set_pmu
        Name of the host PMU ``SET_PMU`` selects (``set-pmu`` mode only).
    event_filters
        ``KVM_ARM_VCPU_PMU_V3_FILTER`` calls, applied in order.
    nr_counters
        ``KVM_ARM_VCPU_PMU_V3_SET_NR_COUNTERS`` value, if any.
    quirks
        Opt-in kernel quirks (spec §8.7); off by default.
    irq
        PMU overflow interrupt (PPI 23 like the selftests and QEMU).
    """

    mode: Mode = Mode.DEFAULT
    # None asks for the mode's kernel; __post_init__ resolves it, so users see a KernelSemantics
    kernel: KernelSemantics = None  # type: ignore[assignment]
    init_cpu: int = 0
    set_pmu: str | None = None
    event_filters: tuple[EventFilter, ...] = ()
    nr_counters: int | None = None
    quirks: Quirks = field(default_factory=Quirks)
    irq: int = DEFAULT_PMU_IRQ

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        spec = MODES[self.mode]
        kernel = spec.kernel if self.kernel is None else KernelSemantics(self.kernel)
        object.__setattr__(self, "kernel", kernel)
        needs_series = PmuAttr.FIXED_COUNTERS_ONLY in spec.vm_attrs
        if needs_series and not KERNEL_RULES[kernel].fixed_counters_only_attr:
            raise UsageError(
                f"scenario mode {self.mode} is proposed (the FIXED_COUNTERS_ONLY series), not in "
                "a released kernel: choose its series revision with +v8 or +v4"
            )
        if spec.takes_target != (self.set_pmu is not None):
            need = "needs" if spec.takes_target else "does not take"
            raise UsageError(f"scenario mode {self.mode} {need} a set_pmu target PMU name")
        if not spec.pmu_v3 and (self.event_filters or self.nr_counters is not None):
            raise UsageError(f"scenario mode {self.mode} has no vPMU to filter or size")
        if self.init_cpu < 0:
            raise UsageError(f"init_cpu must be a CPU id >= 0, got {self.init_cpu}")

    @property
    def name(self) -> str:
        """Report label, e.g. ``default@cpu0``, ``set-pmu:armv8_cortex_a57``,
        ``fixed-counters-only+v8+kernel-overflow-arming``."""
        parts = [MODES[self.mode].label.format(init_cpu=self.init_cpu, set_pmu=self.set_pmu)]
        if self.kernel != _MAINLINE:  # a series revision is always named
            parts.append(str(self.kernel))
        if self.event_filters:
            parts.append("filter")
        if self.nr_counters is not None:
            parts.append(f"n{self.nr_counters}")
        parts.extend(q.replace("_", "-") for q in self.quirks.enabled_names())
        return "+".join(parts)

    @property
    def proposed(self) -> bool:
        """The scenario needs a kernel with the (unmerged) FIXED_COUNTERS_ONLY series."""
        return self.kernel != _MAINLINE

    @property
    def kernel_label(self) -> str:
        """The kernel in words, e.g. ``mainline`` or ``proposed (series revision v8), not in a
        released kernel``."""
        if not self.proposed:
            return "mainline"
        return f"proposed (series revision {self.kernel}), not in a released kernel"

    @property
    def quirks_on(self) -> tuple[str, ...]:
        """Names of the kernel quirks this scenario enables (to record with results)."""
        return self.quirks.enabled_names()


class ConfiguredVm(NamedTuple):
    """A VM configured for a scenario, ready for ``vcpu_load``/``guest_enter``."""

    scenario: Scenario
    kvm: Kvm
    vcpus: list[Vcpu]


#: Why the kernel answers a configuration step with an errno, and what to do about it.
_HINTS: dict[tuple[str, int], str] = {
    ("KVM_ARM_VCPU_INIT", errno_names.EINVAL): (
        "the host offers no vPMU (KVM_CAP_ARM_PMU_V3 = 0: its CPUs disagree on PMUVer or no "
        "PMU is registered); use the no-pmu mode"
    ),
    ("KVM_ARM_VCPU_INIT", errno_names.ENODEV): (
        "no registered host PMU covers init_cpu, so no default PMU can be chosen; pick an "
        "init_cpu with a PMU"
    ),
    ("SET_PMU", errno_names.EBUSY): (
        "the kernel refuses this SET_PMU (an event filter bound another PMU, or v8 semantics "
        "with FIXED_COUNTERS_ONLY already set)"
    ),
    ("FIXED_COUNTERS_ONLY", errno_names.EBUSY): (
        "FIXED_COUNTERS_ONLY cannot follow an event filter (v8: nor precede one, nor combine "
        "with SET_PMU)"
    ),
    ("FILTER", errno_names.EBUSY): "under v8 semantics a filter cannot follow FIXED_COUNTERS_ONLY",
    ("FILTER", errno_names.EINVAL): "the filter range exceeds the host's event space",
    ("SET_NR_COUNTERS", errno_names.EINVAL): "more counters than the selected PMU implements",
}


def _check(scenario: Scenario, call: str, ret: int) -> None:
    if ret == 0:
        return
    code = -ret
    hint = _HINTS.get((call, code), "see spec kvm-pmu.md §1.3 and §3.1 for the attribute rules")
    raise KvmRefusedError(
        f"scenario {scenario.name}: {call} fails with -{errno_names.errorcode[code]} "
        f"({os.strerror(code)}): {hint}",
        code,
    )


def build_vm(scenario: Scenario, host: HostPmus, nr_vcpus: int = 1) -> ConfiguredVm:
    """Create a VM and configure its vCPUs for ``scenario`` the way a VMM does.

    Order: ``KVM_ARM_VCPU_INIT`` of every vCPU on ``init_cpu``; the VM-wide PMU attributes
    (``SET_PMU`` or ``FIXED_COUNTERS_ONLY``, filters, ``SET_NR_COUNTERS``) once, on vCPU 0; then
    ``IRQ`` and ``INIT`` on every vCPU.

    Parameters
    ----------
    scenario
        The configuration.
    host
        The host's PMUs.
    nr_vcpus
        vCPUs to create (>= 1).

    Returns
    -------
    ConfiguredVm

    Raises
    ------
    KvmRefusedError
        When a step fails in the kernel; the message names the step, the errno and the fix.
    UsageError
        For a non-positive ``nr_vcpus`` or an ``init_cpu`` the host does not have.
    """
    if nr_vcpus < 1:
        raise UsageError(f"a VM needs at least one vCPU, got nr_vcpus={nr_vcpus}")
    if scenario.init_cpu not in host.possible_cpus:
        raise UsageError(
            f"scenario {scenario.name}: init_cpu {scenario.init_cpu} is not a host CPU "
            f"(host CPUs: {sorted(host.possible_cpus)})"
        )
    spec = MODES[scenario.mode]
    kvm = Kvm(host, kernel=scenario.kernel, quirks=scenario.quirks)
    vcpus = [create_vcpu(kvm) for _ in range(nr_vcpus)]
    for vcpu in vcpus:
        ret = vcpu.vcpu_init(scenario.init_cpu, pmu_v3=spec.pmu_v3)
        _check(scenario, "KVM_ARM_VCPU_INIT", ret)
    if not spec.pmu_v3:
        return ConfiguredVm(scenario, kvm, vcpus)
    first = vcpus[0]
    for attr in spec.vm_attrs:
        value = _set_pmu_type(scenario, host) if attr == PmuAttr.SET_PMU else None
        _check(scenario, attr.name, first.set_attr(attr, value))
    for flt in scenario.event_filters:
        _check(scenario, "FILTER", first.set_attr(PmuAttr.FILTER, flt))
    if scenario.nr_counters is not None:
        ret = first.set_attr(PmuAttr.SET_NR_COUNTERS, scenario.nr_counters)
        _check(scenario, "SET_NR_COUNTERS", ret)
    for vcpu in vcpus:
        _check(scenario, "IRQ", vcpu.set_attr(PmuAttr.IRQ, scenario.irq))
        _check(scenario, "INIT", vcpu.set_attr(PmuAttr.INIT))
    return ConfiguredVm(scenario, kvm, vcpus)


def _set_pmu_type(scenario: Scenario, host: HostPmus) -> int:
    """The perf type of the ``SET_PMU`` target; an unknown name is what the kernel calls ENXIO."""
    pmu = host.by_name(scenario.set_pmu or "")
    if pmu is None or pmu not in host.registered:
        known = ", ".join(p.name for p in host.registered) or "none"
        raise KvmRefusedError(
            f"scenario {scenario.name}: SET_PMU target {scenario.set_pmu!r} is not a registered "
            f"host PMU (registered: {known})",
            errno_names.ENXIO,
        )
    return pmu.perf_type


_QUIRK_FLAGS = {name.replace("_", "-"): name for name in Quirks.__dataclass_fields__}
SCENARIO_SYNTAX = (
    "MODE[+OPTION...]: default[@cpuN] | set-pmu:PMU_NAME | fixed-counters-only | no-pmu; "
    "options: mainline (a released kernel: the default, except for fixed-counters-only), v8 "
    "(FIXED_COUNTERS_ONLY series v8+: fixed-counters-only's default), v4 (series v4), "
    + ", ".join(sorted(_QUIRK_FLAGS))
)


def parse_scenario(text: str, default_init_cpu: int = 0) -> Scenario:
    """A scenario from its command-line spelling (:data:`SCENARIO_SYNTAX`): ``default@cpu1``,
    ``set-pmu:armv8_cortex_a57``, ``fixed-counters-only+v8``, ``no-pmu``,
    ``default+kernel-overflow-arming`` ...

    That is :attr:`Scenario.name` for a scenario without event filters and ``SET_NR_COUNTERS``;
    the ``+filter`` and ``+nN`` those add to the name are not accepted (the filters themselves
    are not in the name). Every mode but ``default@cpuN`` runs its first ``KVM_ARM_VCPU_INIT``
    on ``default_init_cpu``.
    """
    head, *options = text.strip().split("+")
    init_cpu = default_init_cpu
    set_pmu = None
    if head.startswith("default@cpu") and head[len("default@cpu") :].isdigit():
        mode, init_cpu = Mode.DEFAULT, int(head[len("default@cpu") :])
    elif head.startswith("set-pmu:") and len(head) > len("set-pmu:"):
        mode, set_pmu = Mode.SET_PMU, head[len("set-pmu:") :]
    elif head in {m.value for m in Mode} and head != Mode.SET_PMU:
        mode = Mode(head)
    else:
        raise UsageError(f"scenario {text!r}: write {SCENARIO_SYNTAX}")
    kernel = MODES[mode].kernel
    quirks: dict[str, bool] = {}
    for option in options:
        if option in {k.value for k in KernelSemantics}:
            kernel = KernelSemantics(option)
        elif option in _QUIRK_FLAGS:
            quirks[_QUIRK_FLAGS[option]] = True
        else:
            raise UsageError(
                f"scenario {text!r}: unknown option {option!r}; write {SCENARIO_SYNTAX}"
            )
    return Scenario(mode, kernel, init_cpu, set_pmu, quirks=Quirks(**quirks))
