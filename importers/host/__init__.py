"""The host description: which PMU covers each CPU, and which threads are vCPUs.

``Topology`` (CPU -> host PMU, clusters, capacities, frequencies) and its snapshot format
(:mod:`~importers.host.topology`), LISA platform files (:mod:`~importers.host.lisa`), the
choice among topology sources (:mod:`~importers.host.resolve`), vCPU discovery
(:mod:`~importers.host.vcpus`) and ``pmu-replay record`` directories, which carry both
(:mod:`~importers.host.record_dir`). The Arm PMUv3 facts a host description states
(:mod:`~importers.host.pmuv3`) are imported by the vPMU model too, so the names below load on
first use: importing that light module does not load polars and pyarrow with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importers.host.record_dir import read_record_dir
    from importers.host.resolve import load_topology, resolve_topology
    from importers.host.topology import PmuSpec, Topology
    from importers.host.vcpus import discover_vcpus, parse_vcpu_specs

_HOME = {
    "PmuSpec": "topology",
    "Topology": "topology",
    "discover_vcpus": "vcpus",
    "load_topology": "resolve",
    "parse_vcpu_specs": "vcpus",
    "read_record_dir": "record_dir",
    "resolve_topology": "resolve",
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
    if name in _HOME:
        return getattr(import_module(f"importers.host.{_HOME[name]}"), name)
    raise AttributeError(f"module 'importers.host' has no attribute {name!r}")
