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

The messages of a group of bundles are decoded in one compiled pass
(:func:`~importers.perfetto.bundle_kernels.compact_sched`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from importers.perfetto.bundle_layout import DAMAGED, INCONSISTENT
from importers.perfetto.wire import I64, U8, bundle_loops, text_column
from importers.skips import SkipLog

INTERN_TABLE = 5
SWITCH = {"ts": 1, "prev_state": 2, "next_pid": 3, "next_prio": 4, "comm": 6}
#: (``waking_common_flags``, 12, is optional and has no column in ``sched_waking``)
WAKING = {"ts": 7, "pid": 8, "target_cpu": 9, "prio": 10, "comm": 11}
_KINDS = (SWITCH, WAKING)
#: arrays per kind (timestamps first, comm last, as the kernel wants them)
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
    its integer columns by name and its task name (an index into the group's names, which
    :class:`Names` codes once the groups are in trace order)."""

    bundle: I64
    ts: I64
    seq: I64
    columns: dict[str, I64]
    comm: NDArray[np.int32]


class Names:
    """The task names of every compact event of a trace, each with one code: intern tables
    are per bundle, but a trace's tasks are few. Groups are decoded side by side, in no
    fixed order; their names are coded as the groups are taken in trace order, so the codes
    (and the dictionaries written) are the same on every run."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def of(self, texts: list[str]) -> NDArray[np.int32]:
        """The codes of ``texts`` (new names get new codes)."""
        return np.array([self.codes.setdefault(t, len(self.codes)) for t in texts], np.int32)

    def dictionary(self) -> pa.Array:
        """Every name so far, at its code."""
        return pa.array(list(self.codes), pa.string())


def decode_compact(
    data: U8,
    starts: I64,
    ends: I64,
    base: I64,
    where: Callable[[I64], list[str]],
    skips: SkipLog,
) -> tuple[CompactRows, CompactRows, list[str]]:
    """Switches and wakings of the ``CompactSched`` messages at ``[starts, ends)``, and the
    task names their ``comm`` indexes; message ``m``'s rows are numbered from ``base[m]`` on
    in ``seq``, its switches first.

    A message whose bytes are damaged, whose arrays disagree in length or whose comm index
    points past its intern table contributes nothing, and is counted (``where`` names the
    places of messages for that).
    """
    room = int((ends - starts).sum())  # at least a byte per element and per string
    status = np.empty(starts.shape[0], np.int8)
    values = np.empty((len(_KINDS), _WIDTH, room), np.int64)
    seq, owner = np.empty((2, len(_KINDS), room), np.int64)
    intern_at, intern_len = np.empty((2, room), np.int64)
    placed = np.zeros(len(_KINDS) + 1, np.int64)
    bundle_loops(data).compact_sched(data, starts, ends, base, _COLUMN, INTERN_TABLE, status,
                                     values, seq, owner, intern_at, intern_len, placed)  # fmt: skip
    for fate, reason in ((DAMAGED, "damaged compact_sched"),
                         (INCONSISTENT, "compact_sched arrays of unequal length or comm "
                          "index past the intern table")):  # fmt: skip
        _count(skips, f"{reason} (its events dropped)", where, np.flatnonzero(status == fate))
    strings = int(placed[-1])
    text = text_column(data, intern_at[:strings], intern_len[:strings])
    local = text.indices.to_numpy(zero_copy_only=False)
    out = []
    for kind, arrays in enumerate(_KINDS):
        rows = int(placed[kind])
        index = values[kind, _COMM, :rows]
        out.append(
            CompactRows(
                bundle=owner[kind, :rows],
                ts=values[kind, 0, :rows],
                seq=seq[kind, :rows],
                columns={
                    name: values[kind, c, :rows]
                    for c, name in enumerate(arrays)
                    if name not in ("ts", "comm")
                },
                comm=local[index] if rows else np.zeros(0, np.int32),
            )
        )
    return out[0], out[1], text.dictionary.to_pylist()


def _count(skips: SkipLog, reason: str, where: Callable[[I64], list[str]], bad: I64) -> None:
    if bad.size:
        skips.add(reason, where(bad[:5]), count=int(bad.size))
