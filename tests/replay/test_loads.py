"""``vcpu_load``s of a hand-worked schedule (:func:`replay.loads.vcpu_loads`).

Each row below is worked out from the rules in the module docstring: a vCPU is loaded at the
first known piece of each residency and again after unknown time; a load crosses PMUs when
``kvm_pmu_probe_armpmu()`` finds another PMU (or none) than at the thread's previous load; its
``entry`` is the first guest piece or refused entry of the load.
"""

from __future__ import annotations

import polars as pl

from replay.loads import LOAD_SCHEMA, vcpu_loads
from tests.replay.pmu.helpers import A53, A57, two_clusters

# tid, vcpu_index, residency, cpu, start, end, state
Piece = tuple[int, int, int, int, int, int, str]

PIECES: list[Piece] = [
    (10, 0, 0, 1, 100, 150, "host"),
    (10, 0, 0, 1, 150, 200, "guest"),
    (10, 0, 0, 1, 200, 300, "guest"),  # a tick cut: the same load
    (10, 0, 1, 5, 400, 450, "unknown"),  # the residency's first known piece loads
    (10, 0, 1, 5, 450, 500, "guest"),
    (10, 0, 1, 5, 500, 600, "guest"),
    (10, 0, 2, 6, 700, 750, "guest"),
    (10, 0, 2, 6, 750, 760, "unknown"),  # unknown time: loaded again after it
    (10, 0, 2, 6, 760, 780, "host"),
    (10, 0, 2, 6, 780, 800, "guest"),
    (10, 0, 3, 8, 900, 950, "host"),  # CPU 8: no registered PMU covers it
    (20, 1, 0, 8, 100, 200, "host"),
    (20, 1, 1, 8, 300, 320, "host"),
    (20, 1, 1, 8, 320, 400, "host"),
    (20, 1, 2, 2, 500, 600, "guest"),
]
#: A refused entry at the start of a piece goes before it.
ATTEMPTS: list[Piece] = [(20, 1, 1, 8, 320, 320, "attempt")]

EXPECTED = [
    # vm, tid, vcpu_index, load, cpu, start, host_pmu, cross_pmu, entry
    ("vm0", 10, 0, 0, 1, 100, A53, False, 150),
    ("vm0", 10, 0, 1, 5, 450, A57, True, 450),
    ("vm0", 10, 0, 2, 6, 700, A57, False, 700),
    ("vm0", 10, 0, 3, 6, 760, A57, False, 780),
    ("vm0", 10, 0, 4, 8, 900, None, True, None),
    ("vm0", 20, 1, 0, 8, 100, None, False, None),
    ("vm0", 20, 1, 1, 8, 300, None, False, 320),
    ("vm0", 20, 1, 2, 2, 500, A53, True, 500),
]


def _frame(rows: list[Piece], first_window: int) -> pl.DataFrame:
    names = ["tid", "vcpu_index", "residency", "cpu", "start", "end", "state"]
    frame = pl.DataFrame(rows, schema=names, orient="row")
    return frame.with_columns(
        pl.lit("vm0").alias("vm"),
        pl.col("cpu").cast(pl.Int16),
        pl.int_range(first_window, first_window + pl.len()).alias("window"),
    )


def test_loads_of_a_hand_worked_schedule() -> None:
    host = two_clusters(no_pmu_cpus=1)
    loads = vcpu_loads(_frame(PIECES, 0), host, _frame(ATTEMPTS, 1000))
    assert loads.schema == pl.Schema(LOAD_SCHEMA)
    assert loads.rows() == EXPECTED


def test_without_refused_entries_the_loads_come_from_the_pieces_alone() -> None:
    host = two_clusters(no_pmu_cpus=1)
    loads = vcpu_loads(_frame(PIECES, 0), host, _frame([], 1000))
    without = [(*row[:8], None) if row[1:4] == (20, 1, 1) else row for row in EXPECTED]
    assert loads.rows() == without
