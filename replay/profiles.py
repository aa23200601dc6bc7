"""Guest PMU usage profiles: how a guest programs its vPMU, and what its execution generates.

Host traces do not show guest register values, so what the guest asks of its PMU comes from a
profile (``DESIGN.md``, "The model and the engine"):

* ``windows``: the cycle counter enabled from boot, counting EL0 and EL1, read at every
  15.625 ms clock tick (the tick whose zero cycle delta Windows divides by, spec §6.1);
* ``linux-perf``: what the Linux arm_pmuv3 driver programs for ``perf stat -e
  cycles,instructions``: cycles on PMCCNTR, INST_RETIRED on the first event counter if PMCR.N
  has one (``armv8pmu_get_event_idx``), both counting EL0+EL1;
* ``idle-pmu``: a vPMU the guest never enables (Linux without perf running: ``armv8pmu_reset``
  leaves every counter disabled);
* a user file (JSON), see :func:`load_profile`.

``boot`` is run once per vCPU with the vCPU in guest mode. Like a real guest it reads PMCR_EL0.N
first and leaves alone the event counters the vPMU does not implement (all of them in
FIXED_COUNTERS_ONLY mode); those counters are reported as lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from importers.errors import UsageError
from replay.pmu import CPU_CYCLES, CYCLE_IDX, INST_RETIRED, Vcpu
from replay.pmu.arch import PMCR_C, PMCR_E, PMCR_LC, PMCR_N_MASK, PMCR_N_SHIFT, PMCR_P

WINDOWS_TICK_NS = 15_625_000  # 64 Hz clock tick
ALL_COUNTERS = 0xFFFF_FFFF


@dataclass(frozen=True)
class CounterRequest:
    """A counter the guest wants: ``idx`` 31 = PMCCNTR_EL0, else PMEVCNTR<idx>_EL0."""

    idx: int
    event: int
    name: str


@dataclass(frozen=True)
class GuestProfile:
    """What the guest programs and how fast its execution produces each PMU event.

    ``rates`` gives events per guest cycle for every event other than CPU_CYCLES;
    ``el0_share`` is the fraction of guest execution at EL0 (the rest at EL1);
    ``tick_ns`` is the period at which the guest reads its counters (None: never checked).
    ``programmed``: the guest programs and enables ``counters`` (False: it leaves its vPMU
    alone, so a configuration without those counters takes nothing from it).
    """

    name: str
    description: str
    counters: tuple[CounterRequest, ...]
    program: Callable[[Vcpu, tuple[CounterRequest, ...]], list[CounterRequest]]
    rates: Mapping[int, float] = field(default_factory=dict)
    el0_share: float = 0.5
    tick_ns: int | None = None
    programmed: bool = True

    @property
    def programs(self) -> tuple[CounterRequest, ...]:
        """The counters the guest programs: what it loses where its vPMU lacks them."""
        return self.counters if self.programmed else ()

    def boot(self, vcpu: Vcpu) -> list[CounterRequest]:
        """Program the vPMU of ``vcpu`` (in guest mode); returns the requests it lacks a counter
        for (an event counter at or above PMCR_EL0.N)."""
        return self.program(vcpu, self.counters)

    def event_counts(self, guest: pl.DataFrame) -> pl.DataFrame:
        """Add ``el0_<event>``/``el1_<event>`` columns: events of each guest piece, per EL.

        Derived once, as integers, from the piece's ``cycles``; both engine paths use them.
        """
        exprs = []
        for event in sorted({r.event for r in self.counters}):
            rate = 1.0 if event == CPU_CYCLES else self.rates.get(event, 0.0)
            total = (pl.col("cycles") * rate).floor().cast(pl.Int64)
            el0 = (total * self.el0_share).floor().cast(pl.Int64)
            exprs += [el0.alias(f"el0_{event:#x}"), (total - el0).alias(f"el1_{event:#x}")]
        return guest.with_columns(exprs)


def _pmcr_n(vcpu: Vcpu) -> int:
    return (vcpu.read_sysreg("PMCR_EL0") & PMCR_N_MASK) >> PMCR_N_SHIFT


def _program_counters(vcpu: Vcpu, wanted: tuple[CounterRequest, ...]) -> list[CounterRequest]:
    """Linux/Windows style: reset and stop everything, then program and enable what exists."""
    lost: list[CounterRequest] = []
    vcpu.write_sysreg("PMCNTENCLR_EL0", ALL_COUNTERS)
    vcpu.write_sysreg("PMINTENCLR_EL1", ALL_COUNTERS)
    vcpu.write_sysreg("PMOVSCLR_EL0", ALL_COUNTERS)
    n = _pmcr_n(vcpu)
    enable = 0
    for req in wanted:
        if req.idx != CYCLE_IDX and req.idx >= n:
            lost.append(req)  # perf: "<not supported>"; the guest sees PMCR_EL0.N too small
            continue
        if req.idx == CYCLE_IDX:
            vcpu.write_sysreg("PMCCFILTR_EL0", 0)  # P=U=0: count EL1 and EL0
        else:
            vcpu.write_sysreg("PMEVTYPER<n>_EL0", req.event, req.idx)
        enable |= 1 << req.idx
    pmcr = vcpu.read_sysreg("PMCR_EL0") & 0xFF
    vcpu.write_sysreg("PMCR_EL0", pmcr | PMCR_LC | PMCR_P | PMCR_C | PMCR_E)
    vcpu.write_sysreg("PMCNTENSET_EL0", enable)
    return lost


def _leave_disabled(vcpu: Vcpu, wanted: tuple[CounterRequest, ...]) -> list[CounterRequest]:
    """``armv8pmu_reset()``: every counter disabled and reset, PMCR.E left clear."""
    vcpu.write_sysreg("PMCNTENCLR_EL0", ALL_COUNTERS)
    vcpu.write_sysreg("PMINTENCLR_EL1", ALL_COUNTERS)
    vcpu.write_sysreg("PMCR_EL0", PMCR_LC | PMCR_P | PMCR_C)
    return []


CYCLES = CounterRequest(CYCLE_IDX, CPU_CYCLES, "cycles")
INSTRUCTIONS = CounterRequest(0, INST_RETIRED, "instructions")

PROFILES: dict[str, GuestProfile] = {
    "windows": GuestProfile(
        "windows",
        "cycle counter from boot, EL0+EL1, read every 15.625 ms tick",
        (CYCLES,),
        _program_counters,
        el0_share=0.5,
        tick_ns=WINDOWS_TICK_NS,
    ),
    "linux-perf": GuestProfile(
        "linux-perf",
        "perf stat -e cycles,instructions: PMCCNTR + INST_RETIRED on event counter 0",
        (CYCLES, INSTRUCTIONS),
        _program_counters,
        rates={INST_RETIRED: 1.0},
        el0_share=0.7,
    ),
    "idle-pmu": GuestProfile(
        "idle-pmu",
        "vPMU present, never enabled by the guest",
        (CYCLES,),
        _leave_disabled,
        programmed=False,
    ),
}


#: The guest profile file format, as ``replay --help`` and ``compare --help`` print it.
PROFILE_FILE_FORMAT = """\
guest profile file (--profile FILE), JSON:
  {"name": "my-guest", "description": "what it runs",
   "counters": [{"idx": 31, "event": "0x11", "name": "cycles"},
                {"idx": 0, "event": "0x08", "name": "instructions"}],
   "rates": {"0x08": 1.4}, "el0_share": 0.6, "tick_ns": 15625000}
  counters    required: the counters the guest programs, like `perf stat` does (reset, then
              enabled); idx 31 is PMCCNTR_EL0 (event 0x11 only), 0-30 are PMEVCNTR<n>_EL0;
              event is a PMU event number, decimal or 0x hex
  rates       events per guest cycle of each event other than 0x11 (default 0)
  el0_share   share of guest execution at EL0, 0 to 1 (default 0.5; the rest is EL1)
  tick_ns     period at which the guest reads its counters (default: never checked)
  name, description   labels for reports (default: the file name)
"""


def load_profile(name_or_path: str) -> GuestProfile:
    """A built-in profile by name, or a JSON file (:data:`PROFILE_FILE_FORMAT`).

    Counters are programmed like ``linux-perf`` (disabled and reset first, then enabled).
    """
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    path = Path(name_or_path)
    if not path.exists():
        raise UsageError(
            f"--profile {name_or_path!r}: not a built-in profile ({', '.join(PROFILES)}) and "
            "no such file"
        )
    try:
        data = json.loads(path.read_text())
        return _from_json(data, path)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{path}: not a valid guest profile ({exc}); the format is under "
            "'guest profile file' in `pmu-replay replay --help`"
        ) from None


def _from_json(data: dict[str, Any], path: Path) -> GuestProfile:
    counters = tuple(
        CounterRequest(
            int(c["idx"]), int(str(c["event"]), 0), str(c.get("name", f"counter{c['idx']}"))
        )
        for c in data["counters"]
    )
    for c in counters:
        if not 0 <= c.idx <= CYCLE_IDX:
            raise ValueError(f"counter index {c.idx} outside 0..31")
        if c.idx == CYCLE_IDX and c.event != CPU_CYCLES:
            raise ValueError("counter 31 is the cycle counter: its event is 0x11")
    share = float(data.get("el0_share", 0.5))
    if not 0.0 <= share <= 1.0:
        raise ValueError("el0_share must be between 0 and 1")
    tick = data.get("tick_ns")
    return GuestProfile(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", f"from {path}")),
        counters=counters,
        program=_program_counters,
        rates={int(str(k), 0): float(v) for k, v in data.get("rates", {}).items()},
        el0_share=share,
        tick_ns=int(tick) if tick else None,
    )
