"""Per-record decode of a perf.data stream: owner attr, time, CPU, pid/tid, and ``seq``.

Every kernel record gets its attr (:func:`importers.perf.samples.identify`), then its
sample or ``sample_id_all`` fields, decoded attr by attr with one vectorised pass each. The
records are then put in ``perf script`` delivery order
(:func:`importers.perf.records.delivery_order`) and numbered: ``seq`` counts every record
plus one slot per counter value a record carries (a sample with PERF_SAMPLE_READ, a READ
record), so the ``pmu_counts`` rows it yields have their own ``seq`` right after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from importers.perf.attr import TYPE_TRACEPOINT, PerfAttr
from importers.perf.records import (
    KNOWN_TYPES,
    READ,
    SAMPLE,
    USER_TYPE_START,
    RecordStream,
    delivery_order,
)
from importers.perf.samples import (
    NO_ATTR,
    Samples,
    decode_read_records,
    decode_sample_id,
    decode_samples,
    identify,
)
from importers.skips import SkipLog

_TRACEPOINT_FIELDS = frozenset({"TIME", "CPU", "TID"})
#: largest CPU number a table can hold (int16 columns)
MAX_CPU = (1 << 15) - 1


@dataclass
class Decoded:
    """Per-record arrays (``-1`` where a record does not say) and the decoded samples."""

    stream: RecordStream
    attrs: list[PerfAttr]
    big: bool
    attr: NDArray[np.int32]
    ts: NDArray[np.int64]
    cpu: NDArray[np.int64]
    pid: NDArray[np.int64]
    tid: NDArray[np.int64]
    event_id: NDArray[np.int64]
    valid: NDArray[np.bool_]
    #: counter values of each READ record (0 for other records and for broken READ records)
    read_nr: NDArray[np.int64]
    #: per attr: the SAMPLE records (stream indices, delivery order) and their fields
    samples: dict[int, tuple[NDArray[np.intp], Samples]] = field(default_factory=dict)
    order: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))
    seq: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    def sizes(self, idx: NDArray[np.intp]) -> NDArray[np.int64]:
        """Record sizes of ``idx`` as int64 (for gathers bounded by the record)."""
        return self.stream.size[idx].astype(np.int64)

    def has(self, bit: str, idx: NDArray[np.intp]) -> NDArray[np.bool_]:
        """Whether records ``idx`` carry sample field ``bit`` (in the body or the trailer)."""
        # one entry per attr, then False for NO_ATTR (index -1)
        in_sample = np.array([a.has(bit) for a in self.attrs] + [False], bool)
        in_trailer = in_sample & np.array(
            [a.flag("sample_id_all") for a in self.attrs] + [False], bool
        )
        owner = self.attr[idx]
        out: NDArray[np.bool_] = np.where(
            self.stream.type[idx] == SAMPLE, in_sample[owner], in_trailer[owner]
        )
        return out

    def of_type(self, *types: int) -> NDArray[np.intp]:
        """Valid records of the given types, in delivery order."""
        mask = np.isin(self.stream.type, types) & self.valid
        return self.order[mask[self.order]]


def decode(stream: RecordStream, attrs: list[PerfAttr], big: bool, skips: SkipLog) -> Decoded:
    """Decode owner, time, CPU and ids of every kernel record; order and number them."""
    n = len(stream)
    minus = np.full(n, -1, np.int64)
    d = Decoded(
        stream,
        attrs,
        big,
        np.full(n, NO_ATTR, np.int32),
        minus.copy(),
        minus.copy(),
        minus.copy(),
        minus.copy(),
        minus.copy(),
        np.zeros(n, bool),
        np.zeros(n, np.int64),
    )
    kernel = stream.type < USER_TYPE_START
    width = np.ones(n, np.int64)
    if attrs:
        for sample in (True, False):
            idx = np.flatnonzero(kernel & ((stream.type == SAMPLE) == sample))
            d.attr[idx] = identify(stream, idx, sample, attrs, big)
            for k, attr in enumerate(attrs):
                mine = idx[d.attr[idx] == k]
                if sample:
                    _samples(d, k, mine, attr, big, width)
                else:
                    _trailers(d, mine, attr, big, width)
    _report(d, kernel, skips)
    d.order = delivery_order(stream, d.ts)
    starts = np.cumsum(width[d.order]) - width[d.order]
    d.seq = np.empty(n, np.int64)
    d.seq[d.order] = starts
    for k, (idx, s) in list(d.samples.items()):
        by_seq = np.argsort(d.seq[idx], kind="stable")
        d.samples[k] = (idx[by_seq], _take(s, by_seq))
    return d


def _fill(d: Decoded, idx: NDArray[np.intp], cols: dict[str, NDArray[np.generic]]) -> None:
    for name, target in (
        ("time", d.ts),
        ("cpu", d.cpu),
        ("pid", d.pid),
        ("tid", d.tid),
        ("identifier", d.event_id),
        ("id", d.event_id),
    ):
        if name in cols:
            target[idx] = cols[name].astype(np.int64)


def _samples(
    d: Decoded,
    k: int,
    idx: NDArray[np.intp],
    attr: PerfAttr,
    big: bool,
    width: NDArray[np.int64],
) -> None:
    # tracepoint samples feed typed tables from their RAW data: ip/period/ids are not used
    wanted = _TRACEPOINT_FIELDS if attr.type == TYPE_TRACEPOINT else None
    s = decode_samples(d.stream, idx, attr, big, wanted)
    _fill(d, idx, s.columns)
    d.valid[idx] = s.valid
    if s.read_nr is not None:
        width[idx] += np.where(s.valid, s.read_nr, 0)
    d.samples[k] = (idx, s)


def _trailers(
    d: Decoded, idx: NDArray[np.intp], attr: PerfAttr, big: bool, width: NDArray[np.int64]
) -> None:
    cols, valid = decode_sample_id(d.stream, idx, attr, big)
    _fill(d, idx, cols)
    d.valid[idx] = valid
    reads = idx[d.stream.type[idx] == READ]
    if len(reads):
        nr, fits = decode_read_records(d.stream, reads, attr, big)
        d.read_nr[reads] = nr
        d.valid[reads] &= fits
        width[reads] += nr


def _report(d: Decoded, kernel: NDArray[np.bool_], skips: SkipLog) -> None:
    stream = d.stream
    strange = ~np.isin(stream.type, KNOWN_TYPES)
    for rtype in np.unique(stream.type[strange]).tolist():
        bad = np.flatnonzero(stream.type == rtype)
        skips.add(
            f"record of unknown type {rtype} ({rtype:#x}), not decoded",
            [_where(stream, i) for i in bad[:5]],
            count=len(bad),
        )
    d.valid &= ~strange
    kernel = kernel & ~strange
    unknown = kernel & (d.attr == NO_ATTR)
    if unknown.any() and d.attrs:
        bad = np.flatnonzero(unknown)
        skips.add(
            "record whose event id matches no attr (perf: nr_unknown_id)",
            [f"{_where(stream, i)}" for i in bad[:5]],
            count=len(bad),
        )
    elif unknown.any():
        bad = np.flatnonzero(unknown)
        skips.add(
            "kernel record in a stream that declares no attr", [_where(stream, bad[0])], len(bad)
        )
    # CPU columns are int16 (as in every table); a CPU number beyond it is a corrupt record.
    wild = kernel & d.valid & (d.cpu > MAX_CPU)
    if wild.any():
        bad = np.flatnonzero(wild)
        skips.add(
            f"record with a CPU number above {MAX_CPU} (corrupt record)",
            [_where(stream, i) for i in bad[:5]],
            count=len(bad),
        )
        d.valid &= ~wild
    short = kernel & ~unknown & ~d.valid & ~wild
    if short.any():
        bad = np.flatnonzero(short)
        skips.add(
            "record shorter than its attr's sample layout",
            [_where(stream, i) for i in bad[:5]],
            count=len(bad),
        )


def _where(stream: RecordStream, i: int) -> str:
    kind = "inflated offset" if stream.inflated[i] else "file offset"
    return f"{kind} {int(stream.offset[i]):#x}"


def _take(s: Samples, order: NDArray[np.intp]) -> Samples:
    def t(a: NDArray[np.int64] | None) -> NDArray[np.int64] | None:
        return None if a is None else a[order]

    return Samples(
        s.valid[order],
        {k: v[order] for k, v in s.columns.items()},
        t(s.read_at),
        t(s.read_nr),
        t(s.raw_at),
        t(s.raw_size),
    )
