"""Where a topology comes from: topology files of every kind, and the choice among sources.

:mod:`importers.host.topology` defines the ``Topology`` and reads the snapshot format it owns;
:mod:`importers.host.lisa` reads LISA's platform files into it. This module sits above both:
it tells the files apart, and picks the strongest of the sources listed in
:mod:`importers.host.topology` (a file or ``--pmu`` given by the user, the capture's own, then
clusters inferred from ``cpu_frequency``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from importers.errors import TopologyError
from importers.host.topology import (
    SNAPSHOT_FORMAT,
    Topology,
    from_cli,
    from_snapshot,
    infer_from_frequency,
)


def load_topology(path: str | Path) -> Topology:
    """Read a topology file: sysfs snapshot JSON, LISA JSON or LISA ``plat_info.yml``."""
    # PyYAML and the LISA readers load with the first topology file, not with every import
    import yaml

    from importers.host.lisa import from_lisa_json, from_plat_info, load_lisa_yaml, relaxed_json

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TopologyError(f"{p}: cannot read topology file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise TopologyError(
            f"{p}: not a text file (byte {exc.start:#x} is not UTF-8); give a sysfs snapshot "
            "JSON, a LISA platform JSON or a plat_info.yml"
        ) from None
    try:
        yaml_file = p.suffix in (".yml", ".yaml")
        data = load_lisa_yaml(text) if yaml_file else relaxed_json(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise TopologyError(f"{p}: not valid YAML/JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TopologyError(f"{p}: expected a mapping at the top level")
    if data.get("format") == SNAPSHOT_FORMAT or "event_source_devices" in data:
        return from_snapshot(p, data)
    if "platform-info" in data:
        return from_plat_info(p, data)
    return from_lisa_json(p, data)


def resolve_topology(
    capture_topology: pa.Table | None,
    cpu_frequency: pa.Table,
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
