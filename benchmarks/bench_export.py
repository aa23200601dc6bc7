"""Benchmark: Perfetto export of a replay of a >= 10 million sched-event history.

The history is the one of bench_replay.py (../shared/traces/juno-trace-txt repeated to >= 10M
sched events, every non-idle thread a vCPU); it is replayed under `pmu-replay replay`'s default
scenarios (default, fixed-counters-only) with the windows guest profile, and the results are
saved. The export then runs in a fresh process that loads those results, so its memory is
measured on its own:

* ours: ``replay.export.write_perfetto`` (columnar numpy encoding, streamed a group of vCPUs at
  a time): packets/s, MB/s, and peak RSS above the loaded results, with the default group size
  and with every vCPU in one group (no streaming);
* peer: perfetto's ``StreamingTraceProtoBuilder`` with one python-protobuf ``TracePacket`` per
  event (the way the ``perfetto`` package writes traces), on the first 1M counter samples of the
  same results, against ours on the same samples.

Usage: python benchmarks/bench_export.py [--events 10000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PEER_PACKETS = 1_000_000

# Runs in a fresh interpreter: load the results, export, report time and memory as JSON.
CHILD = """
import json, sys, time
from replay.export import write_perfetto
from replay.results import Results

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

results = Results.load(sys.argv[1])
loaded = status("VmRSS")
start = time.perf_counter()
stats = write_perfetto(results, sys.argv[2], chunk_rows=int(sys.argv[3]))
took = time.perf_counter() - start
print(json.dumps({"packets": stats.packets, "bytes": stats.bytes, "tracks": stats.tracks,
                  "seconds": took, "loaded_rss": loaded, "peak_rss": status("VmHWM")}))
"""


def replay_results(events: int, out: Path) -> None:
    """Replay the bench_replay history and save the results to ``out``."""
    from bench_replay import SOURCE, build

    from importers.host.resolve import load_topology
    from replay.api import what_if
    from replay.engine import prepare
    from replay.profiles import PROFILES

    start = time.perf_counter()
    cap = build(events)
    n = cap.tables["sched_switch"].num_rows + cap.tables["sched_wakeup"].num_rows
    work = prepare(cap, load_topology(SOURCE / "plat_info.yml"), PROFILES["windows"])
    scenarios = ["default", "fixed-counters-only"]
    results = what_if(cap, scenarios, work=work, rank=False)
    results.save(out)
    print(
        f"history: {n:,} sched events; replay of {len(scenarios)} scenarios: "
        f"{results.observations.height:,} observations, {results.pieces.height:,} pieces, "
        f"{results.findings.height:,} findings, {results.ticks.height:,} ticks "
        f"({time.perf_counter() - start:.0f} s)"
    )


def export(results: Path, trace: Path, chunk_rows: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(results), str(trace), str(chunk_rows)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    out: dict[str, float] = json.loads(done.stdout)
    return out


def peer(results_dir: Path, workdir: Path) -> None:
    """Ours vs python-protobuf packets on the same counter samples."""
    import polars as pl
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TracePacket, TrackEvent
    from perfetto.trace_builder.proto_builder import StreamingTraceProtoBuilder

    from replay.export.events import COUNTER_KEY, counter_samples
    from replay.export.packets import SEQUENCE_ID, Batch, Interner, Kind, PacketWriter
    from replay.results import Results

    results = Results.load(results_dir)
    obs = results.observations
    keys = obs.select(COUNTER_KEY).unique().sort(COUNTER_KEY)
    tracks = keys.with_columns(pl.int_range(1, keys.height + 1, dtype=pl.UInt64).alias("uuid"))
    samples = counter_samples(obs, tracks).frame.head(PEER_PACKETS)
    n = samples.height

    start = time.perf_counter()
    with open(workdir / "ours.pftrace", "wb") as f:
        PacketWriter(f).events([Batch(Kind.COUNTER, samples)], Interner())
    ours = time.perf_counter() - start

    start = time.perf_counter()
    with open(workdir / "peer.pftrace", "wb") as f:
        builder = StreamingTraceProtoBuilder(f)
        for ts, uuid, value in samples.iter_rows():
            packet = TracePacket(timestamp=ts, trusted_packet_sequence_id=SEQUENCE_ID)
            packet.sequence_flags = TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
            packet.track_event.type = TrackEvent.TYPE_COUNTER
            packet.track_event.track_uuid = uuid
            packet.track_event.counter_value = value
            builder.write_packet(packet)
    theirs = time.perf_counter() - start
    print(
        f"peer on the same {n:,} counter samples: python-protobuf StreamingTraceProtoBuilder "
        f"{n / theirs:,.0f} packets/s, ours {n / ours:,.0f} packets/s, ratio {theirs / ours:.1f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--keep", metavar="DIR", help="keep results and traces in DIR")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = work / "results"
        replay_results(args.events, results)
        from replay.export.perfetto import CHUNK_ROWS

        for label, chunk in (("streamed", CHUNK_ROWS), ("one group", 1 << 62)):
            r = export(results, work / f"{label.replace(' ', '-')}.perfetto-trace", chunk)
            extra = (r["peak_rss"] - r["loaded_rss"]) / 1e9
            print(
                f"export ({label}, chunk_rows={chunk:,}): {r['packets']:,.0f} packets on "
                f"{r['tracks']:,.0f} tracks, {r['bytes'] / 1e6:,.0f} MB in {r['seconds']:.1f} s: "
                f"{r['packets'] / r['seconds']:,.0f} packets/s, "
                f"{r['bytes'] / 1e6 / r['seconds']:,.0f} MB/s; peak RSS "
                f"{r['peak_rss'] / 1e9:.2f} GB, {extra:.2f} GB above the loaded results"
            )
        peer(results, work)


if __name__ == "__main__":
    main()
