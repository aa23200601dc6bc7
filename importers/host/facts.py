"""What a topology snapshot says about the host's PMUs themselves, beside the CPU -> PMU map.

The ``pmu-replay-topology/1`` snapshot (:mod:`importers.host.topology`) may carry, every value
a sysfs file's text or a JSON scalar::

    "midr_el1": {"0": "0x410fd050", ...},      # sysfs cpuN/regs/identification/midr_el1
    "event_source_devices": {"armv8_cortex_a55": {..., "events": {"cpu_cycles": "event=0x0011"}}},
    "pmus": {"armv8_cortex_a55": {"pmuver": "3.1", "counters": 6, "aarch32_el0": true}},
    "host_reserved_counters": {"0-7": "cycles"}  # CPUS -> N, "cycles" or "cycles+N"

``midr_el1`` identifies each CPU's core; a PMU's ``events/`` directory lists the common events
its ``PMCEID0/1_EL0`` advertise (``armv8pmu_event_attr_is_visible()`` hides the others, so events
the driver has no name for are missing); ``pmus`` states facts explicitly, overriding the
catalogue; ``host_reserved_counters`` is a host condition: counters the host's own CPU-pinned
perf events hold (``--host-reserved-counters`` on the command line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from importers.errors import TopologyError
from importers.host.catalogue import parse_pmuver
from importers.host.pmuv3 import Reservation

#: ``PMCEIDn_EL0`` cover common events 0x00-0x3F and, in their upper words, 0x4000-0x403F.
_EXT_BASE = 0x4000


@dataclass(frozen=True)
class PmuOverride:
    """Facts a topology file states for one PMU; ``None`` where it says nothing."""

    pmuver: int | None = None
    counters: int | None = None
    aarch32_el0: bool | None = None


def parse_midrs(where: str, data: object) -> dict[int, int]:
    """``{"<cpu>": "0x410fd050"}`` -> CPU -> ``MIDR_EL1``."""
    if not isinstance(data, dict):
        raise TopologyError(f"{where}: midr_el1 must map CPU ids to MIDR_EL1 values")
    midrs = {}
    for cpu, text in data.items():
        try:
            midrs[int(cpu)] = int(str(text).strip(), 0)
        except ValueError:
            raise TopologyError(
                f"{where}: midr_el1 of CPU {cpu!r} is {text!r}; write a number like 0x410fd050"
            ) from None
    return midrs


def pmceid_from_events(where: str, events: object) -> tuple[int, int]:
    """``(PMCEID0, PMCEID1)`` from a PMU's sysfs ``events/`` files (``event=0x0011`` each)."""
    if not isinstance(events, dict):
        raise TopologyError(f"{where}: events must map event names to their sysfs text")
    pmceid = [0, 0]
    for name, text in events.items():
        m = re.fullmatch(r"event=(0x[0-9a-fA-F]+|\d+)", str(text).strip())
        if not m:
            raise TopologyError(
                f"{where}: event {name!r} reads {text!r}; expected the sysfs form event=0x0011"
            )
        number = int(m.group(1), 0)
        base = _EXT_BASE if number >= _EXT_BASE else 0
        if not 0 <= number - base < 0x40:
            continue  # an IMPDEF event: not in PMCEID
        word, bit = divmod(number - base, 32)
        pmceid[word] |= 1 << (bit + (32 if base else 0))
    return pmceid[0], pmceid[1]


def parse_overrides(where: str, data: object) -> dict[str, PmuOverride]:
    """The ``pmus`` object of a snapshot (see module docstring)."""
    if not isinstance(data, dict):
        raise TopologyError(f"{where}: pmus must map perf PMU names to their facts")
    out = {}
    for name, facts in data.items():
        if not isinstance(facts, dict):
            raise TopologyError(f"{where}: pmus.{name} must be an object")
        unknown = sorted(set(facts) - {"pmuver", "counters", "aarch32_el0"})
        if unknown:
            raise TopologyError(
                f"{where}: pmus.{name} has {unknown}; it takes pmuver, counters, aarch32_el0"
            )
        out[str(name)] = PmuOverride(
            pmuver=None if "pmuver" not in facts else parse_pmuver(facts["pmuver"], where),
            counters=_counters(where, name, facts.get("counters")),
            aarch32_el0=_flag(where, name, facts.get("aarch32_el0")),
        )
    return out


def _counters(where: str, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 31:
        raise TopologyError(f"{where}: pmus.{name}.counters is {value!r}; PMUv3 has 0..31")
    return value


def _flag(where: str, name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise TopologyError(f"{where}: pmus.{name}.aarch32_el0 is {value!r}; write true or false")


def parse_reservation(where: str, text: object) -> Reservation:
    """``"2"``, ``"cycles"`` or ``"cycles+2"``: what the host's pinned events hold on a CPU."""
    parts = str(text).strip().lower().split("+")
    cycles = "cycles" in parts
    numbers = [p for p in parts if p != "cycles"]
    if len(numbers) > 1 or (numbers and not numbers[0].isdigit()) or not parts[0]:
        raise TopologyError(
            f"{where}: reserved counters {text!r}; write N, cycles or cycles+N (e.g. cycles for "
            "the hard-lockup detector's pinned cycles event)"
        )
    try:
        return Reservation(counters=int(numbers[0]) if numbers else 0, cycles=cycles)
    except TopologyError as exc:
        raise TopologyError(f"{where}: {exc}") from None


def midrs_from_cpuinfo(text: str) -> dict[int, int]:
    """CPU -> ``MIDR_EL1`` rebuilt from arm64 ``/proc/cpuinfo`` (``CPU implementer``, ``CPU
    variant``, ``CPU part``, ``CPU revision`` per ``processor``; ``cpuinfo.c c_show()``), for
    kernels without ``regs/identification/midr_el1``. The architecture field is 0xF, the value
    every Armv8 MIDR_EL1 has (c_show() prints it as ``CPU architecture: 8``)."""
    midrs: dict[int, int] = {}
    for block in re.split(r"\n\s*\n", text):
        fields = dict(
            (key.strip(), value.strip())
            for key, sep, value in (line.partition(":") for line in block.splitlines())
            if sep
        )
        keys = ("processor", "CPU implementer", "CPU variant", "CPU part", "CPU revision")
        if not all(k in fields for k in keys):
            continue
        try:
            cpu, imp, var, part, rev = (int(fields[k], 0) for k in keys)
        except ValueError:
            continue  # not an arm64 cpuinfo block
        midrs[cpu] = imp << 24 | var << 20 | 0xF << 16 | part << 4 | rev
    return midrs
