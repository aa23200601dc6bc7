"""The host description: which PMU covers each CPU, and which threads are vCPUs.

``Topology`` (CPU -> host PMU, clusters, capacities, frequencies) and its snapshot format
(:mod:`~importers.host.topology`), LISA platform files (:mod:`~importers.host.lisa`), the
choice among topology sources (:mod:`~importers.host.resolve`), vCPU discovery
(:mod:`~importers.host.vcpus`) and ``pmu-replay record`` directories, which carry both
(:mod:`~importers.host.record_dir`).

The names below are loaded on first use (PEP 562): importing one of these modules does not load
the others (and polars, PyYAML and the vPMU model with them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importers.host.record_dir import read_record_dir
    from importers.host.resolve import load_topology, resolve_topology
    from importers.host.topology import PmuSpec, Topology
    from importers.host.vcpus import discover_vcpus, parse_vcpu_specs

_HOMES = {
    "read_record_dir": "importers.host.record_dir",
    "load_topology": "importers.host.resolve",
    "resolve_topology": "importers.host.resolve",
    "PmuSpec": "importers.host.topology",
    "Topology": "importers.host.topology",
    "discover_vcpus": "importers.host.vcpus",
    "parse_vcpu_specs": "importers.host.vcpus",
}

__all__ = [
    "PmuSpec",
    "Topology",
    "discover_vcpus",
    "load_topology",
    "parse_vcpu_specs",
    "read_record_dir",
    "resolve_topology",
]


def __getattr__(name: str) -> object:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'importers.host' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
