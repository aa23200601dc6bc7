"""Arm PMUv3 facts a host description states: ID register values, common event numbers, and
the counters a host's own perf events hold.

They belong to the host's description (:mod:`importers.host.topology`,
:mod:`importers.host.catalogue`) as much as to the vPMU model, which imports them from here
(:mod:`replay.pmu.arch`, :mod:`replay.pmu.host`): importers never import the model. Names
follow the Arm ARM and ``include/linux/perf/arm_pmuv3.h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from importers.errors import TopologyError

#: Largest number of general-purpose (event) counters (``ARMV8_PMU_MAX_GENERAL_COUNTERS``).
MAX_EVENT_COUNTERS = 31

# Common event numbers (Arm ARM "Common event numbers"; arm_pmuv3.h ARMV8_PMUV3_PERFCTR_*).
SW_INCR = 0x00
INST_RETIRED = 0x08
CPU_CYCLES = 0x11
CHAIN = 0x1E
BR_RETIRED = 0x21
BR_MIS_PRED_RETIRED = 0x22
STALL_SLOT_BACKEND = 0x3D
STALL_SLOT_FRONTEND = 0x3E
STALL_SLOT = 0x3F


class PmuVer(IntEnum):
    """``ID_AA64DFR0_EL1.PMUVer`` values (spec §5.3)."""

    NI = 0x0
    IMP = 0x1
    V3P1 = 0x4
    V3P4 = 0x5
    V3P5 = 0x6
    V3P7 = 0x7
    V3P8 = 0x8
    V3P9 = 0x9
    IMP_DEF = 0xF


@dataclass(frozen=True, slots=True)
class Reservation:
    """Hardware counters of one CPU held by the host's own CPU-pinned perf events.

    perf core schedules CPU-pinned events before a task's pinned events
    (``perf_event_sched_in()``), so these counters are taken before any of the vCPU thread's
    (spec §1.5). ``counters`` general-purpose counters go to the lowest indices
    (``armv8pmu_get_single_idx()``); ``cycles`` is a cycles event, which
    ``armv8pmu_get_event_idx()`` places on the cycle counter, as the hard-lockup detector's.
    """

    counters: int = 0
    cycles: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.counters <= MAX_EVENT_COUNTERS:
            raise TopologyError(
                f"{self.counters} reserved counters: a CPU has 0..31 general-purpose counters"
            )

    def __str__(self) -> str:
        parts = (["cycles"] if self.cycles else []) + (
            [str(self.counters)] if self.counters else []
        )
        return "+".join(parts) or "0"
