"""Reference path of the engine: the vPMU model stepped through every scheduling event.

For each vCPU, in time order: ``vcpu_load`` when a residency starts, ``guest_enter``,
``advance`` by each piece's events and ``guest_exit`` for each guest window, ``vcpu_put`` when
the residency ends (or before time that is unknown). An entry the capture's kernel refused
(:mod:`replay.refused`) is a ``guest_enter`` too: refused again, it is a ``fail_entry``; let in,
the guest leaves at once (``guest_exit``, nothing counted) and the stretch up to the vCPU's next
entry attempt is unknown, since the capture shows the VMM retrying, not the guest running.
Counter values and statuses are read from the model around every guest piece, and the backing
perf events around every entry: an event replaced by another is a re-creation. It costs
microseconds per piece and is obviously faithful; the vectorized path must reproduce its
observations and re-creations exactly.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from replay.pmu import ENTERED, BackingEvent, Vcpu
from replay.pmu.counters import counter_width_mask
from replay.profiles import CounterRequest
from replay.refused import UNSEEN_GUEST
from replay.scenarios import Scenario
from replay.work import (
    OBSERVATION_SCHEMA,
    RECREATION_SCHEMA,
    ScenarioResult,
    Work,
    boot_vm,
    finish_observations,
    finish_recreations,
)

Row = dict[str, Any]


def replay_reference(work: Work, scenario: Scenario) -> ScenarioResult:
    """Observations of ``scenario`` by stepping the model (see module docstring)."""
    rows: list[Row] = []
    recreated: list[Row] = []
    lost: dict[str, list[str]] = {}
    supported = work.host.possible_cpus
    for vm_name, tids in work.vms.items():
        vm, lost[vm_name] = boot_vm(work, scenario, tids)
        supported = vm.kvm.supported_cpus
        for vcpu, tid in zip(vm.vcpus, tids, strict=True):
            mine = pl.col("tid") == tid
            pieces = pl.concat(
                [work.pieces.filter(mine), work.attempts.filter(mine)], how="diagonal_relaxed"
            ).sort("start", "end", "window")  # an attempt before a piece that begins then
            stepper = _Stepper(vcpu, work.profile.counters, scenario.name)
            rows.extend(stepper.run(pieces))
            recreated.extend(stepper.recreated)
    frame = pl.from_dicts(rows, schema=OBSERVATION_SCHEMA).sort(
        "vcpu", "counter", "start", "end", "window"
    )
    recreations = pl.from_dicts(recreated, schema=RECREATION_SCHEMA)
    return ScenarioResult(
        scenario, finish_observations(frame), lost, finish_recreations(recreations), supported
    )


class _Stepper:
    """Drives one vCPU through its pieces and records a row per guest piece and counter."""

    def __init__(self, vcpu: Vcpu, requests: tuple[CounterRequest, ...], scenario: str) -> None:
        self.vcpu = vcpu
        self.requests = requests
        self.scenario = scenario
        self.masks = {r.idx: counter_width_mask(vcpu, r.idx) for r in requests}
        self.residency: int | None = None
        self.window: int | None = None
        self.rows: list[Row] = []
        self.recreated: list[Row] = []

    def run(self, pieces: pl.DataFrame) -> list[Row]:
        for p in pieces.iter_rows(named=True):
            if self.window is not None and p["window"] != self.window:
                self._exit()
            if p["state"] == "unknown" or p["residency"] != self.residency:
                self._put()
            if p["state"] == "unknown":
                self._unknown(p)
                continue
            if self.residency is None:
                self.vcpu.vcpu_load(p["cpu"])  # kvm_arch_vcpu_load at the switch-in
                self.residency = p["residency"]
            if p["state"] == "guest":
                self._guest(p)
            elif p["state"] == "attempt":
                self._attempt(p)
        self._exit()
        self._put()
        return self.rows

    def _guest(self, p: Row) -> None:
        vcpu = self.vcpu
        if self.window is None:
            events = {r.idx: vcpu.backing_event(r.idx) for r in self.requests}
            outcome = vcpu.guest_enter()  # a pending KVM_REQ_RELOAD_PMU is served here
            self._recreations(p, events)
            if outcome is not ENTERED:  # KVM_EXIT_FAIL_ENTRY: the guest never runs
                for r in self.requests:
                    self._row(p, r, "fail_entry", False, "fail_entry", None, 0)
                return
            self.window = p["window"]
        before = {r.idx: vcpu.counter_value(r.idx) for r in self.requests}
        status = {r.idx: vcpu.counter_status(r.idx) for r in self.requests}
        vcpu.advance(
            {r.event: p[f"el1_{r.event:#x}"] for r in self.requests},
            {r.event: p[f"el0_{r.event:#x}"] for r in self.requests},
        )
        for r in self.requests:
            st = status[r.idx]
            delta = (vcpu.counter_value(r.idx) - before[r.idx]) & self.masks[r.idx]
            self._row(p, r, "guest", st.counting, st.reason, st.host_pmu, delta)

    def _attempt(self, p: Row) -> None:
        """An entry the capture's kernel refused, tried under this scenario."""
        events = {r.idx: self.vcpu.backing_event(r.idx) for r in self.requests}
        outcome = self.vcpu.guest_enter()
        self._recreations(p, events)
        if outcome is not ENTERED:  # refused here too: KVM_EXIT_FAIL_ENTRY, no guest time
            for r in self.requests:
                self._row(p, r, "fail_entry", False, "fail_entry", None, 0)
            return
        self.vcpu.guest_exit()  # what the guest did next, the capture cannot show
        for r in self.requests:
            self.rows.append(
                _base(self.scenario, p, r.idx)
                | {"state": "unknown", "reason": UNSEEN_GUEST, "end": p["until"]}
            )

    def _recreations(self, p: Row, before: dict[int, BackingEvent | None]) -> None:
        """A row per counter whose perf event the entry replaced by a new one."""
        for idx, old in before.items():
            new = self.vcpu.backing_event(idx)
            if old is not None and new is not None and new is not old:
                self.recreated.append(
                    {
                        "scenario": self.scenario,
                        "vm": p["vm"],
                        "vcpu": p["tid"],
                        "vcpu_index": p["vcpu_index"],
                        "counter": idx,
                        "ts": p["start"],
                        "cpu": p["cpu"],
                        "host_pmu": new.pmu.name,
                    }
                )

    def _row(
        self,
        p: Row,
        r: CounterRequest,
        state: str,
        counting: bool,
        reason: str | None,
        host_pmu: str | None,
        delta: int,
    ) -> None:
        true_events = p[f"el0_{r.event:#x}"] + p[f"el1_{r.event:#x}"]
        value = self.vcpu.counter_value(r.idx)
        self.rows.append(
            _base(self.scenario, p, r.idx)
            | {
                "state": state,
                "counting": counting,
                "reason": None if reason is None else str(reason),
                "host_pmu": host_pmu,
                "true_events": true_events,
                "delta": delta,
                "value": value,
            }
        )

    def _unknown(self, p: Row) -> None:
        for r in self.requests:
            self.rows.append(
                _base(self.scenario, p, r.idx) | {"state": "unknown", "reason": p["cause"]}
            )

    def _exit(self) -> None:
        if self.window is not None:
            self.vcpu.guest_exit()
            self.window = None

    def _put(self) -> None:
        if self.residency is not None:
            self.vcpu.vcpu_put()  # kvm_arch_vcpu_put at the switch-out
            self.residency = None


def _base(scenario: str, p: Row, idx: int) -> Row:
    return {
        "scenario": scenario,
        "vm": p["vm"],
        "vcpu": p["tid"],
        "vcpu_index": p["vcpu_index"],
        "counter": idx,
        "window": p["window"],
        "tick": p["tick"],
        "start": p["start"],
        "end": p["end"],
        "cpu": p["cpu"],
    }
