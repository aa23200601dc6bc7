"""The host description: which PMU covers each CPU, and which threads are vCPUs.

``Topology`` (CPU -> host PMU, clusters, capacities, frequencies) and its snapshot format
(:mod:`~importers.host.topology`), LISA platform files (:mod:`~importers.host.lisa`), the
choice among topology sources (:mod:`~importers.host.resolve`), vCPU discovery
(:mod:`~importers.host.vcpus`) and ``pmu-replay record`` directories, which carry both
(:mod:`~importers.host.record_dir`).
"""

from importers.host.record_dir import read_record_dir
from importers.host.resolve import load_topology, resolve_topology
from importers.host.topology import PmuSpec, Topology
from importers.host.vcpus import discover_vcpus, parse_vcpu_specs

__all__ = [
    "PmuSpec",
    "Topology",
    "discover_vcpus",
    "load_topology",
    "parse_vcpu_specs",
    "read_record_dir",
    "resolve_topology",
]
