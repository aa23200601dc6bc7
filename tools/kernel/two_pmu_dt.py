"""Rewrite QEMU virt's device tree (dtc source) to declare two CPU PMUs split by PPI partitions.

QEMU's ``-machine virt`` describes one ``arm,armv8-pmuv3`` node on PPI 7 for every CPU. A
big.LITTLE board instead has one PMU node per core type, each on the same PPI number restricted
to its cluster with the GICv3 ``ppi-partitions`` binding
(Documentation/devicetree/bindings/interrupt-controller/arm,gic-v3.yaml). This script makes that
edit, so that the host kernel registers two ``arm_pmu``s, ``armv8_cortex_a53`` on CPUs 0-1 and
``armv8_cortex_a72`` on CPUs 2-3 (``drivers/perf/arm_pmu_platform.c::pmu_parse_percpu_irq`` takes
each PMU's ``supported_cpus`` from its partition):

* the GIC's ``#interrupt-cells`` becomes 4 (the fourth cell of a PPI names its partition, 0 for
  none), so every specifier that has the GIC as parent gets a fourth cell of 0: ``interrupts`` of
  the devices and the parent halves of the PCIe ``interrupt-map``;
* a ``ppi-partitions`` child of the GIC gets one partition per cluster, by CPU phandle;
* the PMU node is replaced by the two PMU nodes, each on PPI 7 of its partition;
* the random ``rng-seed``/``kaslr-seed`` of ``/chosen`` are dropped, so the edited tree is the
  same on every run.

Input is ``dtc -I dtb -O dts`` output of ``qemu-system-aarch64 -machine virt,...,dumpdtb=F``;
usage: ``python3 two_pmu_dt.py virt.dts > two-pmu.dts``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

#: Clusters of the edited host: (PMU compatible, partition label, CPU numbers).
CLUSTERS = (
    ("arm,cortex-a53-pmu", "little", (0, 1)),
    ("arm,cortex-a72-pmu", "big", (2, 3)),
)
PMU_PPI = 7  # QEMU virt's PMU interrupt (VIRTUAL_PMU_IRQ, INTID 23)
GIC_PPI = 1
IRQ_TYPE_LEVEL_HIGH = 4
GIC_CELLS = 3  # what QEMU writes; the binding needs 4 to name PPI partitions


@dataclass
class Node:
    """A node of the dtc source: its path and the line span of its body."""

    path: str
    start: int  # line of "name {"
    end: int  # line of "};"


def parse_nodes(lines: list[str]) -> list[Node]:
    """Every node with its line span (dtc prints one node opening or closing per line)."""
    nodes: list[Node] = []
    stack: list[tuple[str, int]] = []
    for i, line in enumerate(lines):
        text = line.strip()
        if text.endswith("{"):
            name = text[:-1].strip().split(":")[-1].strip()
            parent = stack[-1][0] if stack else ""
            path = "/" if name == "/" else f"{parent.rstrip('/')}/{name}"
            stack.append((path, i))
        elif text == "};":
            path, start = stack.pop()
            nodes.append(Node(path, start, i))
    return nodes


def cells(value: str) -> list[str]:
    """The cells of a ``<...>`` property value."""
    m = re.fullmatch(r"\s*<([^>]*)>\s*;\s*", value)
    if not m:
        raise ValueError(f"not a single cell array: {value!r}")
    return m.group(1).split()


def prop(lines: list[str], node: Node, name: str) -> tuple[int, str] | None:
    """Line number and raw value of property ``name`` directly in ``node``."""
    depth = 0
    for i in range(node.start + 1, node.end):
        text = lines[i].strip()
        if text.endswith("{"):
            depth += 1
        elif text == "};":
            depth -= 1
        elif depth == 0 and text.startswith(f"{name} = "):
            return i, text[len(name) + 3 :]
    return None


def need(lines: list[str], node: Node, name: str) -> tuple[int, str]:
    """Like :func:`prop`, for a property the edit cannot do without."""
    found = prop(lines, node, name)
    if found is None:
        raise ValueError(f"{node.path} has no {name} property")
    return found


def number(lines: list[str], node: Node, name: str) -> int:
    """A one-cell property's value."""
    return int(cells(need(lines, node, name)[1])[0], 16)


def widen(spec: list[str], width: int) -> list[str]:
    """Append a 0 fourth cell to every ``width``-cell GIC specifier of ``spec``."""
    if len(spec) % width:
        raise ValueError(f"{len(spec)} cells are not a multiple of {width}")
    out: list[str] = []
    for k in range(0, len(spec), width):
        out += [*spec[k : k + width], "0x00"]
    return out


def widen_interrupt_map(spec: list[str], child_cells: int, parent_addr_cells: int) -> list[str]:
    """Widen the parent specifiers of an ``interrupt-map`` whose parent is the GIC."""
    entry = child_cells + 1 + parent_addr_cells + GIC_CELLS
    if len(spec) % entry:
        raise ValueError("interrupt-map length does not match its cell counts")
    out: list[str] = []
    for k in range(0, len(spec), entry):
        out += [*spec[k : k + entry], "0x00"]
    return out


def edit(source: str) -> str:
    """The edited dtc source (see module docstring)."""
    lines = source.splitlines()
    nodes = parse_nodes(lines)
    by_path = {n.path: n for n in nodes}
    gic = next(n for n in nodes if '"arm,gic-v3"' in (prop(lines, n, "compatible") or (0, ""))[1])
    gic_phandle = cells(need(lines, gic, "phandle")[1])[0]
    cpu_phandles = {}
    for node in nodes:
        m = re.fullmatch(r"/cpus/cpu@(\d+)", node.path)
        if m and (ph := prop(lines, node, "phandle")):
            cpu_phandles[int(m.group(1), 16)] = cells(ph[1])[0]
    root_parent = prop(lines, by_path["/"], "interrupt-parent")
    replace: dict[int, str] = {}
    for node in nodes:
        parent = prop(lines, node, "interrupt-parent") or root_parent
        on_gic = parent is not None and cells(parent[1])[0] == gic_phandle
        irqs = prop(lines, node, "interrupts")
        if irqs and on_gic and not node.path.endswith("/pmu"):
            indent = lines[irqs[0]][: len(lines[irqs[0]]) - len(lines[irqs[0]].lstrip())]
            wide = widen(cells(irqs[1]), GIC_CELLS)
            replace[irqs[0]] = f"{indent}interrupts = <{' '.join(wide)}>;"
        imap = prop(lines, node, "interrupt-map")
        if imap:
            child = number(lines, node, "#interrupt-cells") + number(lines, node, "#address-cells")
            wide = widen_interrupt_map(cells(imap[1]), child, number(lines, gic, "#address-cells"))
            indent = lines[imap[0]][: len(lines[imap[0]]) - len(lines[imap[0]].lstrip())]
            replace[imap[0]] = f"{indent}interrupt-map = <{' '.join(wide)}>;"
    cells_line = need(lines, gic, "#interrupt-cells")
    replace[cells_line[0]] = lines[cells_line[0]].replace(
        f"#interrupt-cells = <0x{GIC_CELLS:02x}>", "#interrupt-cells = <0x04>"
    )
    chosen = by_path.get("/chosen")
    drop: set[int] = set()
    if chosen:
        for seed in ("rng-seed", "kaslr-seed"):
            if (p := prop(lines, chosen, seed)) is not None:
                drop.add(p[0])
    pmu = by_path.get("/pmu")
    if pmu is None:
        raise ValueError("QEMU's device tree has no /pmu node (run QEMU with a PMU: -cpu max)")
    drop.update(range(pmu.start, pmu.end + 1))
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in drop:
            if pmu is not None and i == pmu.start:
                out += pmu_nodes()
            continue
        if i == gic.end:  # after the GIC's properties and its ITS child
            out += partitions(cpu_phandles)
        out.append(replace.get(i, line))
    return "\n".join(out) + "\n"


def partitions(cpu_phandles: dict[int, str]) -> list[str]:
    """The GIC's ``ppi-partitions`` child: one partition per cluster."""
    out = ["", "\t\tppi-partitions {"]
    for _, label, cpus in CLUSTERS:
        refs = " ".join(cpu_phandles[c] for c in cpus)
        out += [
            f"\t\t\tpart_{label}: interrupt-partition-{label} {{",
            f"\t\t\t\taffinity = <{refs}>;",
            "\t\t\t};",
        ]
    return [*out, "\t\t};"]


def pmu_nodes() -> list[str]:
    """One PMU node per cluster, on PMU_PPI of the cluster's partition."""
    out: list[str] = []
    for compatible, label, _ in CLUSTERS:
        out += [
            f"\tpmu-{label} {{",
            f'\t\tcompatible = "{compatible}";',
            f"\t\tinterrupts = <{GIC_PPI:#04x} {PMU_PPI:#04x} {IRQ_TYPE_LEVEL_HIGH:#04x} "
            f"&part_{label}>;",
            "\t};",
            "",
        ]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as src:
        sys.stdout.write(edit(src.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
