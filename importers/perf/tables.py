"""From decoded perf records to the canonical tables.

* hardware/software samples -> ``pmu_samples`` (with the host PMU of the event);
* counter values (PERF_SAMPLE_READ blocks, READ records) -> ``pmu_counts``;
* SWITCH / SWITCH_CPU_WIDE -> ``perf_switches``; COMM / FORK / EXIT -> ``perf_task_events``;
* LOST / LOST_SAMPLES -> ``lost_events`` (only with a CPU: the column is the CPU whose buffer
  lost events, never guessed).

Tracepoint samples go through :mod:`importers.perf.tracing`. Every builder returns rows
in ``seq`` order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.arrow_compute import cast, take
from importers.perf.attr import (
    READ_GROUP,
    READ_ID,
    READ_LOST,
    READ_TOTAL_TIME_ENABLED,
    READ_TOTAL_TIME_RUNNING,
    TYPE_TRACEPOINT,
    PerfAttr,
)
from importers.perf.decode import Decoded
from importers.perf.records import (
    COMM,
    EXIT,
    FORK,
    LOST,
    LOST_SAMPLES,
    READ,
    SWITCH,
    SWITCH_CPU_WIDE,
)
from importers.perf.samples import attr_of_ids
from importers.schema import conform, constant_column, dictionary_column, empty_table
from importers.skips import SkipLog
from importers.tracefs.event_format import FormatField
from importers.tracefs.fields import FieldGather, gather_uint

#: PERF_RECORD_MISC_* bits
MISC_CPUMODE_MASK = 7
MISC_SWITCH_OUT = 1 << 13  # also PERF_RECORD_MISC_COMM_EXEC on COMM records
MISC_SWITCH_OUT_PREEMPT = 1 << 14


@dataclass
class PmuMap:
    """Which host PMU an event counts on.

    ``by_type``: PMU_MAPPINGS (perf type -> sysfs name). ``by_cpu``: the core PMU of each CPU
    (HYBRID_TOPOLOGY). ``core``: the host's only core PMU when it has exactly one.
    """

    by_type: dict[int, str] = field(default_factory=dict)
    by_cpu: dict[int, str] = field(default_factory=dict)
    core: str | None = None

    def of_attr(self, attr: PerfAttr) -> str | None:
        """The PMU fixed by the attr alone; ``None`` when it depends on the CPU (or is unknown).

        Generic hardware/cache events carry their PMU in ``config >> 32`` (formats.md §4.6);
        without it, and for raw events, the kernel opened them on the core PMU of the CPU.
        """
        ext = attr.extended_pmu_type
        if ext is not None:
            return self.by_type.get(ext)
        static = attr.static_pmu()
        if static is not None:
            return static
        if attr.type in (0, 3, 4):
            return None if self.by_cpu else self.core
        return self.by_type.get(attr.type)

    def column(self, attr: PerfAttr, cpu: NDArray[np.int64] | None) -> pa.DictionaryArray:
        """PMU name per row of ``attr`` whose CPUs are ``cpu`` (or unknown)."""
        n = 0 if cpu is None else len(cpu)
        fixed = self.of_attr(attr)
        if fixed is not None or not self.by_cpu or cpu is None:
            return labels(np.zeros(n, np.int64), [fixed])
        names = sorted(set(self.by_cpu.values()))
        lut = np.full(max(self.by_cpu) + 2, -1, np.int64)
        for c, name in self.by_cpu.items():
            lut[c] = names.index(name)
        code = np.where((cpu >= 0) & (cpu < len(lut) - 1), lut[np.clip(cpu, 0, len(lut) - 1)], -1)
        return labels(code, list(names))


def labels(codes: NDArray[np.int64], names: list[str | None]) -> pa.DictionaryArray:
    """Dictionary column: ``names[codes[i]]``, null where the code is negative or names None."""
    safe = np.clip(codes, 0, max(len(names) - 1, 0))
    texts: list[str | None] = list(names) if names else [None]
    codes = np.where(codes < 0, len(texts), safe)
    return dictionary_column([*texts, None], codes)


def _nullable(values: NDArray[np.generic], mask: NDArray[np.bool_], type_: pa.DataType) -> pa.Array:
    return cast(pa.array(values, mask=mask), type_, safe=False)


def _by_seq(name: str, parts: list[pa.Table]) -> pa.Table:
    if not parts:
        return empty_table(name)
    table = pa.concat_tables(parts)
    return take(table, np.argsort(table.column("seq").to_numpy(), kind="stable"))


def pmu_samples(d: Decoded, names: list[str], pmus: PmuMap) -> pa.Table:
    """``pmu_samples``: every valid sample of a non-tracepoint attr."""
    parts = []
    for k, (idx, s) in d.samples.items():
        attr = d.attrs[k]
        if attr.type == TYPE_TRACEPOINT:
            continue
        ok = d.valid[idx]
        rows = idx[ok]
        n = len(rows)
        cols = {name: v[ok] for name, v in s.columns.items()}
        cpu = d.cpu[rows] if "cpu" in cols else None
        period = cols.get("period", np.full(n, attr.sample_period, np.uint64))
        has_id = "id" in cols or "identifier" in cols
        columns: dict[str, pa.Array] = {
            "ts": pa.array(np.maximum(d.ts[rows], 0)),
            "seq": pa.array(d.seq[rows]),
            "pmu": pmus.column(attr, cpu if cpu is not None else np.full(n, -1)),
            "event": constant_column(names[k], n),
            "period": pa.array(period),
            "cpumode": pa.array(d.stream.misc[rows] & MISC_CPUMODE_MASK),
        }
        if cpu is not None:
            columns["cpu"] = pa.array(cpu)
        if "tid" in cols:
            columns["pid"], columns["tgid"] = pa.array(cols["tid"]), pa.array(cols["pid"])
        if has_id:
            columns["attr_id"] = pa.array(d.event_id[rows].view(np.uint64))
        if "ip" in cols:
            columns["ip"] = pa.array(cols["ip"])
        parts.append(conform("pmu_samples", pa.table(columns)))
    return _by_seq("pmu_samples", parts)


def tracepoint_samples(
    d: Decoded, skips: SkipLog
) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Stream index, RAW offset, RAW size and event id of every decodable tracepoint sample."""
    parts = []
    for k, (idx, s) in d.samples.items():
        attr = d.attrs[k]
        if attr.type != TYPE_TRACEPOINT:
            continue
        if s.raw_at is None or s.raw_size is None or not attr.has("CPU"):
            what = "RAW data" if s.raw_at is None else "a CPU"
            skips.add(f"tracepoint sample without {what} (attr {names_hint(attr)})",
                      [f"seq {q}" for q in d.seq[idx[:5]].tolist()], count=len(idx))  # fmt: skip
            continue
        ok = d.valid[idx] & (s.raw_size >= 8)
        short = d.valid[idx] & ~ok
        if short.any():
            skips.add(
                "tracepoint sample whose RAW data is shorter than the common fields",
                [f"seq {q}" for q in d.seq[idx[short][:5]].tolist()],
                count=int(short.sum()),
            )
        parts.append((idx[ok], s.raw_at[ok], s.raw_size[ok], np.full(int(ok.sum()), attr.config)))
    if not parts:
        empty = np.zeros(0, np.int64)
        return np.zeros(0, np.intp), empty, empty, empty
    idx, at, size, ids = (np.concatenate(p) for p in zip(*parts, strict=True))
    if len(parts) == 1:  # one attr: already in seq order
        return idx, at, size, ids.astype(np.int64)
    order = np.argsort(d.seq[idx], kind="stable")
    return idx[order], at[order], size[order], ids[order].astype(np.int64)


def names_hint(attr: PerfAttr) -> str:
    return attr.name or f"type {attr.type} config {attr.config:#x}"


def pmu_counts(d: Decoded, names: list[str], pmus: PmuMap) -> pa.Table:
    """``pmu_counts``: counter values carried by samples (PERF_SAMPLE_READ) and READ records."""
    parts = []
    for k, (idx, s) in d.samples.items():
        if s.read_at is None or s.read_nr is None:
            continue
        ok = d.valid[idx]
        parts.append(
            _read_rows(d, k, idx[ok], s.read_at[ok], s.read_nr[ok], names, pmus, "sample read")
        )
    reads = d.of_type(READ)
    for k in np.unique(d.attr[reads]).tolist():
        idx = reads[d.attr[reads] == k]
        at = d.stream.offset[idx] + 16
        parts.append(_read_rows(d, k, idx, at, d.read_nr[idx], names, pmus, "READ record"))
    return _by_seq("pmu_counts", parts)


def _read_rows(
    d: Decoded,
    k: int,
    idx: NDArray[np.intp],
    at: NDArray[np.int64],
    nr: NDArray[np.int64],
    names: list[str],
    pmus: PmuMap,
    source: str,
) -> pa.Table:
    """One ``pmu_counts`` row per counter value of the read_format blocks at ``at``."""
    attr = d.attrs[k]
    rf = attr.read_format
    enabled, running = bool(rf & READ_TOTAL_TIME_ENABLED), bool(rf & READ_TOTAL_TIME_RUNNING)
    per_value = 1 + bool(rf & READ_ID) + bool(rf & READ_LOST)
    group = bool(rf & READ_GROUP)
    # non-group: {value, [enabled], [running], [id], [lost]}
    # group: {nr, [enabled], [running], {value, [id], [lost]}[nr]} (evsel__parse_sample)
    times_at = at + 8
    values_at = at + 8 * (1 + enabled + running) if group else at
    id_after = 8 if group else 8 * (1 + enabled + running)
    row = np.repeat(np.arange(len(idx)), nr)
    j = np.arange(len(row)) - np.repeat(np.cumsum(nr) - nr, nr)
    stride = 8 * per_value if group else 0
    value_at = values_at[row] + stride * j
    data, big = d.stream.data, d.big

    def u64(where: NDArray[np.int64]) -> NDArray[np.uint64]:
        return gather_uint(data, where, 0, 8, big)

    columns: dict[str, pa.Array] = {
        "ts": _nullable(d.ts[idx][row], d.ts[idx][row] <= 0, pa.int64()),
        "seq": pa.array(d.seq[idx][row] + 1 + j),
        "cpu": _nullable(d.cpu[idx][row], d.cpu[idx][row] < 0, pa.int16()),
        "value": pa.array(u64(value_at)),
        "status": constant_column("counted", len(row)),
        "source": constant_column(f"perf.data {source}", len(row)),
    }
    if enabled:
        columns["time_enabled_ns"] = pa.array(u64(times_at[row]))
    if running:
        columns["time_running_ns"] = pa.array(u64(times_at[row] + 8 * enabled))
    owner = np.full(len(row), k, np.int64)
    if rf & READ_ID:
        # when no attr lists its ids, the values stay credited to the attr that read them
        if any(a.ids for a in d.attrs):
            owner = attr_of_ids(d.attrs, u64(value_at + id_after)).astype(np.int64)
    elif group:
        owner = np.where(k + j < len(d.attrs), k + j, -1)
    event_names: list[str | None] = list(names)
    columns["event"] = labels(owner, event_names)
    pmu_names: list[str | None] = [pmus.of_attr(a) for a in d.attrs]
    columns["pmu"] = labels(owner, pmu_names)
    return conform("pmu_counts", pa.table(columns))


def switches(d: Decoded, skips: SkipLog) -> pa.Table:
    """``perf_switches`` from SWITCH and SWITCH_CPU_WIDE records that carry a time."""
    idx = d.of_type(SWITCH, SWITCH_CPU_WIDE)
    untimed = d.ts[idx] <= 0
    if untimed.any():
        skips.add("SWITCH record without a time (attr lacks sample_id_all or TIME)",
                  [f"seq {q}" for q in d.seq[idx[untimed][:5]].tolist()],
                  count=int(untimed.sum()))  # fmt: skip
        idx = idx[~untimed]
    misc = d.stream.misc[idx]
    tid = d.has("TID", idx)
    wide = d.stream.type[idx] == SWITCH_CPU_WIDE
    g = FieldGather(d.stream.data, d.stream.offset[idx], d.sizes(idx), d.big)
    nxt_pid, nxt_tid = g.integer(8, 4, True), g.integer(12, 4, True)
    assert nxt_pid is not None and nxt_tid is not None
    columns = {
        "ts": pa.array(d.ts[idx]),
        "seq": pa.array(d.seq[idx]),
        "cpu": _nullable(d.cpu[idx], d.cpu[idx] < 0, pa.int16()),
        "pid": _nullable(d.pid[idx], ~tid, pa.int32()),
        "tid": _nullable(d.tid[idx], ~tid, pa.int32()),
        "out": pa.array((misc & MISC_SWITCH_OUT) != 0),
        "preempt": pa.array((misc & MISC_SWITCH_OUT_PREEMPT) != 0),
        "next_prev_pid": _nullable(nxt_pid, ~wide, pa.int32()),
        "next_prev_tid": _nullable(nxt_tid, ~wide, pa.int32()),
    }
    return conform("perf_switches", pa.table(columns))


_COMM_FIELD = FormatField("comm", "char", 16, 16, False, 16)


def task_events(d: Decoded) -> pa.Table:
    """``perf_task_events`` from COMM (exec or not), FORK and EXIT records."""
    idx = d.of_type(COMM, FORK, EXIT)
    rtype, misc = d.stream.type[idx], d.stream.misc[idx]
    g = FieldGather(d.stream.data, d.stream.offset[idx], d.sizes(idx), d.big)

    def s32(at: int) -> NDArray[np.generic]:
        v = g.integer(at, 4, True)
        assert v is not None
        return v

    comm = rtype == COMM
    # COMM {pid, tid, comm[]}; FORK/EXIT {pid, ppid, tid, ptid, u64 time}
    pid = s32(8)
    tid = np.where(comm, s32(12), s32(16))
    body_time = g.integer(24, 8, False)
    assert body_time is not None
    ts = np.where(d.ts[idx] > 0, d.ts[idx], np.where(comm, -1, body_time.astype(np.int64)))
    kind = np.select(
        [comm & ((misc & MISC_SWITCH_OUT) != 0), comm, rtype == FORK], [1, 0, 2], default=3
    )
    names = g.string(_COMM_FIELD)
    columns = {
        "ts": _nullable(ts, ts <= 0, pa.int64()),
        "seq": pa.array(d.seq[idx]),
        "cpu": _nullable(d.cpu[idx], d.cpu[idx] < 0, pa.int16()),
        "kind": labels(kind, ["comm", "exec", "fork", "exit"]),
        "pid": pa.array(pid),
        "tid": pa.array(tid),
        "ppid": _nullable(s32(12), comm, pa.int32()),
        "ptid": _nullable(s32(20), comm, pa.int32()),
        "comm": _masked(names, ~comm),
    }
    return conform("perf_task_events", pa.table(columns))


def _masked(column: pa.DictionaryArray, mask: NDArray[np.bool_]) -> pa.DictionaryArray:
    indices = column.indices.to_numpy(zero_copy_only=False)
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask), column.dictionary)


def lost_events(d: Decoded, skips: SkipLog) -> tuple[pa.Table, int]:
    """``lost_events`` rows of LOST/LOST_SAMPLES with a CPU; and the count lost elsewhere."""
    idx = d.of_type(LOST, LOST_SAMPLES)
    g = FieldGather(d.stream.data, d.stream.offset[idx], d.sizes(idx), d.big)
    lost_at_16, lost_at_8 = g.integer(16, 8, False), g.integer(8, 8, False)
    assert lost_at_16 is not None and lost_at_8 is not None
    is_lost = d.stream.type[idx] == LOST
    count = np.where(is_lost, lost_at_16, lost_at_8).astype(np.int64)
    no_cpu = d.cpu[idx] < 0
    unplaced = int(count[no_cpu].sum()) if no_cpu.any() else 0
    if no_cpu.any():
        skips.add(
            "LOST record without a CPU (attr lacks PERF_SAMPLE_CPU): counted in metadata "
            "lost_without_cpu, not in lost_events",
            [f"seq {q}" for q in d.seq[idx[no_cpu][:5]].tolist()],
            count=int(no_cpu.sum()),
        )
    keep = idx[~no_cpu]
    columns = {
        "ts": _nullable(d.ts[keep], d.ts[keep] <= 0, pa.int64()),
        "seq": pa.array(d.seq[keep]),
        "cpu": pa.array(d.cpu[keep].astype(np.int16)),
        "count": pa.array(count[~no_cpu]),
        "kind": labels(np.where(is_lost[~no_cpu], 0, 1), ["perf_lost", "perf_lost_samples"]),
    }
    return conform("lost_events", pa.table(columns)), unplaced
