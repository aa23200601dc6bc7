"""``compact_sched``: a bundle's ``sched_switch`` and ``sched_waking`` events as columns.

Each bundle's ``CompactSched`` holds parallel packed arrays, one entry per event, and an
``intern_table`` of the bundle's task names [protos/perfetto/trace/ftrace/
ftrace_event_bundle.proto ``FtraceEventBundle.CompactSched``]:

* switches: ``switch_timestamp`` (1; delta-encoded: the first is absolute, each next one
  relative to its predecessor), ``switch_prev_state`` (2), ``switch_next_pid`` (3),
  ``switch_next_prio`` (4), ``switch_next_comm_index`` (6, into the intern table);
* wakings: ``waking_timestamp`` (7, delta-encoded likewise), ``waking_pid`` (8),
  ``waking_target_cpu`` (9), ``waking_prio`` (10), ``waking_comm_index`` (11) and, from
  later Perfetto versions, ``waking_common_flags`` (12), which the typed tables do not keep.

Nothing of the task switched *out* is recorded, nor who logged a waking: those follow from
the order of the CPU's switches, and are filled in once the whole trace is read
(:mod:`importers.perfetto.running`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.wire import I64, LEN, U8, repeated, scan_fields, text_column
from importers.skips import SkipLog

INTERN_TABLE = 5
SWITCH = {"ts": 1, "prev_state": 2, "next_pid": 3, "next_prio": 4, "comm": 6}
#: (``waking_common_flags``, 12, is optional and has no column in ``sched_waking``)
WAKING = {"ts": 7, "pid": 8, "target_cpu": 9, "prio": 10, "comm": 11}


@dataclass
class CompactRows:
    """One kind of compact event of a group of bundles: the bundle of each row (an index
    into the group's bundle list), its absolute timestamp in the bundle's clock, its
    integer columns by name and its task name (a code of :class:`Names`)."""

    bundle: I64
    ts: I64
    columns: dict[str, I64]
    comm: NDArray[np.int32]


class Names:
    """The task names of every compact event of a trace, each with one code: intern tables
    are per bundle, but a trace's tasks are few."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self._lock = threading.Lock()  # groups of bundles are decoded side by side

    def of(self, texts: list[str]) -> NDArray[np.int32]:
        """The codes of ``texts`` (new names get new codes)."""
        with self._lock:
            return np.array([self.codes.setdefault(t, len(self.codes)) for t in texts], np.int32)

    def dictionary(self) -> pa.Array:
        """Every name so far, at its code."""
        with self._lock:
            return pa.array(list(self.codes), pa.string())


def decode_compact(
    data: U8, starts: I64, ends: I64, where: list[str], names: Names, skips: SkipLog
) -> tuple[CompactRows, CompactRows]:
    """Switches and wakings of the ``CompactSched`` messages at ``[starts, ends)``.

    A message whose bytes are damaged, whose arrays disagree in length or whose comm index
    points past its intern table contributes nothing, and is counted (``where`` names each
    message's place for that).
    """
    ok = np.ones(starts.shape[0], np.bool_)
    while True:
        decoded = _decode(data, starts[ok], ends[ok])
        if isinstance(decoded, _Decoded):
            bad = decoded.inconsistent()
            if not bad.any():
                kept = np.flatnonzero(ok)
                codes = names.of(decoded.text.dictionary.to_pylist())
                return (
                    decoded.rows(decoded.switch, kept, codes),
                    decoded.rows(decoded.waking, kept, codes),
                )
            places = np.flatnonzero(ok)[bad]
            reason = (
                "compact_sched arrays of unequal length or comm index past the intern table "
                "(its events dropped)"
            )
        else:  # the index of a damaged message
            places = np.flatnonzero(ok)[decoded : decoded + 1]
            reason = "damaged compact_sched (its events dropped)"
        skips.add(reason, [where[k] for k in places[:5]], count=int(places.size))
        ok[places] = False


#: per array name: (message of each element, element value)
_Columns = dict[str, tuple[I64, I64]]


@dataclass
class _Decoded:
    """The arrays of a batch of messages, and their intern tables: message ``m``'s string
    ``k`` is row ``first[m] + k`` of ``text`` (``count[m]`` rows)."""

    messages: int
    first: I64
    count: I64
    text: pa.DictionaryArray
    switch: _Columns
    waking: _Columns

    def inconsistent(self) -> NDArray[np.bool_]:
        """Messages with arrays of one kind of unequal length, or a comm index out of range."""
        bad = np.zeros(self.messages, np.bool_)
        for arrays in (self.switch, self.waking):
            lengths = np.stack(
                [np.bincount(who, minlength=self.messages) for who, _ in arrays.values()]
            )
            bad |= (lengths != lengths[0]).any(axis=0)
            who, index = arrays["comm"]
            outside = (index < 0) | (index >= self.count[who])
            bad[who[outside]] = True
        return bad

    def rows(self, arrays: _Columns, kept: I64, codes: NDArray[np.int32]) -> CompactRows:
        """Rows of one kind, with absolute timestamps; ``codes`` are the :class:`Names` codes
        of the intern tables' distinct texts."""
        who, deltas = arrays["ts"]
        # a running sum restarted at each message's first row
        running = np.cumsum(deltas)
        firsts = np.flatnonzero(np.diff(who, prepend=-1))
        sizes = np.diff(np.append(firsts, who.size))
        ts = running - np.repeat(running[firsts] - deltas[firsts], sizes)
        comm_who, index = arrays["comm"]
        local = self.text.indices.to_numpy(zero_copy_only=False)[self.first[comm_who] + index]
        comm = codes[local] if local.size else np.zeros(0, np.int32)
        columns = {k: v for k, (_, v) in arrays.items() if k not in ("ts", "comm")}
        return CompactRows(kept[who], ts, columns, comm)


def _decode(data: U8, starts: I64, ends: I64) -> _Decoded | int:
    """Every array of every message, or the index of the first damaged message."""
    f = scan_fields(data, starts, ends)
    damaged = np.flatnonzero(f.damage != -1)
    if damaged.size:
        return int(damaged[0])
    n = starts.shape[0]
    names = f.of(INTERN_TABLE, LEN)
    owner = f.msg[names]
    text = text_column(data, f.at[names], f.value[names].astype(np.int64))
    found = repeated(data, f, [*SWITCH.values(), *WAKING.values()])
    if isinstance(found, int):
        return found
    layouts = [
        {name: (found[number][0], found[number][1].view(np.int64)) for name, number in kind.items()}
        for kind in (SWITCH, WAKING)
    ]
    first = np.searchsorted(owner, np.arange(n))
    count = np.bincount(owner, minlength=n)
    return _Decoded(n, first, count, text, layouts[0], layouts[1])
