"""Decode PERF_RECORD_SAMPLE bodies and the ``sample_id_all`` trailers of other records.

A sample's layout follows its attr's ``sample_type`` bit by bit (formats.md §4.4, kernel
``perf_output_sample``, perf ``evsel__parse_sample``). Everything up to PERIOD has a fixed
offset per attr, so those fields are column slices of one gathered block; READ (with GROUP),
CALLCHAIN and RAW have lengths stored in the record, so their positions are computed with
vectorised gathers, each checked against the record size before it is read. Non-sample kernel
records end with ``{pid,tid}{time}{id}{stream_id}{cpu,res}{identifier}`` (the subset that
``sample_type`` selects) when ``sample_id_all`` is set.

Which attr a record belongs to follows perf's ``evlist__event2evsel``: one attr needs no id;
otherwise the id sits at the first attr's ``id_pos`` (samples) or ``is_pos`` words from the
end (other records), and id 0 (synthesized records) means the first attr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from importers.byte_loops import compiled
from importers.perf.attr import (
    READ_GROUP,
    READ_ID,
    READ_LOST,
    READ_TOTAL_TIME_ENABLED,
    READ_TOTAL_TIME_RUNNING,
    PerfAttr,
    S,
)
from importers.perf.records import RecordStream
from importers.tracefs.fields import FieldGather, gather_uint, stride_runs

_PREFIX = ("IDENTIFIER", "IP", "TID", "TIME", "ADDR", "ID", "STREAM_ID", "CPU", "PERIOD")
_TRAILER = ("TID", "TIME", "ID", "STREAM_ID", "CPU", "IDENTIFIER")
#: attr index of records whose attr cannot be found (unknown id)
NO_ATTR = -1
Column = NDArray[np.generic]


def _fixed_offsets(sample_type: int, order: tuple[str, ...]) -> dict[str, int]:
    """Byte offset of each present field, in ``order``, counting 8 bytes per field."""
    out: dict[str, int] = {}
    pos = 0
    for name in order:
        if sample_type & S[name]:
            out[name] = pos
            pos += 8
    out["_end"] = pos
    return out


def id_pos(attr: PerfAttr) -> int | None:
    """u64 index of the event id in a sample body (``__perf_evsel__calc_id_pos``)."""
    if attr.has("IDENTIFIER"):
        return 0
    if not attr.has("ID"):
        return None
    return sum(attr.has(b) for b in ("IP", "TID", "TIME", "ADDR"))


def is_pos(attr: PerfAttr) -> int | None:
    """u64 index, from the end, of the id in a sample_id trailer (``__perf_evsel__calc_is_pos``)."""
    if attr.has("IDENTIFIER"):
        return 1
    if not attr.has("ID"):
        return None
    return 1 + attr.has("CPU") + attr.has("STREAM_ID")


def identify(
    stream: RecordStream,
    idx: NDArray[np.intp],
    sample: bool,
    attrs: list[PerfAttr],
    big: bool,
) -> NDArray[np.int32]:
    """Attr index of each record ``idx`` (all samples, or all non-sample kernel records)."""
    n = len(idx)
    if len(attrs) <= 1:
        return np.zeros(n, np.int32)
    first = attrs[0]
    if not sample and not first.flag("sample_id_all"):
        return np.zeros(n, np.int32)
    pos = id_pos(first) if sample else is_pos(first)
    if pos is None:
        return np.zeros(n, np.int32)
    off = stream.offset[idx]
    words = (stream.size[idx].astype(np.int64) - 8) // 8
    if sample:
        ok = words > pos
        ids = gather_uint(stream.data, off, 8 + 8 * pos, 8, big, stride_runs(off))
    else:
        ok = words >= pos
        ids = gather_uint(stream.data, off + 8 + 8 * (words - pos), 0, 8, big)
    out = attr_of_ids(attrs, ids)
    out[ok & (ids == 0)] = 0
    out[~ok] = NO_ATTR
    return out


def attr_of_ids(attrs: list[PerfAttr], ids: NDArray[np.uint64]) -> NDArray[np.int32]:
    """Index of the attr that lists each event id (:data:`NO_ATTR` for an unknown id)."""
    owner_of = {i: k for k, a in enumerate(attrs) for i in a.ids}
    out = np.full(len(ids), NO_ATTR, np.int32)
    if not owner_of:
        return out
    known = np.array(sorted(owner_of), np.uint64)
    owners = np.array([owner_of[int(i)] for i in known], np.int32)
    at = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)
    hit = known[at] == ids
    out[hit] = owners[at[hit]]
    return out


@dataclass
class Samples:
    """Decoded fields of the samples of one attr (``None`` when ``sample_type`` lacks them).

    ``valid`` is False for records too short for their layout; their other values are junk.
    Positions (``read_at``, ``raw_at``) are absolute offsets in the stream's ``data``.
    """

    valid: NDArray[np.bool_]
    columns: dict[str, Column] = field(default_factory=dict)
    read_at: NDArray[np.int64] | None = None
    read_nr: NDArray[np.int64] | None = None
    raw_at: NDArray[np.int64] | None = None
    raw_size: NDArray[np.int64] | None = None


def _int(g: FieldGather, at: int, size: int, signed: bool) -> Column:
    values = g.integer(at, size, signed)
    assert values is not None  # sizes here are 4 or 8
    return values


def gather_words(
    data: NDArray[np.uint8],
    base: NDArray[np.int64],
    at: NDArray[np.int64],
    width: NDArray[np.int64],
    big: bool,
) -> NDArray[np.uint64]:
    """``(k, n)`` unsigned fields: field ``j`` of record ``i`` is ``width[j]`` bytes at
    ``base[i] + at[j]`` (zero past the buffer end). Widths are 4 or 8. Compiled (large
    inputs), one pass over the records reads all ``k`` fields, where a gather per field walks
    the whole stream ``k`` times; records in long runs at one stride (perf's samples of one
    event) are read as strided views, faster than either."""
    runs = stride_runs(base)
    if runs is None and compiled(base.shape[0] * int(width.sum())):
        from importers.perf.kernels_jit import gather_words as gather_words_jit

        words: NDArray[np.uint64] = gather_words_jit(data, base, at, width, big)
        return words
    out = np.zeros((at.shape[0], base.shape[0]), np.uint64)
    for j, (start, size) in enumerate(zip(at.tolist(), width.tolist(), strict=True)):
        out[j] = gather_uint(data, base, start, size, big, runs)
    return out


def _prefix_columns(
    data: NDArray[np.uint8],
    base: NDArray[np.int64],
    layout: dict[str, int],
    skip: int,
    big: bool,
    wanted: frozenset[str] | None,
    extra: tuple[tuple[str, int, int], ...] = (),
) -> dict[str, Column]:
    """``pid``/``tid`` (TID), ``cpu`` (CPU) and the lower-cased u64 fields of ``layout``
    (those in ``wanted``, or all), plus ``extra`` ``(name, offset, width)`` fields."""
    fields: list[tuple[str, int, int]] = []
    for name, pos in layout.items():
        if name == "_end" or (wanted is not None and name not in wanted):
            continue
        if name == "TID":
            fields += [("pid", skip + pos, 4), ("tid", skip + pos + 4, 4)]
        elif name == "CPU":
            fields.append(("cpu", skip + pos, 4))
        else:
            fields.append((name.lower(), skip + pos, 8))
    fields += extra
    if not fields:
        return {}
    at = np.array([f[1] for f in fields], np.int64)
    width = np.array([f[2] for f in fields], np.int64)
    words = gather_words(data, base, at, width, big)
    cols: dict[str, Column] = {}
    for j, (name, _, w) in enumerate(fields):
        row = words[j]
        if name in ("pid", "tid"):
            cols[name] = row.astype(np.uint32).view(np.int32)
        else:
            cols[name] = row.astype(np.uint32) if w == 4 else row
    return cols


def decode_samples(
    stream: RecordStream,
    idx: NDArray[np.intp],
    attr: PerfAttr,
    big: bool,
    wanted: frozenset[str] | None = None,
) -> Samples:
    """Decode the SAMPLE records ``idx`` of ``attr`` (the fixed fields in ``wanted``, or all).

    When nothing of variable length precedes RAW, its size is read in the same pass.
    """
    off = stream.offset[idx]
    size = stream.size[idx].astype(np.int64)
    layout = _fixed_offsets(attr.sample_type, _PREFIX)
    fixed_end = 8 + layout["_end"]
    valid = size >= fixed_end
    raw_fixed = attr.has("RAW") and not attr.has("READ") and not attr.has("CALLCHAIN")
    extra = (("_raw", fixed_end, 4),) if raw_fixed else ()
    cols = _prefix_columns(stream.data, off, layout, 8, big, wanted, extra)
    out = Samples(valid, cols)
    pos = np.full(len(idx), fixed_end, np.int64)
    if attr.has("READ"):
        out.read_at = off + pos
        out.read_nr, fits = _read_values(stream, off, pos, size, attr, big)
        valid &= fits
        pos = pos + 8 * read_format_words(attr, out.read_nr)
        valid &= pos <= size
    if attr.has("CALLCHAIN"):
        ok = valid & (pos + 8 <= size)
        nr = _count_at(stream, off + np.where(ok, pos, 0), big)
        fits = ok & (nr <= (size - pos - 8) // 8)
        valid &= fits
        pos = pos + 8 + 8 * np.where(fits, nr, 0)
    if attr.has("RAW"):
        ok = valid & (pos + 4 <= size)
        if raw_fixed:
            raw64 = cols.pop("_raw").astype(np.int64)
        else:
            g = FieldGather(stream.data, off + np.where(ok, pos, 0), size, big)
            raw64 = _int(g, 0, 4, False).astype(np.int64)
        fits = ok & (raw64 <= size - pos - 4)
        out.raw_at = off + pos + 4
        out.raw_size = np.where(fits, raw64, 0)
        valid &= fits
    out.valid = valid
    return out


#: a record's size is a u16, so a read group claiming this many values is corrupt
MAX_READ_VALUES = 1 << 16


def read_format_words(attr: PerfAttr, nr: NDArray[np.int64]) -> NDArray[np.int64]:
    """u64 words of a read_format block holding ``nr`` counter values (``evsel__parse_sample``).

    Group: ``{nr, [enabled], [running], {value, [id], [lost]}[nr]}``; otherwise one value:
    ``{value, [enabled], [running], [id], [lost]}``.
    """
    rf = attr.read_format
    per_value = 1 + bool(rf & READ_ID) + bool(rf & READ_LOST)
    times = bool(rf & READ_TOTAL_TIME_ENABLED) + bool(rf & READ_TOTAL_TIME_RUNNING)
    if rf & READ_GROUP:
        return 1 + times + nr * per_value
    return np.full(len(nr), per_value + times, np.int64)


def _read_values(
    stream: RecordStream,
    off: NDArray[np.int64],
    pos: NDArray[np.int64] | int,
    size: NDArray[np.int64],
    attr: PerfAttr,
    big: bool,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Counter values of the read_format blocks ``pos`` bytes into records at ``off``, and
    whether each record is long enough for its ``nr`` (0 values where it is not)."""
    n = len(off)
    if not attr.read_format & READ_GROUP:
        return np.ones(n, np.int64), np.ones(n, bool)
    has_nr = pos + 8 <= size
    nr = _count_at(stream, off + np.where(has_nr, pos, 0), big)
    fits = has_nr & (nr < MAX_READ_VALUES)
    return np.where(fits, nr, 0), fits


def decode_read_records(
    stream: RecordStream, idx: NDArray[np.intp], attr: PerfAttr, big: bool
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Counter values in each READ record ``idx`` of ``attr`` (0 where the record is too
    short), and which records hold them.

    A READ record is ``{u32 pid, tid}``, a read_format block, then the sample_id trailer.
    """
    off = stream.offset[idx]
    size = stream.size[idx].astype(np.int64)
    nr, fits = _read_values(stream, off, 16, size, attr, big)
    trailer = _fixed_offsets(attr.sample_type, _TRAILER)["_end"]
    end = 16 + 8 * read_format_words(attr, nr) + (trailer if attr.flag("sample_id_all") else 0)
    fits &= end <= size
    return np.where(fits, nr, 0), fits


def _count_at(stream: RecordStream, at: NDArray[np.int64], big: bool) -> NDArray[np.int64]:
    """The u64 counts (``nr``) at ``at``, clamped to int64 so sizes computed from them are
    compared as integers (uint64 against int64 would compare as float64)."""
    v = gather_uint(stream.data, at, 0, 8, big)
    return np.minimum(v, np.uint64(1 << 62)).astype(np.int64)


def decode_sample_id(
    stream: RecordStream, idx: NDArray[np.intp], attr: PerfAttr, big: bool
) -> tuple[dict[str, Column], NDArray[np.bool_]]:
    """The sample_id trailer fields of non-sample records ``idx`` of ``attr``.

    Returns the columns (``pid``, ``tid``, ``time``, ``id``, ``cpu``, ...) and which records are
    long enough to hold the trailer. Without ``sample_id_all`` there are no columns.
    """
    size = stream.size[idx].astype(np.int64)
    if not attr.flag("sample_id_all"):
        return {}, np.ones(len(idx), bool)
    layout = _fixed_offsets(attr.sample_type, _TRAILER)
    length = layout["_end"]
    valid = size >= 8 + length
    start = stream.offset[idx] + np.where(valid, size - length, 0)
    return _prefix_columns(stream.data, start, layout, 0, big, None), valid
