"""The host PMU description: each PMU's facts as they really are, with where each came from.

For every PMU of a :class:`~importers.host.topology.Topology`, in order of strength:

1. the capture: the ``MIDR_EL1`` of the PMU's CPUs (``pmu-replay record`` snapshots it)
   identifies the core, and the PMU's sysfs ``events/`` give its common-event bitmap;
2. the topology file's explicit ``pmus`` facts (PMUVer, counters, AArch32 EL0);
3. the catalogue (:mod:`importers.host.catalogue`) for the core the MIDR, else the perf PMU
   name, identifies;
4. a stated default, flagged as assumed. The default PMU version is the one every other PMU
   is known to have (no evidence of a mismatch), else PMUv3p1; counters 6; AArch32 EL0 yes; the
   common-event bitmap the model uses by default.

What KVM makes of these facts (whether a vPMU is offered at all, N, counter widths) is the
model's business (:mod:`replay.pmu.host`); this module only states them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from importers.host.catalogue import Core, core_of_midr, core_of_pmu, pmuver_name
from importers.host.facts import PmuOverride
from importers.host.pmuv3 import PmuVer
from importers.host.topology import PmuSpec, Topology, format_cpulist

T = TypeVar("T")

DEFAULT_PMUVER = PmuVer.V3P1
DEFAULT_COUNTERS = 6
DEFAULT_AARCH32_EL0 = True


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A value and where it came from; ``assumed`` when no source gave it."""

    value: T
    source: str
    assumed: bool = False


@dataclass(frozen=True)
class PmuDescription:
    """One host PMU as it really is (see module docstring).

    ``pmceid`` is ``None`` when no source gives the common events (the model's default bitmap
    applies); ``impdef`` names an IMPLEMENTATION DEFINED PMU's kind (``"apple"``);
    ``mappable_events`` are the PMUv3 events its driver translates (``None`` for PMUv3).
    """

    name: str
    cpus: frozenset[int]
    perf_type: int | None
    core: Fact[str | None]
    pmuver: Fact[int]
    counters: Fact[int]
    aarch32_el0: Fact[bool]
    pmceid: Fact[tuple[int, int] | None]
    impdef: str | None
    mappable_events: frozenset[int] | None


def version_text(pmuver: int) -> str:
    """``PMUv3``, ``PMUv3p1`` ... ``IMPDEF`` or ``no PMUv3`` for an ``ID_AA64DFR0_EL1.PMUVer``."""
    if pmuver == PmuVer.IMP_DEF:
        return "IMPDEF"
    if pmuver == PmuVer.NI:
        return "no PMUv3"
    minor = pmuver_name(pmuver).removeprefix("3.")
    return "PMUv3" if minor == "0" else f"PMUv3p{minor}"


def describe_pmus(topology: Topology) -> list[PmuDescription]:
    """The description of every PMU of ``topology``, in its registration order."""
    found = [(spec, *_identify(spec, topology)) for spec in topology.pmus]
    known = {
        version
        for spec, core, _ in found
        if (version := _stated_pmuver(topology.overrides.get(spec.name), core)) is not None
    }
    common = known.pop() if len(known) == 1 else None
    return [_describe(spec, core, ident, topology, common) for spec, core, ident in found]


def _identify(spec: PmuSpec, topology: Topology) -> tuple[Core | None, str]:
    """The catalogued core of a PMU and how it was identified."""
    cpus = format_cpulist(spec.cpus)
    midrs = sorted({topology.midr[c] for c in spec.cpus if c in topology.midr})
    if midrs:
        by_midr = {core_of_midr(m) for m in midrs}
        core = by_midr.pop() if len(by_midr) == 1 else None
        shown = ", ".join(f"{m:#010x}" for m in midrs)
        if core is not None:
            return core, f"{core.name}: MIDR_EL1 {shown} of CPUs {cpus} ({topology.source})"
        reason = "disagree" if len(midrs) > 1 else "is not in the catalogue"
        return None, f"unknown core: MIDR_EL1 {shown} of CPUs {cpus} {reason}"
    core = core_of_pmu(spec.name)
    if core is not None:
        return core, f"{core.name}: perf PMU name {spec.name} (no MIDR_EL1 in {topology.source})"
    return None, f"unknown core: no MIDR_EL1 for CPUs {cpus} and PMU name {spec.name} unknown"


def _stated_pmuver(override: PmuOverride | None, core: Core | None) -> int | None:
    if override is not None and override.pmuver is not None:
        return override.pmuver
    return core.pmuver if core is not None else None


def _describe(
    spec: PmuSpec, core: Core | None, ident: str, topology: Topology, common: int | None
) -> PmuDescription:
    stated = topology.overrides.get(spec.name, PmuOverride())
    given = "topology file (pmus." + spec.name + ")"
    catalogued = f"catalogue, {core.name}: {core.source}" if core else ""
    default_ver = common if common is not None else DEFAULT_PMUVER
    why = "no source gives it" if core is None else f"{core.name}: not confirmed"
    pmuver = _pick(
        stated.pmuver,
        given,
        core.pmuver if core else None,
        catalogued,
        default_ver,
        f"assumed {pmuver_name(default_ver)} ({why}; "
        + ("the version of the other PMUs)" if common is not None else "default)"),
    )
    counters = _pick(
        stated.counters,
        given,
        core.counters if core else None,
        catalogued,
        DEFAULT_COUNTERS,
        f"assumed {DEFAULT_COUNTERS} ({why})",
    )
    aarch32 = _pick(
        stated.aarch32_el0,
        given,
        core.aarch32_el0 if core else None,
        catalogued,
        DEFAULT_AARCH32_EL0,
        f"assumed yes ({why})",
    )
    mappable = core.mappable_events if core else None
    events: Fact[tuple[int, int] | None]
    if spec.name in topology.pmceid:
        events = Fact(topology.pmceid[spec.name], f"sysfs events/ of {spec.name} (named only)")
    elif core is not None and core.mappable_events is not None:
        # m1_pmu_init_pmceid(): a PMCEID bit for every PMUv3 event the driver translates.
        pmceid0 = sum(1 << e for e in core.mappable_events if e < 32)
        pmceid1 = sum(1 << (e - 32) for e in core.mappable_events if 32 <= e < 64)
        events = Fact((pmceid0, pmceid1), f"catalogue, {core.name}: map_pmuv3_event")
    else:
        events = Fact(None, "assumed: the model's default common events", assumed=True)
    return PmuDescription(
        name=spec.name,
        cpus=spec.cpus,
        perf_type=spec.perf_type,
        core=Fact(core.name if core else None, ident, core is None),
        pmuver=pmuver,
        counters=counters,
        aarch32_el0=aarch32,
        pmceid=events,
        impdef=core.impdef if core else None,
        mappable_events=mappable,
    )


def _pick(
    stated: T | None, given: str, catalogued: T | None, cited: str, default: T, assumed: str
) -> Fact[T]:
    """The strongest of: what the topology file states, the catalogue, the default."""
    if stated is not None:
        return Fact(stated, given)
    if catalogued is not None:
        return Fact(catalogued, cited)
    return Fact(default, assumed, assumed=True)
