"""``pmu-replay import``: any capture -> a directory of Parquet tables, plus a summary."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from rich.table import Table

from importers.arrow_compute import total
from importers.capture import Capture
from importers.capture_writer import CaptureWriter, saving
from importers.host.topology import Topology, format_cpulist
from replay.commands import summary
from replay.commands.console import byte_progress, stdout
from replay.opening import capture_topology, open_capture

HELP = summary("import")
EPILOG = """\
examples:
  pmu-replay import trace.dat -o cap/
  pmu-replay import trace.txt -o cap/ --strict     # any malformed line is an error
  pmu-replay import perf.data -o cap/ --json | jq .events

The output directory holds one Parquet file per table (sched_switch.parquet, kvm_entry.parquet,
events.parquet, tasks.parquet, lost_events.parquet, ...) and metadata.json; open any table with
polars.read_parquet. Lines or records that cannot be decoded are counted and listed (first few
positions) in the summary and in metadata.json; --strict makes them errors instead.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("capture", metavar="CAPTURE", help="capture file (format is detected)")
    p.add_argument("-o", "--output", metavar="DIR", help="write the tables to DIR")
    p.add_argument("--strict", action="store_true", help="fail on the first undecodable input")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_host_options(p)
    p.set_defaults(run=run)


def add_host_options(p: argparse.ArgumentParser) -> None:
    """--topology / --pmu / --vcpu, shared by every command that reads a capture."""
    g = p.add_argument_group("host and VM description (default: what the capture says)")
    g.add_argument(
        "--topology",
        metavar="FILE",
        help="CPU -> PMU map: sysfs snapshot JSON (pmu-replay record), LISA platform JSON or "
        "plat_info.yml",
    )
    g.add_argument(
        "--pmu",
        action="append",
        default=[],
        metavar="NAME=CPUS",
        help="host PMU and the CPUs it covers, e.g. --pmu armv8_cortex_a53=0,3-5 "
        "--pmu armv8_cortex_a57=1-2 (repeat per PMU; NAME:TYPE=CPUS sets the perf type)",
    )
    g.add_argument(
        "--host-reserved-counters",
        action="append",
        default=[],
        metavar="CPUS=N",
        help="host condition: counters the host's own pinned perf events hold on CPUS, as N "
        "general-purpose counters, 'cycles' (the cycle counter, e.g. the hard-lockup "
        "detector's event: --host-reserved-counters 0-7=cycles) or cycles+N (repeatable)",
    )
    g.add_argument(
        "--vcpu",
        action="append",
        default=[],
        metavar="TID=VM:INDEX",
        help="host thread TID runs vCPU INDEX of VM (repeat per vCPU); default: discover from "
        "thread names (QEMU 'CPU n/KVM', crosvm, kvmtool, Firecracker, cloud-hypervisor) and "
        "kvm events",
    )
    g.add_argument(
        "--tsc-khz",
        type=int,
        metavar="N",
        help="the capture's raw clock (trace_clock x86-tsc or counter, no conversion recorded) "
        "ticks at N kHz: convert its timestamps to ns (replay refuses raw clock counts)",
    )


def open_from_args(args: argparse.Namespace, writer: CaptureWriter | None = None) -> Capture:
    """The capture named on the command line, with --topology/--pmu/--vcpu applied (large
    tables written to ``writer`` as they are decoded, where the importer can)."""
    with byte_progress(f"importing {Path(args.capture).name}") as progress:
        return open_capture(
            args.capture,
            topology=args.topology,
            pmus=args.pmu,
            vcpus=args.vcpu,
            reserved_counters=args.host_reserved_counters,
            strict=args.strict,
            progress=progress,
            tsc_khz=args.tsc_khz,
            writer=writer,
        )


def run(args: argparse.Namespace) -> int:
    if args.output:
        with saving(args.output) as writer:
            capture = open_from_args(args, writer)
            writer.finish(capture)
    else:
        capture = open_from_args(args)
    summary = summarize(capture)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print_summary(summary, args.output)
    if not summary["vms"]:
        # what to replay instead, as a command to run on what was just imported
        command = f"pmu-replay compare {shlex.quote(args.output or args.capture)}"
        from replay.standins import stand_in_advice  # polars: loaded only when it advises

        advice = stand_in_advice(capture, capture_topology(capture), command)
        if advice:
            stdout.print(advice, markup=False, highlight=False, soft_wrap=True)  # copyable
    return 0


def summarize(capture: Capture) -> dict[str, Any]:
    """The import summary as plain data (what ``--json`` prints)."""
    meta = capture.metadata
    lost = capture.table("lost_events").column("count")
    vcpus = capture.table("vcpus")
    duration = None
    if meta.first_ts is not None and meta.last_ts is not None:
        duration = meta.last_ts - meta.first_ts
    return {
        "source": meta.source_path,
        "sha256": meta.source_sha256,
        "format": meta.format,
        "clock": meta.clock,
        "ts_unit": meta.ts_unit,
        "cpus": meta.cpu_count,
        "first_ts": meta.first_ts,
        "last_ts": meta.last_ts,
        "duration": duration,
        "time_outliers": meta.extra.get("time_outliers"),
        "events": capture.event_counts(),
        "lost_event_markers": len(lost),
        "lost_events": int(total(lost).as_py() or 0),
        "lost_events_unknown_count": lost.null_count,
        "skipped": meta.skipped,
        "topology": _topology_summary(capture),
        "vcpus": vcpus.select(["tid", "vm", "vcpu_index", "comm", "method"]).to_pylist(),
        "vms": sorted({vm for vm in vcpus.column("vm").to_pylist() if vm is not None}),
    }


def _topology_summary(capture: Capture) -> dict[str, Any] | None:
    table = capture.tables.get("topology")
    if table is None or table.num_rows == 0:
        return None
    topo = Topology.from_table(table)
    return {
        "source": topo.source,
        "pmus": {p.name: format_cpulist(p.cpus) for p in topo.pmus},
    }


def print_summary(summary: dict[str, Any], output: str | None) -> None:
    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("source", f"{summary['source']} ({summary['format']})")
    head.add_row("clock", f"{summary['clock'] or 'unknown'} ({summary['ts_unit']})")
    head.add_row("CPUs", str(summary["cpus"] if summary["cpus"] is not None else "unknown"))
    if summary["duration"] is not None:
        unit = summary["ts_unit"]
        span = (
            f"{summary['duration'] / 1e9:.6f} s"
            if unit == "ns"
            else f"{summary['duration']} {unit} units"
        )
        head.add_row("duration", span)
    outliers = summary["time_outliers"]
    if outliers:
        kinds = ", ".join(f"{n} {kind}" for kind, n in outliers["records"].items())
        head.add_row("time outliers", f"{kinds} timed far outside that range (not in it)")
    lost = summary["lost_events"]
    if summary["lost_event_markers"]:
        unknown = summary["lost_events_unknown_count"]
        note = f" (+{unknown} markers without a count)" if unknown else ""
        head.add_row("lost events", f"{lost} in {summary['lost_event_markers']} markers{note}")
    else:
        head.add_row("lost events", "none reported")
    topo = summary["topology"]
    if topo:
        pmus = "  ".join(f"{name}={cpus}" for name, cpus in topo["pmus"].items())
        head.add_row("topology", f"{pmus}  ({topo['source']})")
    else:
        head.add_row("topology", "unknown: give --topology FILE or --pmu NAME=CPUS to replay")
    vms = summary["vms"]
    head.add_row(
        "vCPUs",
        f"{len(summary['vcpus'])} in {len(vms)} VM(s): {', '.join(vms)}"
        if vms
        else "none found: give --vcpu TID=VM:INDEX to replay",
    )
    if output:
        head.add_row("written to", output)
    stdout.print(head)

    events = Table(title="events per kind", title_justify="left")
    events.add_column("event")
    events.add_column("count", justify="right")
    for name, count in summary["events"].items():
        events.add_row(name, f"{count:,}")
    stdout.print(events)

    if summary["skipped"]:
        skipped = Table(title="skipped input (counted, not imported)", title_justify="left")
        skipped.add_column("reason")
        skipped.add_column("count", justify="right")
        skipped.add_column("first at")
        for reason, rec in summary["skipped"].items():
            skipped.add_row(reason, f"{rec['count']:,}", ", ".join(rec["first"]))
        stdout.print(skipped)
