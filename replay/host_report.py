"""The host a replay assumed, as results state it: the ``host`` block of ``replay.json``.

Every verdict rests on the host PMUs as they really are (``DESIGN.md``, "What a verdict must
say"), so the results carry them: per PMU its CPUs, core, PMU version, counters, AArch32 EL0
support and common events with where each fact came from (:mod:`importers.host.pmus`), and what
KVM makes of them (spec §1.1, §2.4, §5.3): whether a vPMU is offered at all and, if not, why; the
guest's PMU version, N, 64-bit event counters and whether PMCR_EL0.LC is RES1; plus the host
counter reservations replayed. :func:`host_lines` words the block for the terminal and the
Perfetto track names; :func:`host_clusters` reads the PMUs' CPUs back.
"""

from __future__ import annotations

from typing import Any

from importers.host.catalogue import PMUVER_NAMES, pmuver_name
from importers.host.pmus import Fact, PmuDescription, version_text
from importers.host.topology import format_cpulist, parse_cpulist
from replay.pmu import HostPmus, PmuVer
from replay.pmu.arch import pmuv3_implemented
from replay.work import Work


def host_block(work: Work) -> dict[str, Any]:
    """The ``host`` block of ``replay.json`` for ``work`` (see module docstring)."""
    host = work.host
    offered = host.supports_guest_pmuv3()
    limit = host.pmuver_limit()
    by_cpus: dict[str, list[int]] = {}
    for cpu, held in sorted(host.reserved.items()):
        by_cpus.setdefault(str(held), []).append(cpu)
    return {
        "vpmu_offered": offered,
        "why_not": None if offered else _why_not(host, work.described),
        "kvm": {
            "sanitised_pmuver": pmuver_name(host.sanitised_pmuver),
            "guest_pmuver": pmuver_name(limit) if offered else None,
            "guest_event_counters_64bit": offered and limit >= PmuVer.V3P5,
            "pmcr_lc_res1": not host.aarch32_el0,
            "impdef_traps": host.impdef_traps,
            "max_counters": {p.name: host.max_counters(p) for p in host.registered},
        },
        "pmus": [_pmu(p) for p in work.described],
        "reserved_counters": {format_cpulist(set(c)): held for held, c in by_cpus.items()},
    }


def _pmu(p: PmuDescription) -> dict[str, Any]:
    facts: dict[str, Fact[Any]] = {
        "core": p.core,
        "pmuver": p.pmuver,
        "counters": p.counters,
        "aarch32_el0": p.aarch32_el0,
        "events": p.pmceid,
    }
    return {
        "name": p.name,
        "cpus": format_cpulist(p.cpus),
        "core": p.core.value,
        "pmuver": pmuver_name(p.pmuver.value),
        "counters": p.counters.value,
        "aarch32_el0": p.aarch32_el0.value,
        "pmceid": None if p.pmceid.value is None else [f"{w:#018x}" for w in p.pmceid.value],
        "impdef": p.impdef,
        "source": {key: fact.source for key, fact in facts.items()},
        "assumed": sorted(key for key, fact in facts.items() if fact.assumed),
    }


def _why_not(host: HostPmus, described: list[PmuDescription]) -> str:
    """Why ``kvm_host_pmu_init()`` registers no PMU on this host (spec §1.1)."""
    if not host.pmus:
        return "the host has no CPU PMU"
    versions = {version_text(p.pmuver.value) for p in described}
    if len(versions) > 1:
        each = ", ".join(f"{p.name}: {version_text(p.pmuver.value)}" for p in described)
        return (
            f"the CPUs disagree on PMUVer ({each}): ID_AA64DFR0_EL1.PMUVer is sanitised as an "
            "exact-match field, so KVM sees 0 and registers no PMU (kvm_host_pmu_init)"
        )
    if not pmuv3_implemented(host.sanitised_pmuver):
        return (
            f"the PMU is {versions.pop()}, not PMUv3, and the host has no IMPDEF trap "
            "workaround (ARM64_WORKAROUND_PMUV3_IMPDEF_TRAPS), so kvm_arm_pmu_get_pmuver_limit() "
            "is 0"
        )
    return "no PMU registered with KVM"


#: The facts of a host block's PMU (its ``assumed`` keys) in words.
_FACT_WORDS = {
    "core": "core",
    "pmuver": "PMU version",
    "counters": "counter count",
    "aarch32_el0": "AArch32 EL0",
    "events": "common events",
}


def pmuver_text(name: str) -> str:
    """``PMUv3p1`` for the host block's ``"3.1"`` (:func:`~importers.host.pmus.version_text`);
    a spelling the catalogue does not know, as it is."""
    value = PMUVER_NAMES.get(name)
    return name if value is None else version_text(value)


def host_lines(block: dict[str, Any]) -> list[str]:
    """The host block in words: a headline, then one line per PMU and per reservation."""
    kvm = block["kvm"]
    if block["vpmu_offered"]:
        width = "64-bit" if kvm["guest_event_counters_64bit"] else "32-bit"
        lc = ", PMCR_EL0.LC RES1" if kvm["pmcr_lc_res1"] else ""
        guest = pmuver_text(kvm["guest_pmuver"])
        head = f"host: vPMU offered, guest {guest}, {width} event counters{lc}"
        if kvm["impdef_traps"]:
            head += ", IMPDEF traps (N = 1)"
    else:
        head = f"host: no vPMU offered: {block['why_not']}"
    lines = [head]
    for p in block["pmus"]:
        guessed = [_FACT_WORDS.get(key, key) for key in p["assumed"]]
        assumed = f" (assumed: {', '.join(guessed)})" if guessed else ""
        core = p["core"] or "unknown core"
        version = pmuver_text(p["pmuver"])
        a32 = "AArch32 EL0" if p["aarch32_el0"] else "no AArch32 EL0"
        lines.append(
            f"  {p['name']} (CPUs {p['cpus']}, {core}): {version}, {p['counters']} counters, "
            f"{a32}{assumed}"
        )
    for cpus, held in block["reserved_counters"].items():
        lines.append(f"  reserved by host pinned events on CPUs {cpus}: {held}")
    return lines


def host_clusters(meta: dict[str, Any]) -> dict[str, list[int]]:
    """Host PMU name -> its CPUs: the ``host`` block when the results have one, else the
    topology the replay used."""
    host = meta.get("host") or {}
    if host.get("pmus"):
        # a kernel cpulist in the host block ("0-1"), a list in results written before it
        return {
            p["name"]: sorted(parse_cpulist(p["cpus"]) if isinstance(p["cpus"], str) else p["cpus"])
            for p in host["pmus"]
        }
    pmus = (meta.get("topology") or {}).get("pmus") or {}
    return {name: sorted(cpus) for name, cpus in pmus.items()}
