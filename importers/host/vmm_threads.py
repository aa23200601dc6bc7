"""How VMMs name their vCPU threads, and whether a capture can have vCPUs to discover at all.

The check is the cheap front of :func:`importers.host.vcpus.discover_vcpus`: a capture without
``kvm_entry``/``kvm_exit`` events and without a thread named like a vCPU thread has none to
find, and saying so takes no more than the thread names (not polars and the finder).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

#: (VMM, regex of its vCPU thread names, the index in group 1), see importers.host.vcpus
VMM_THREAD_NAMES: tuple[tuple[str, str], ...] = (
    ("qemu", r"^CPU (\d+)/KVM$"),
    ("crosvm", r"^crosvm_vcpu(\d+)$"),
    ("kvmtool", r"^kvm-vcpu-(\d+)$"),
    ("firecracker", r"^fc_vcpu (\d+)$"),
    ("cloud-hypervisor", r"^vcpu(\d+)$"),
)


def may_have_vcpus(tables: dict[str, pa.Table]) -> bool:
    """False when vCPU discovery cannot find any thread in a capture with these tables.

    Discovery takes threads that log ``kvm_entry``/``kvm_exit`` and threads whose name matches
    :data:`VMM_THREAD_NAMES`; a capture with neither has no vCPU to discover.
    """
    if any(tables[t].num_rows for t in ("kvm_entry", "kvm_exit") if t in tables):
        return True
    tasks = tables.get("tasks")
    if tasks is None or tasks.num_rows == 0:
        return False
    # Python's re, like the finder's (Rust) regex, takes any Unicode digit for \d; the
    # distinct names are few
    names = pc.unique(tasks.column("comm").combine_chunks().cast(pa.string())).to_pylist()
    pattern = re.compile("|".join(f"(?:{regex})" for _, regex in VMM_THREAD_NAMES))
    return any(pattern.search(name) for name in names if name is not None)
