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

The messages of a group of bundles are decoded by one compiled loop
(:func:`~importers.perfetto.kernels.compact_sched`), run to count and then to fill.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.wire import I64, U8, text_column
from importers.skips import SkipLog

INTERN_TABLE = 5
SWITCH = {"ts": 1, "prev_state": 2, "next_pid": 3, "next_prio": 4, "comm": 6}
#: (``waking_common_flags``, 12, is optional and has no column in ``sched_waking``)
WAKING = {"ts": 7, "pid": 8, "target_cpu": 9, "prio": 10, "comm": 11}
_KINDS = (SWITCH, WAKING)
#: arrays per kind (timestamps first, as the kernel wants them; comm last)
_WIDTH = len(SWITCH)
#: field number -> kernel column: the switches' arrays, then the wakings'
_COLUMN = np.full(max(WAKING.values()) + 1, -1, np.int64)
for _k, _kind in enumerate(_KINDS):
    _COLUMN[list(_kind.values())] = np.arange(_WIDTH) + _k * _WIDTH
_COMM = _WIDTH - 1


@dataclass
class CompactRows:
    """One kind of compact event of a group of bundles: the bundle of each row (an index
    into the group's bundle list), its absolute timestamp in the bundle's clock, its ``seq``,
    its integer columns by name and its task name (a code of :class:`Names`)."""

    bundle: I64
    ts: I64
    seq: I64
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
    data: U8,
    starts: I64,
    ends: I64,
    base: I64,
    where: Callable[[I64], list[str]],
    names: Names,
    skips: SkipLog,
) -> tuple[CompactRows, CompactRows]:
    """Switches and wakings of the ``CompactSched`` messages at ``[starts, ends)``; message
    ``m``'s rows are numbered from ``base[m]`` on in ``seq``, its switches first.

    A message whose bytes are damaged, whose arrays disagree in length or whose comm index
    points past its intern table contributes nothing, and is counted (``where`` names the
    places of messages for that).
    """
    from importers.perfetto.bundle_kernels import compact_sched

    n = starts.shape[0]
    counts = np.empty((n, len(_KINDS) * _WIDTH + 1), np.int64)
    damaged = np.empty(n, np.bool_)
    none = np.empty(0, np.int64)
    compact_sched(data, starts, ends, _COLUMN, INTERN_TABLE, False, counts, damaged,
                  none.reshape(0, 2), none.reshape(0, 2), none.reshape(0, 0), none, none, none,
                  none)  # fmt: skip
    _count(skips, "damaged compact_sched (its events dropped)", where, np.flatnonzero(damaged))
    unequal = np.zeros(n, np.bool_)
    for k in range(len(_KINDS)):
        arrays = counts[:, k * _WIDTH : (k + 1) * _WIDTH]
        unequal |= (arrays != arrays[:, :1]).any(axis=1)
    kept = np.flatnonzero(~damaged & ~unequal)
    rows = counts[kept][:, 0 : len(_KINDS) * _WIDTH : _WIDTH]  # events per message and kind
    first_row = np.cumsum(rows, axis=0) - rows
    first_row[:, 1] += rows[:, 0].sum()  # the wakings after every switch
    strings = counts[kept, -1]
    first_string = np.cumsum(strings) - strings
    values = np.empty((_WIDTH, int(rows.sum())), np.int64)
    seq = np.empty(values.shape[1], np.int64)
    intern_at, intern_len = np.empty((2, int(strings.sum())), np.int64)
    bases = np.stack([base[kept], base[kept] + rows[:, 0]], axis=1)
    compact_sched(data, starts[kept], ends[kept], _COLUMN, INTERN_TABLE, True, counts[kept],
                  np.zeros(kept.shape[0], np.bool_), first_row, bases, values, seq,
                  first_string, intern_at, intern_len)  # fmt: skip
    who = [np.repeat(np.arange(kept.shape[0]), rows[:, k]) for k in range(len(_KINDS))]
    # a comm index past its message's intern table spoils the message
    index = np.split(values[_COMM], [int(rows[:, 0].sum())])
    outside = np.zeros(kept.shape[0], np.bool_)
    for k in range(len(_KINDS)):
        bad = (index[k] < 0) | (index[k] >= strings[who[k]])
        outside[who[k][bad]] = True
    inconsistent = unequal.copy()
    inconsistent[kept[outside]] = True
    _count(skips, "compact_sched arrays of unequal length or comm index past the intern "
           "table (its events dropped)", where, np.flatnonzero(inconsistent))  # fmt: skip
    text = text_column(data, intern_at, intern_len)
    codes = names.of(text.dictionary.to_pylist())
    local = text.indices.to_numpy(zero_copy_only=False)
    switches = int(rows[:, 0].sum())
    out = []
    for k, kind in enumerate(_KINDS):
        mine: slice | I64 = slice(0, switches) if k == 0 else slice(switches, values.shape[1])
        message = who[k]
        if outside.any():
            good = ~outside[message]
            mine, message = np.flatnonzero(good) + (0 if k == 0 else switches), message[good]
        comm = codes[local[first_string[message] + values[_COMM, mine]]] if message.size else None
        out.append(
            CompactRows(
                bundle=kept[message],
                ts=values[0, mine],
                seq=seq[mine],
                columns={
                    name: values[c, mine]
                    for c, name in enumerate(kind)
                    if name not in ("ts", "comm")
                },
                comm=np.zeros(0, np.int32) if comm is None else comm,
            )
        )
    return out[0], out[1]


def _count(skips: SkipLog, reason: str, where: Callable[[I64], list[str]], bad: I64) -> None:
    if bad.size:
        skips.add(reason, where(bad[:5]), count=int(bad.size))
