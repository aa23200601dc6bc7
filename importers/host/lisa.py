"""LISA platform descriptions as topologies: ``platforms/*.json`` and ``plat_info.yml``.

LISA's JSON platform files name each CPU's core (``board.cores``) or only list clusters and
frequencies; its ``plat_info.yml`` (a devlib/LISA dump with Python object tags) gives frequency
domains and capacities but no core names, so known boards are named from public specs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from importers.errors import TopologyError
from importers.host.topology import PmuSpec, Topology, ordered

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
        return Topology(ordered(pmus), "LISA platform file", cluster=cluster)
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
    return Topology(ordered(pmus), "LISA platform file", cluster, capacity, cpu_freqs)


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


def relaxed_json(text: str) -> Any:
    """JSON with ``//`` comments and trailing commas, as LISA's platform files are written."""
    no_comments = re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*', lambda m: m.group(1) or "", text)
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", no_comments))


def load_lisa_yaml(text: str) -> Any:
    """Parse ``plat_info.yml`` safely, reading devlib/LISA object tags as plain data."""
    return yaml.load(text, Loader=_AnyTagLoader)
