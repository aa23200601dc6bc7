"""``Topology``: which host PMU covers each CPU, plus clusters, capacities and frequencies, and
what the source says of the PMUs themselves (:mod:`importers.host.facts`).

KVM binds a VM's vPMU to host PMUs by CPU, so every replay needs this map. Sources, strongest
first (each result records its ``source``; :mod:`importers.host.resolve` makes the choice):

1. a sysfs snapshot (JSON, written by ``pmu-replay record`` or by hand, format below);
2. the capture itself (perf.data ``PMU_MAPPINGS`` / ``HYBRID_TOPOLOGY``, ``topology`` table);
3. a LISA platform description (``platforms/*.json`` or ``plat_info.yml``, read by
   :mod:`importers.host.lisa`);
4. the command line: ``--pmu armv8_cortex_a53=0,3-5 --pmu armv8_cortex_a57=1-2``;
5. last resort: clusters inferred from ``cpu_frequency`` events (reported as inferred).

Sysfs snapshot format (``pmu-replay-topology/1``), every value a sysfs file's text::

    {"format": "pmu-replay-topology/1",
     "cpus_possible": "0-5",
     "event_source_devices": {"armv8_cortex_a53": {"type": "8", "cpus": "0,3-5"}, ...},
     "cpufreq": {"policy0": {"related_cpus": "0 3 4 5",
                             "scaling_available_frequencies": "450000 575000 ...",
                             "cpuinfo_max_freq": "850000"}, ...},
     "cpu_capacity": {"0": "446", ...},
     "midr_el1": {"0": "0x410fd034", ...}, "pmus": {...}, "host_reserved_counters": {...}}

(the last three, and ``events`` per event source, are described in :mod:`importers.host.facts`).

Core PMUs are the event sources with a ``cpus`` file (``/sys/bus/event_source/devices/*/cpus``,
drivers/perf/arm_pmu.c); uncore PMUs expose ``cpumask`` instead and are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from importers.arrow_compute import drop_null
from importers.errors import TopologyError
from importers.host.facts import (
    PmuOverride,
    parse_midrs,
    parse_overrides,
    parse_reservation,
    pmceid_from_events,
)
from importers.host.pmuv3 import Reservation
from importers.schema import TABLES

SNAPSHOT_FORMAT = "pmu-replay-topology/1"
INFERRED_SOURCE = "inferred from cpu_frequency"


def parse_cpulist(text: str) -> frozenset[int]:
    """CPUs of a kernel cpulist (``0,3-5``; sysfs ``related_cpus`` uses spaces)."""
    cpus: set[int] = set()
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise TopologyError(f"not a CPU list: {text!r} (write it like 0,3-5)")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi > 4095:
            raise TopologyError(f"CPU range {part!r} in {text!r} is out of order or too large")
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)


def format_cpulist(cpus: frozenset[int] | set[int]) -> str:
    """Kernel cpulist text of a CPU set (``0,3-5``)."""
    out: list[str] = []
    run: list[int] = []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


@dataclass(frozen=True)
class PmuSpec:
    """One host CPU PMU: sysfs name, perf type id (None when the source does not say), CPUs."""

    name: str
    cpus: frozenset[int]
    perf_type: int | None = None


@dataclass
class Topology:
    """CPU -> host PMU map with clusters, capacities and frequency tables.

    ``pmus`` are in registration order (perf type order when known), which decides the default
    PMU when several could cover a CPU (``kvm_pmu_probe_armpmu`` takes the first). ``midr``
    (per CPU), ``overrides`` and ``pmceid`` (per PMU name) and ``reserved`` (per CPU) are the
    host facts of :mod:`importers.host.facts`, as far as the source gives them.
    """

    pmus: list[PmuSpec]
    source: str
    cluster: dict[int, int] = field(default_factory=dict)
    capacity: dict[int, int] = field(default_factory=dict)
    freqs_khz: dict[int, list[int]] = field(default_factory=dict)
    midr: dict[int, int] = field(default_factory=dict)
    overrides: dict[str, PmuOverride] = field(default_factory=dict)
    pmceid: dict[str, tuple[int, int]] = field(default_factory=dict)
    reserved: dict[int, Reservation] = field(default_factory=dict)

    @property
    def inferred(self) -> bool:
        """Clusters guessed from cpu_frequency, not a real CPU -> PMU map."""
        return self.source == INFERRED_SOURCE

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for pmu in self.pmus:
            if not pmu.cpus:
                raise TopologyError(f"{self.source}: PMU {pmu.name} covers no CPU")
            for cpu in pmu.cpus:
                if cpu in seen:
                    raise TopologyError(
                        f"{self.source}: CPU {cpu} is claimed by both {seen[cpu]} and {pmu.name}"
                    )
                seen[cpu] = pmu.name
        if not self.cluster:
            self.cluster = {cpu: i for i, p in enumerate(self.pmus) for cpu in p.cpus}

    @property
    def cpus(self) -> list[int]:
        return sorted({c for p in self.pmus for c in p.cpus})

    def pmu_of(self, cpu: int) -> PmuSpec | None:
        """The first PMU in registration order that covers ``cpu``."""
        return next((p for p in self.pmus if cpu in p.cpus), None)

    def max_freq_khz(self, cpu: int) -> int | None:
        freqs = self.freqs_khz.get(cpu)
        return max(freqs) if freqs else None

    def describe(self) -> str:
        """``armv8_cortex_a53=0,3-5 armv8_cortex_a57=1-2``: the --pmu form of this map."""
        return " ".join(f"{p.name}={format_cpulist(p.cpus)}" for p in self.pmus)

    def to_table(self) -> pa.Table:
        """The ``topology`` side table, one row per CPU (PMU facts repeated on its CPUs)."""
        rows = []
        for cpu in sorted({*self.cpus, *self.midr, *self.reserved}):
            pmu = self.pmu_of(cpu)
            stated = self.overrides.get(pmu.name, PmuOverride()) if pmu else PmuOverride()
            events = self.pmceid.get(pmu.name) if pmu else None
            held = self.reserved.get(cpu)
            rows.append(
                {
                    "cpu": cpu,
                    "pmu": pmu.name if pmu else None,
                    "pmu_type": pmu.perf_type if pmu else None,
                    "cluster": self.cluster.get(cpu),
                    "capacity": self.capacity.get(cpu),
                    "max_freq_khz": self.max_freq_khz(cpu),
                    "source": self.source,
                    "midr_el1": self.midr.get(cpu),
                    "pmuver": stated.pmuver,
                    "counters": stated.counters,
                    "aarch32_el0": stated.aarch32_el0,
                    "pmceid0": events[0] if events else None,
                    "pmceid1": events[1] if events else None,
                    "reserved_counters": held.counters if held else None,
                    "reserved_cycles": held.cycles if held else None,
                }
            )
        return pa.Table.from_pylist(rows, schema=TABLES["topology"])

    @classmethod
    def from_table(
        cls, table: pa.Table, source: str | None = None, where: str = "topology table"
    ) -> Topology:
        """Rebuild from a ``topology`` table (as carried by a capture).

        Raises
        ------
        TopologyError
            When rows disagree about a CPU (:func:`check_one_row_per_cpu`; ``where`` names
            the table in the message).
        """
        check_one_row_per_cpu(table, where)
        rows = table.to_pylist()  # one row per CPU: a few dozen at most
        by_pmu: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
        for row in rows:
            if row["pmu"] is not None:
                by_pmu.setdefault((row["pmu"], row["pmu_type"]), []).append(row)
        pmus: list[PmuSpec] = []
        overrides: dict[str, PmuOverride] = {}
        pmceid: dict[str, tuple[int, int]] = {}
        for (name, perf_type), part in by_pmu.items():  # in order of first appearance
            pmus.append(PmuSpec(name, frozenset(r["cpu"] for r in part), perf_type))
            first = part[0]
            stated = PmuOverride(
                first.get("pmuver"), first.get("counters"), first.get("aarch32_el0")
            )
            if stated != PmuOverride():
                overrides[name] = stated
            if first.get("pmceid0") is not None:
                pmceid[name] = (first["pmceid0"], first["pmceid1"] or 0)
        origin = source or (str(rows[0]["source"]) if rows else "capture")
        return cls(
            pmus=ordered(pmus),
            source=origin,
            cluster={r["cpu"]: r["cluster"] for r in rows if r["cluster"] is not None},
            capacity={r["cpu"]: r["capacity"] for r in rows if r["capacity"] is not None},
            freqs_khz={r["cpu"]: [r["max_freq_khz"]] for r in rows if r["max_freq_khz"]},
            midr={r["cpu"]: r["midr_el1"] for r in rows if r.get("midr_el1") is not None},
            overrides=overrides,
            pmceid=pmceid,
            reserved={
                r["cpu"]: Reservation(r["reserved_counters"] or 0, bool(r["reserved_cycles"]))
                for r in rows
                if r.get("reserved_counters") is not None or r.get("reserved_cycles")
            },
        )


def check_one_row_per_cpu(table: pa.Table, where: str) -> None:
    """Raise when two rows of a ``topology`` table state different facts of one CPU.

    :meth:`Topology.to_table` writes one row per CPU; a table edited or written by another
    tool may repeat a CPU, and taking either row would be a silent guess about the host (which
    PMU covers the CPU decides every stall). Repeated rows that agree are harmless.

    Raises
    ------
    TopologyError
        Naming ``where``, the CPU, its rows (0-based) and the columns that differ.
    """
    rows = table.to_pylist()  # one row per CPU: a few dozen at most
    facts = [c for c in table.column_names if c != "cpu"]
    at: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        at.setdefault(row["cpu"], []).append(i)
    for cpu, repeated in at.items():  # in order of first appearance
        differ = [c for c in facts if len({rows[i][c] for i in repeated}) > 1]
        if differ:
            values = "; ".join(
                f"row {i}: " + ", ".join(f"{c}={rows[i][c]}" for c in differ) for i in repeated
            )
            raise TopologyError(
                f"{where}: rows {', '.join(map(str, repeated))} give CPU {cpu} different "
                f"{', '.join(differ)} ({values}); keep one row per CPU (re-import the capture "
                "or correct the table)"
            )


def ordered(pmus: list[PmuSpec]) -> list[PmuSpec]:
    """Registration order: by perf type when every PMU has one, else by first CPU."""
    if pmus and all(p.perf_type is not None for p in pmus):
        return sorted(pmus, key=lambda p: (p.perf_type or 0, min(p.cpus)))
    return sorted(pmus, key=lambda p: min(p.cpus))


def from_cli(specs: list[str]) -> Topology:
    """``["armv8_cortex_a53=0,3-5", "armv8_cortex_a57:9=1-2"]`` (``:type`` optional)."""
    pmus = []
    for spec in specs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?::(\d+))?=([\d,\s-]+)", spec.strip())
        if not m:
            raise TopologyError(
                f"--pmu {spec!r}: write NAME=CPULIST, e.g. --pmu armv8_cortex_a53=0,3-5 "
                "(optionally NAME:PERF_TYPE=CPULIST)"
            )
        ptype = int(m.group(2)) if m.group(2) else None
        pmus.append(PmuSpec(m.group(1), parse_cpulist(m.group(3)), ptype))
    return Topology(pmus=ordered(pmus), source="command line")


def parse_reserved_specs(specs: list[str]) -> dict[int, Reservation]:
    """``["0-7=cycles", "4=2"]`` (``--host-reserved-counters``) -> CPU -> reservation."""
    reserved: dict[int, Reservation] = {}
    for spec in specs:
        cpus, sep, held = spec.partition("=")
        if not sep:
            raise TopologyError(
                f"--host-reserved-counters {spec!r}: write CPUS=N, CPUS=cycles or CPUS=cycles+N, "
                "e.g. 0-7=cycles for the hard-lockup detector"
            )
        where = f"--host-reserved-counters {spec!r}"
        reserved.update(dict.fromkeys(parse_cpulist(cpus), parse_reservation(where, held)))
    return reserved


def from_snapshot(path: Path, data: dict[str, Any]) -> Topology:
    """A ``pmu-replay-topology/1`` sysfs snapshot (see module docstring)."""
    devices = data.get("event_source_devices")
    if not isinstance(devices, dict):
        raise TopologyError(f"{path}: no event_source_devices object ({SNAPSHOT_FORMAT})")
    pmus = []
    pmceid = {}
    for name, files in sorted(devices.items()):
        if not isinstance(files, dict) or "cpus" not in files:
            continue  # not a core PMU (software, tracepoint, uncore with cpumask, ...)
        ptype = files.get("type")
        pmus.append(PmuSpec(name, parse_cpulist(str(files["cpus"])), _int(path, ptype)))
        if "events" in files:
            pmceid[name] = pmceid_from_events(f"{path}: {name}", files["events"])
    if not pmus:
        raise TopologyError(
            f"{path}: no core PMU (no event source with a cpus file): this host exposes no "
            "per-CPU PMU to KVM; a vPMU cannot be offered on it"
        )
    cluster: dict[int, int] = {}
    freqs: dict[int, list[int]] = {}
    for i, (_, policy) in enumerate(sorted(data.get("cpufreq", {}).items())):
        cpus = parse_cpulist(str(policy.get("related_cpus", "")))
        table = policy.get("scaling_available_frequencies") or policy.get("cpuinfo_max_freq", "")
        values = sorted({int(v) for v in str(table).split()})
        for cpu in cpus:
            cluster[cpu] = i
            if values:
                freqs[cpu] = values
    capacity = {int(c): int(str(v).strip()) for c, v in data.get("cpu_capacity", {}).items()}
    where = str(path)
    reserved = {
        cpu: parse_reservation(where, held)
        for cpus, held in _object(where, data, "host_reserved_counters").items()
        for cpu in parse_cpulist(str(cpus))
    }
    return Topology(
        ordered(pmus),
        "sysfs snapshot",
        cluster,
        capacity,
        freqs,
        midr=parse_midrs(where, data.get("midr_el1", {})),
        overrides=parse_overrides(where, data.get("pmus", {})),
        pmceid=pmceid,
        reserved=reserved,
    )


def _object(where: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise TopologyError(f"{where}: {key} must be an object")
    return value


def _int(path: Path, value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise TopologyError(f"{path}: perf type {value!r} is not an integer") from None


def infer_from_frequency(cpu_frequency: pa.Table) -> Topology | None:
    """Last resort: CPUs whose frequency always changes together form one cluster.

    Each cluster becomes a PMU named ``inferred_cluster<i>_pmu`` (ordered by highest
    frequency seen), and the result is flagged ``inferred``. None without frequency events.
    """
    # an event without its CPU or its frequency says nothing about clusters
    columns = ("ts", "seq", "cpu_id", "state")
    known = drop_null(cpu_frequency.select(columns))
    if known.num_rows == 0:
        return None
    ts, seq, cpu_id, state = (known.column(c).to_numpy() for c in columns)
    order = np.lexsort((seq, ts))
    cpu_id, state = cpu_id[order], state[order]
    # each CPU's states in time order, the CPUs in order of their first event
    cpus, first = np.unique(cpu_id, return_index=True)
    by_cpu = np.argsort(cpu_id, kind="stable")
    bounds = np.searchsorted(cpu_id[by_cpu], cpus)
    groups: dict[tuple[int, ...], list[int]] = {}
    tops: dict[tuple[int, ...], int] = {}
    for k in np.argsort(first, kind="stable").tolist():
        states = state[by_cpu[bounds[k] : bounds[k + 1] if k + 1 < len(cpus) else None]]
        key = tuple(states.tolist())
        groups.setdefault(key, []).append(int(cpus[k]))
        tops[key] = int(states.max())
    keys = sorted(groups, key=lambda k: (tops[k], min(groups[k])))
    pmus = [PmuSpec(f"inferred_cluster{i}_pmu", frozenset(groups[k])) for i, k in enumerate(keys)]
    freqs = {cpu: [tops[k]] for k in keys for cpu in groups[k]}
    return Topology(ordered(pmus), INFERRED_SOURCE, freqs_khz=freqs)
