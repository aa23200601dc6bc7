"""``Topology``: which host PMU covers each CPU, plus clusters, capacities and frequencies.

KVM binds a VM's vPMU to host PMUs by CPU, so every replay needs this map. Sources, strongest
first (each result records its ``source``):

1. a sysfs snapshot (JSON, written by ``pmu-replay record`` or by hand, format below);
2. the capture itself (perf.data ``PMU_MAPPINGS`` / ``HYBRID_TOPOLOGY``, ``topology`` table);
3. a LISA platform description (``platforms/*.json`` or ``plat_info.yml``);
4. the command line: ``--pmu armv8_cortex_a53=0,3-5 --pmu armv8_cortex_a57=1-2``;
5. last resort: clusters inferred from ``cpu_frequency`` events (reported as inferred).

Sysfs snapshot format (``pmu-replay-topology/1``), every value a sysfs file's text::

    {"format": "pmu-replay-topology/1",
     "cpus_possible": "0-5",
     "event_source_devices": {"armv8_cortex_a53": {"type": "8", "cpus": "0,3-5"}, ...},
     "cpufreq": {"policy0": {"related_cpus": "0 3 4 5",
                             "scaling_available_frequencies": "450000 575000 ...",
                             "cpuinfo_max_freq": "850000"}, ...},
     "cpu_capacity": {"0": "446", ...}}

Core PMUs are the event sources with a ``cpus`` file (``/sys/bus/event_source/devices/*/cpus``,
drivers/perf/arm_pmu.c); uncore PMUs expose ``cpumask`` instead and are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import yaml

from importers.errors import TopologyError
from importers.schema import conform

SNAPSHOT_FORMAT = "pmu-replay-topology/1"
INFERRED_SOURCE = "inferred from cpu_frequency"

# Core names used by LISA platform files -> Linux DT PMU names (drivers/perf/arm_pmuv3.c
# armv8_<core>_pmu_init). Kryo "Silver"/"Gold" cores have no Cortex name of their own.
_CORE_PMU = {
    "a35": "armv8_cortex_a35",
    "a53": "armv8_cortex_a53",
    "a55": "armv8_cortex_a55",
    "a57": "armv8_cortex_a57",
    "a65": "armv8_cortex_a65",
    "a72": "armv8_cortex_a72",
    "a73": "armv8_cortex_a73",
    "a75": "armv8_cortex_a75",
    "a76": "armv8_cortex_a76",
    "a77": "armv8_cortex_a77",
    "a78": "armv8_cortex_a78",
    "x1": "armv8_cortex_x1",
    "a510": "armv9_cortex_a510",
    "a710": "armv9_cortex_a710",
    "x2": "armv9_cortex_x2",
    "a7": "armv7_cortex_a7",
    "a15": "armv7_cortex_a15",
}
# Named boards whose LISA plat_info.yml gives clusters but no core names (public board specs).
_BOARD_CORES = {
    "juno": ("a53", "a57"),
    "juno-r0": ("a53", "a57"),
    "juno-r1": ("a53", "a57"),
    "juno-r2": ("a53", "a72"),
    "hikey960": ("a53", "a73"),
}


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
    PMU when several could cover a CPU (``kvm_pmu_probe_armpmu`` takes the first).
    """

    pmus: list[PmuSpec]
    source: str
    cluster: dict[int, int] = field(default_factory=dict)
    capacity: dict[int, int] = field(default_factory=dict)
    freqs_khz: dict[int, list[int]] = field(default_factory=dict)
    inferred: bool = False

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
        """The ``topology`` side table, one row per CPU."""
        rows = []
        for cpu in self.cpus:
            pmu = self.pmu_of(cpu)
            rows.append(
                {
                    "cpu": cpu,
                    "pmu": pmu.name if pmu else None,
                    "pmu_type": pmu.perf_type if pmu else None,
                    "cluster": self.cluster.get(cpu),
                    "capacity": self.capacity.get(cpu),
                    "max_freq_khz": self.max_freq_khz(cpu),
                    "source": self.source,
                }
            )
        return conform("topology", pl.DataFrame(rows).to_arrow())

    @classmethod
    def from_table(cls, table: pa.Table, source: str | None = None) -> Topology:
        """Rebuild from a ``topology`` table (as carried by a capture)."""
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        pmus: list[PmuSpec] = []
        for (name, ptype), part in df.filter(pl.col("pmu").is_not_null()).group_by(
            "pmu", "pmu_type", maintain_order=True
        ):
            perf_type = None if ptype is None else int(str(ptype))
            pmus.append(PmuSpec(str(name), frozenset(part["cpu"].to_list()), perf_type))
        rows = df.to_dicts()
        origin = source or (str(rows[0]["source"]) if rows else "capture")
        return cls(
            pmus=_ordered(pmus),
            source=origin,
            inferred=origin == INFERRED_SOURCE,
            cluster={r["cpu"]: r["cluster"] for r in rows if r["cluster"] is not None},
            capacity={r["cpu"]: r["capacity"] for r in rows if r["capacity"] is not None},
            freqs_khz={r["cpu"]: [r["max_freq_khz"]] for r in rows if r["max_freq_khz"]},
        )


def _ordered(pmus: list[PmuSpec]) -> list[PmuSpec]:
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
    return Topology(pmus=_ordered(pmus), source="command line")


def from_snapshot(path: Path, data: dict[str, Any]) -> Topology:
    """A ``pmu-replay-topology/1`` sysfs snapshot (see module docstring)."""
    devices = data.get("event_source_devices")
    if not isinstance(devices, dict):
        raise TopologyError(f"{path}: no event_source_devices object ({SNAPSHOT_FORMAT})")
    pmus = []
    for name, files in sorted(devices.items()):
        if not isinstance(files, dict) or "cpus" not in files:
            continue  # not a core PMU (software, tracepoint, uncore with cpumask, ...)
        ptype = files.get("type")
        pmus.append(PmuSpec(name, parse_cpulist(str(files["cpus"])), _int(path, ptype)))
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
    return Topology(_ordered(pmus), "sysfs snapshot", cluster, capacity, freqs)


def _int(path: Path, value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise TopologyError(f"{path}: perf type {value!r} is not an integer") from None


def from_lisa_json(path: Path, data: dict[str, Any]) -> Topology:
    """A LISA ``platforms/*.json`` file: ``board.cores`` names or ``clusters``/``freqs``."""
    cores = data.get("board", {}).get("cores")
    freqs_by_cluster = data.get("freqs", {})
    if cores:
        by_pmu: dict[str, set[int]] = {}
        for cpu, core in enumerate(cores):
            by_pmu.setdefault(_pmu_name(str(core)), set()).add(cpu)
        pmus = [PmuSpec(name, frozenset(cpus)) for name, cpus in by_pmu.items()]
        # clusters: one per distinct board core entry ("A53_0" and "A53_1" are two clusters)
        names = list(dict.fromkeys(str(c) for c in cores))
        cluster = {cpu: names.index(str(core)) for cpu, core in enumerate(cores)}
        return Topology(_ordered(pmus), "LISA platform file", cluster=cluster)
    clusters = data.get("clusters")
    if isinstance(clusters, dict) and clusters:
        return _from_clusters(
            path,
            data.get("name", path.stem),
            list(clusters.values()),
            {},
            [freqs_by_cluster.get(k, []) for k in clusters],
        )
    raise TopologyError(
        f"{path}: LISA platform file without a CPU description (no board.cores, no clusters); "
        "give the PMUs with --pmu NAME=CPULIST"
    )


def _pmu_name(core: str) -> str:
    key = re.sub(r"_\d+$", "", core).lower().removeprefix("cortex-").removeprefix("cortex_")
    return _CORE_PMU.get(key, f"armv8_{re.sub(r'[^a-z0-9]+', '_', key)}")


def from_plat_info(path: Path, data: dict[str, Any]) -> Topology:
    """LISA ``plat_info.yml``: ``freq-domains``, ``cpu-capacities``, ``freqs``, ``name``."""
    conf = data.get("platform-info", {}).get("conf", {})
    domains = conf.get("freq-domains")
    if not domains:
        raise TopologyError(f"{path}: plat_info without freq-domains; give --pmu NAME=CPULIST")
    capacities = conf.get("cpu-capacities", {})
    capacity = {
        int(c): int(v)
        for c, v in (capacities.get("orig") or capacities).items()
        if str(c).isdigit()
    }
    freqs = conf.get("freqs", {})
    per_domain = [sorted(freqs.get(d[0], [])) for d in domains]
    return _from_clusters(path, str(conf.get("name", "")), domains, capacity, per_domain)


def _from_clusters(
    path: Path,
    board: str,
    clusters: list[list[int]],
    capacity: dict[int, int],
    freqs: list[list[int]],
) -> Topology:
    """Clusters ordered from smallest to biggest core, named from the board when known."""

    def size(i: int) -> tuple[int, int]:
        cpus = clusters[i]
        return (max((capacity.get(c, 0) for c in cpus), default=0), max(freqs[i] or [0]))

    order = sorted(range(len(clusters)), key=size)
    known = _BOARD_CORES.get(board.lower())
    pmus = []
    for rank, i in enumerate(order):
        if known and len(known) == len(clusters):
            name = _CORE_PMU[known[rank]]
        else:
            name = f"cluster{rank}_pmu"
        pmus.append(PmuSpec(name, frozenset(int(c) for c in clusters[i])))
    cluster = {int(c): i for i, cpus in enumerate(clusters) for c in cpus}
    cpu_freqs = {
        int(c): list(freqs[i]) for i, cpus in enumerate(clusters) for c in cpus if freqs[i]
    }
    return Topology(_ordered(pmus), "LISA platform file", cluster, capacity, cpu_freqs)


class _AnyTagLoader(yaml.SafeLoader):
    """Safe YAML loading that reads Python-object tags (LISA/devlib dumps) as plain data."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Iterator[Any]:
    # A generator, like PyYAML's own constructors, so recursive anchors (&id001) resolve.
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        yield mapping
        mapping.update(loader.construct_mapping(node))
    elif isinstance(node, yaml.SequenceNode):
        sequence: list[Any] = []
        yield sequence
        sequence.extend(loader.construct_sequence(node))
    else:
        yield loader.construct_scalar(node)  # type: ignore[arg-type]


_AnyTagLoader.add_multi_constructor("!", _any_tag)
_AnyTagLoader.add_multi_constructor("tag:yaml.org,2002:python/", _any_tag)


def _relaxed_json(text: str) -> Any:
    """JSON with ``//`` comments and trailing commas, as LISA's platform files are written."""
    no_comments = re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*', lambda m: m.group(1) or "", text)
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", no_comments))


def load_topology(path: str | Path) -> Topology:
    """Read a topology file: sysfs snapshot JSON, LISA JSON or LISA ``plat_info.yml``."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TopologyError(f"{p}: cannot read topology file ({exc.strerror})") from None
    try:
        if p.suffix in (".yml", ".yaml"):
            data = yaml.load(text, Loader=_AnyTagLoader)
        else:
            data = _relaxed_json(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise TopologyError(f"{p}: not valid YAML/JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TopologyError(f"{p}: expected a mapping at the top level")
    if data.get("format") == SNAPSHOT_FORMAT or "event_source_devices" in data:
        return from_snapshot(p, data)
    if "platform-info" in data:
        return from_plat_info(p, data)
    return from_lisa_json(p, data)


def infer_from_frequency(cpu_frequency: pl.DataFrame) -> Topology | None:
    """Last resort: CPUs whose frequency always changes together form one cluster.

    Each cluster becomes a PMU named ``inferred_cluster<i>_pmu`` (ordered by highest
    frequency seen), and the result is flagged ``inferred``. None without frequency events.
    """
    if cpu_frequency.is_empty():
        return None
    per_cpu = (
        cpu_frequency.sort("ts", "seq")
        .group_by("cpu_id", maintain_order=True)
        .agg(pl.col("state"), pl.col("state").max().alias("top"))
    )
    groups: dict[tuple[int, ...], list[int]] = {}
    tops: dict[tuple[int, ...], int] = {}
    for row in per_cpu.iter_rows(named=True):
        key = tuple(row["state"])
        groups.setdefault(key, []).append(int(row["cpu_id"]))
        tops[key] = int(row["top"])
    keys = sorted(groups, key=lambda k: (tops[k], min(groups[k])))
    pmus = [PmuSpec(f"inferred_cluster{i}_pmu", frozenset(groups[k])) for i, k in enumerate(keys)]
    freqs = {cpu: [tops[k]] for k in keys for cpu in groups[k]}
    return Topology(_ordered(pmus), INFERRED_SOURCE, freqs_khz=freqs, inferred=True)


def resolve_topology(
    capture_topology: pa.Table | None,
    cpu_frequency: pl.DataFrame,
    *,
    topology_file: str | Path | None = None,
    pmu_specs: list[str] | None = None,
) -> Topology | None:
    """The topology to use, strongest source first (see module docstring); None if none.

    A topology file and ``--pmu`` options are both explicit statements; giving both is an
    error rather than a silent choice.
    """
    if topology_file is not None and pmu_specs:
        raise TopologyError("give either --topology FILE or --pmu NAME=CPULIST options, not both")
    if topology_file is not None:
        return load_topology(topology_file)
    if pmu_specs:
        return from_cli(pmu_specs)
    if capture_topology is not None and capture_topology.num_rows:
        return Topology.from_table(capture_topology)
    return infer_from_frequency(cpu_frequency)
