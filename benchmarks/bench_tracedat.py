"""Benchmark: pmu-replay's trace.dat importer vs ``trace-cmd report`` on the same large file.

The input is made at run time, never committed:

* by default, a busy capture recorded on this machine in a private tracefs instance (sched,
  irq and timer events while worker threads sleep and wake for ``--seconds``), saved with
  ``trace-cmd extract`` (v7, zstd with trace-cmd 3.x); this needs root and tracefs;
* with ``--replicate FILE`` (or when recording is impossible), a v6 capture made by repeating
  the ring-buffer pages of a shared v6 capture, each copy shifted in time;
* or ``--input FILE`` to time an existing file.

A recording is cached under ``benchmarks/out/`` (``--fresh`` records again). Both tools read
the same file as whole processes, interleaved (see ``whole_process``): ``pmu-replay import F
-o D`` against ``trace-cmd report -i F > /dev/null``; medians of wall and CPU time, events/s,
the ratio and both peak RSS. Targets (issue 17): >= 5x faster than trace-cmd report on the
2 M-event recording, peak RSS <= 350 MiB.

    python benchmarks/bench_tracedat.py [--seconds 30] [--runs 5] [--input F | --replicate F]
        [--baseline CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sched_load import nap_and_wake
from whole_process import (
    ROOT,
    add_arguments,
    contenders_of,
    fresh,
    interleave,
    machine_line,
    pmu_replay,
    ratio_line,
    run_measured,
    table,
)

from importers.tracedat.file import read_container
from importers.tracedat.reader import open_reader
from replay.record import find_tracefs, tracefs_instance

OUT = ROOT / "benchmarks" / "out"

EVENTS = ["sched:*", "irq:*", "timer:*"]


def record(out: Path, seconds: float, threads: int, buffer_kb: int) -> None:
    """Record a busy capture in a private tracefs instance, saved with ``trace-cmd extract``.

    The instance (replay.record's) leaves the host's global tracing state alone and is
    removed afterwards, whatever happens.
    """
    root, mounted = find_tracefs()
    name = f"bench-tracedat-{os.getpid()}"
    try:
        with tracefs_instance(root, name) as inst:
            (inst / "tracing_on").write_text("0")  # a new instance is on: start with the load
            (inst / "buffer_size_kb").write_text(str(buffer_kb))
            (inst / "set_event").write_text("\n".join(EVENTS) + "\n")
            (inst / "tracing_on").write_text("1")
            nap_and_wake(seconds, threads, nap=0.0002)
            (inst / "tracing_on").write_text("0")
            subprocess.run(
                ["trace-cmd", "extract", "-B", name, "-o", str(out)],
                check=True,
                capture_output=True,
                cwd=out.parent,
            )
    finally:
        if mounted:
            subprocess.run(["umount", str(root)], capture_output=True)


def replicate(src: Path, out: Path, copies: int) -> None:
    """A v6 file whose CPU data is ``copies`` repetitions of ``src``'s pages.

    Each copy's page base timestamps are shifted past the previous copy, so the result reads
    as one long capture; headers, formats and options are the source's own bytes.
    """
    td = read_container(open_reader(src))
    if td.version != 6 or len(td.instances) != 1:
        raise SystemExit(f"{src}: --replicate needs a v6 file with one buffer instance")
    raw = src.read_bytes()
    streams = {s.cpu: s for s in td.instances[0].cpus}
    e = ">" if td.reader.big_endian else "<"
    # The flyrecord CPU table is the last "flyrecord\0" tag before the first CPU's data.
    first = min(s.offset for s in streams.values())
    table = raw.rindex(b"flyrecord\0", 0, first) + 10
    after_table = table + 16 * td.cpus
    pages = {cpu: raw[s.offset : s.offset + s.size] for cpu, s in streams.items()}
    span = 1 + max(
        struct.unpack_from(e + "Q", blob, len(blob) - td.page_size)[0]
        - struct.unpack_from(e + "Q", blob, 0)[0]
        for blob in pages.values()
    )
    span += 10**9  # at least one second between copies
    head = bytearray(raw[:table]) + bytes(16 * td.cpus) + raw[after_table:first]
    body = bytearray()
    entries = {}
    start = len(head) + (-len(head) % td.page_size)
    for cpu in range(td.cpus):
        blob = pages.get(cpu, b"")
        entries[cpu] = (start + len(body), len(blob) * copies)
        for k in range(copies):
            copy = bytearray(blob)
            for p in range(0, len(copy), td.page_size):
                (ts,) = struct.unpack_from(e + "Q", copy, p)
                struct.pack_into(e + "Q", copy, p, ts + k * span)
            body += copy
    for cpu, (offset, size) in entries.items():
        struct.pack_into(e + "QQ", head, table + 16 * cpu, offset if size else 0, size)
    out.write_bytes(bytes(head) + bytes(start - len(head)) + bytes(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, help="time an existing trace.dat")
    parser.add_argument("--replicate", type=Path, help="build the input from a v6 file's pages")
    parser.add_argument("--copies", type=int, default=400, help="copies for --replicate")
    parser.add_argument("--seconds", type=float, default=30.0, help="recording length")
    parser.add_argument("--threads", type=int, default=4, help="busy worker threads")
    parser.add_argument("--buffer-kb", type=int, default=131072, help="ring buffer per CPU")
    parser.add_argument("--fresh", action="store_true", help="record again (else reuse)")
    add_arguments(parser)
    args = parser.parse_args()
    if shutil.which("trace-cmd") is None:
        raise SystemExit("trace-cmd is not installed; it is the peer this benchmark compares to")
    path = args.input
    if path is None:
        OUT.mkdir(exist_ok=True)
        can_record = os.geteuid() == 0 and Path("/sys/kernel").is_dir()
        if args.replicate is None and can_record:
            path = OUT / f"tracedat_{args.seconds:.0f}s.dat"
            how = f"recorded here, {args.seconds:.0f} s busy capture"
            if args.fresh or not path.exists():
                print(f"recording {args.seconds:.0f} s through tracefs ...", flush=True)
                record(path, args.seconds, args.threads, args.buffer_kb)
        else:
            src = args.replicate or ROOT.parent / "shared/traces/juno-sched-load/trace.dat"
            path = OUT / f"{src.parent.name}-x{args.copies}.dat"
            replicate(src, path, args.copies)
            how = f"{args.copies} copies of the pages of {src.name}"
    else:
        how = "given"
    td = read_container(open_reader(path))
    size = path.stat().st_size
    with tempfile.TemporaryDirectory(prefix="bench-tracedat-") as tmp:
        out = Path(tmp) / "out"
        cmd, env = pmu_replay()
        _, _, _, summary = run_measured([*cmd, "import", str(path), "-o", str(out), "--json"],
                                        env=env)  # fmt: skip
        events = sum(json.loads(summary)["events"].values())
        peer = ("trace-cmd report", ["trace-cmd", "report", "-i", str(path)])
        group = contenders_of(args, ["import", str(path), "-o", str(out)], peer, fresh(out))
        interleave(group, args.runs)
    kind = f"trace.dat v{td.version}, {td.compression or 'uncompressed'}"
    # a recording's CPU data is in its named instance (extract -B), a replica's in the top one
    cpus = len({s.cpu for inst in td.instances for s in inst.cpus})
    print(f"input: {how}; {kind}, {size / 2**20:.1f} MiB, {events:,} events, {cpus} CPUs")
    print(f"whole process, {args.runs} interleaved runs, medians [range]:")
    print("\n".join(table(group, events)))
    print(ratio_line(group[0], group[-1]))
    print(machine_line())


if __name__ == "__main__":
    main()
