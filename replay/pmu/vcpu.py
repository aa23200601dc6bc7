"""A vCPU as the replay engine drives it: userspace calls, scheduling, guest execution, queries.

Run-side operations mirror ``arm.c``: ``vcpu_load(cpu)``/``vcpu_put()`` are
``kvm_arch_vcpu_load``/``kvm_arch_vcpu_put`` (the vCPU thread scheduled in/out while inside
``KVM_RUN``), ``guest_enter()`` is one pass of ``kvm_arch_vcpu_ioctl_run()``'s loop up to the
world switch (requests, ``kvm_pmu_flush_hwstate``, the unsupported-CPU check), ``guest_exit()``
is the exit with ``kvm_pmu_sync_hwstate``, and ``advance()`` is guest execution in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from replay.pmu import sysregs, userspace
from replay.pmu.arch import MAX_COUNTERS
from replay.pmu.contention import sched_in
from replay.pmu.counters import get_pmc_value, load_pmu, reload_pmu
from replay.pmu.errors import KvmRefusedError, VpmuStateError
from replay.pmu.event import BackingEvent
from replay.pmu.kvm import Kvm
from replay.pmu.overflow import count_guest_execution, overflow_status, update_state
from replay.pmu.state import VcpuState
from replay.pmu.status import CounterStatus, counter_status
from replay.pmu.uapi import EINVAL, ENOEXEC, ENTERED, EntryOutcome, FailEntry, PmuAttr

_NO_EVENTS: Mapping[int, int] = MappingProxyType({})


class Vcpu(VcpuState):
    """One vCPU of a :class:`~replay.pmu.kvm.Kvm`; create it with :func:`create_vcpu`.

    Besides the methods, these attributes are plain reads for observations: ``pmovsset``
    (PMOVSSET_EL0), ``irq_level`` (PMU interrupt line), ``creations`` (backing events created
    per counter), ``cpu``, ``loaded`` and ``in_guest``; see :class:`~replay.pmu.state.VcpuState`.
    """

    __slots__ = ()

    # -- userspace (the VMM) -------------------------------------------------------------------

    def vcpu_init(self, on_cpu: int, *, pmu_v3: bool = True) -> int:
        """``KVM_ARM_VCPU_INIT`` run by a VMM thread on pCPU ``on_cpu``; returns 0 or -errno."""
        self._require_cpu(on_cpu, "vcpu_init")
        self._require_outside_guest("KVM_ARM_VCPU_INIT")
        return userspace.vcpu_init(self, on_cpu, pmu_v3=pmu_v3)

    def set_attr(self, attr: PmuAttr, value: userspace.AttrValue = None) -> int:
        """``KVM_SET_DEVICE_ATTR`` in group ``KVM_ARM_VCPU_PMU_V3_CTRL``; returns 0 or -errno."""
        self._require_outside_guest("KVM_SET_DEVICE_ATTR")
        return userspace.set_attr(self, attr, value)

    def get_attr(self, attr: PmuAttr) -> tuple[int, int | None]:
        """``KVM_GET_DEVICE_ATTR``: ``(0, value)`` or ``(-errno, None)``."""
        return userspace.get_attr(self, attr)

    def has_attr(self, attr: int) -> int:
        """``KVM_HAS_DEVICE_ATTR``: 0 or -ENXIO."""
        return userspace.has_attr(self, attr)

    def get_one_reg(self, name: str, idx: int | None = None) -> tuple[int, int]:
        """``KVM_GET_ONE_REG`` of a PMU register: ``(0, value)`` or ``(-errno, 0)``."""
        return userspace.get_one_reg(self, name, idx)

    def set_one_reg(self, name: str, value: int, idx: int | None = None) -> int:
        """``KVM_SET_ONE_REG`` of a PMU register; returns 0 or -errno."""
        self._require_outside_guest("KVM_SET_ONE_REG")
        return userspace.set_one_reg(self, name, value, idx)

    # -- run side -------------------------------------------------------------------------------

    def vcpu_load(self, cpu: int) -> None:
        """``kvm_arch_vcpu_load(vcpu, cpu)``: the vCPU thread runs on ``cpu`` now."""
        self._require_cpu(cpu, "vcpu_load")
        if self.loaded:
            raise VpmuStateError(f"{self!r}: vcpu_load({cpu}) while already loaded")
        last_cpu = self.cpu
        self.cpu = cpu
        self.loaded = True
        load_pmu(self, last_cpu)
        sched_in(self)  # perf_event_task_sched_in() of the vCPU thread on this CPU
        self.on_unsupported_cpu = cpu not in self.kvm.supported_cpus

    def vcpu_put(self) -> None:
        """``kvm_arch_vcpu_put()``: the vCPU thread is scheduled out (never from guest mode)."""
        if not self.loaded or self.in_guest:
            raise VpmuStateError(f"{self!r}: vcpu_put() needs a loaded vCPU outside guest mode")
        self.on_unsupported_cpu = False
        if self.kvm.rules.put_clears_cpu:
            self.cpu = -1
        self.loaded = False

    def guest_enter(self) -> EntryOutcome:
        """Try to enter the guest (``kvm_entry``); returns :data:`ENTERED` or a
        :class:`FailEntry` when the pCPU is outside ``supported_cpus`` (spec §1.4, inv. 3).

        Raises
        ------
        KvmRefusedError
            When ``KVM_RUN`` itself fails: vCPU not initialised (-ENOEXEC) or PMU not
            initialised with ``KVM_ARM_VCPU_PMU_V3_INIT`` (-EINVAL, ``kvm_arm_pmu_v3_enable``).
        """
        if not self.loaded or self.in_guest:
            raise VpmuStateError(f"{self!r}: guest_enter() needs a loaded vCPU outside guest mode")
        if not self.has_run:
            self._first_run_init()
        self._check_requests_and_flush_hwstate()
        if self.on_unsupported_cpu:  # kvm_vcpu_exit_request()
            return FailEntry(cpu=self.cpu)
        self.in_guest = True
        return ENTERED

    def guest_exit(self) -> None:
        """Leave guest mode (``kvm_exit``); re-evaluates the PMU interrupt level."""
        if not self.in_guest:
            raise VpmuStateError(f"{self!r}: guest_exit() outside guest mode")
        self.in_guest = False
        update_state(self)  # kvm_pmu_sync_hwstate()

    def advance(self, el1: Mapping[int, int], el0: Mapping[int, int] = _NO_EVENTS) -> None:
        """Guest execution in guest mode on the current pCPU since the last call.

        Parameters
        ----------
        el1, el0
            Occurrences of each PMU event number (e.g. ``{0x11: cycles, 0x08: instructions}``)
            while the guest ran at EL1 resp. EL0. Events not listed did not occur.
        """
        if not self.in_guest:
            raise VpmuStateError(f"{self!r}: advance() outside guest mode")
        for counts in (el1, el0):
            for number, count in counts.items():
                if count < 0:
                    raise VpmuStateError(f"{self!r}: negative count {count} for event {number:#x}")
        count_guest_execution(self, el1, el0)

    def read_sysreg(self, name: str, idx: int | None = None, *, el0: bool = False) -> int:
        """Guest ``MRS`` of a PMU register (``el0``: executed at EL0); UNDEF raises
        :class:`~replay.pmu.errors.UndefinedAccess`."""
        self._require_guest(name)
        value = sysregs.guest_read(self, name, idx, el0=el0)
        self._check_requests_and_flush_hwstate()
        return value

    def write_sysreg(
        self,
        name: str,
        value: int,
        idx: int | None = None,
        *,
        el0: bool = False,
        aarch32: bool = False,
    ) -> None:
        """Guest ``MSR`` of a PMU register (``aarch32``: the guest is in AArch32 state)."""
        self._require_guest(name)
        sysregs.guest_write(self, name, value, idx, el0=el0, aarch32=aarch32)
        self._check_requests_and_flush_hwstate()

    # -- side-effect-free queries -------------------------------------------------------------

    @property
    def pmcr_n(self) -> int:
        """``PMCR_EL0.N`` as the guest reads it now (VM-scoped)."""
        return self.kvm.nr_pmu_counters

    def counter_value(self, idx: int) -> int:
        """Guest-visible value of counter ``idx`` (31 = PMCCNTR_EL0), without UNDEF checks."""
        if not 0 <= idx < MAX_COUNTERS:
            raise IndexError(f"counter index {idx} outside 0..31")
        return get_pmc_value(self, idx)

    def counter_status(self, idx: int) -> CounterStatus:
        """Whether counter ``idx`` counts guest execution now, on which host PMU, or why not."""
        return counter_status(self, idx)

    def overflow_status(self) -> bool:
        """``kvm_pmu_overflow_status()`` now (the level the next entry/exit will set)."""
        return overflow_status(self)

    def backing_event(self, idx: int) -> BackingEvent | None:
        """The perf event backing counter ``idx`` (do not mutate it)."""
        return self.events[idx]

    # -- internals ------------------------------------------------------------------------------

    def _first_run_init(self) -> None:
        """The PMU part of ``kvm_vcpu_first_run_init()``; marks the VM as having run."""
        if not self.initialized:
            raise KvmRefusedError(f"{self!r}: KVM_RUN before KVM_ARM_VCPU_INIT", ENOEXEC)
        if self.has_pmu and not self.created:
            raise KvmRefusedError(
                f"{self!r}: KVM_RUN without KVM_ARM_VCPU_PMU_V3_INIT (kvm_arm_pmu_v3_enable); "
                "set the PMU IRQ and INIT attributes before the first run",
                EINVAL,
            )
        self.has_run = True
        self.kvm.has_ran_once = True

    def _check_requests_and_flush_hwstate(self) -> None:
        """What every pass into the guest runs, after a trapped access too:
        ``check_vcpu_requests()`` (a pending ``KVM_REQ_RELOAD_PMU``), then
        ``kvm_pmu_flush_hwstate()`` (the interrupt level)."""
        if self.reload_pending:
            self.reload_pending = False
            reload_pmu(self)
        update_state(self)

    def _require_guest(self, what: str) -> None:
        if not self.in_guest:
            raise VpmuStateError(f"{self!r}: guest access to {what} outside guest mode")

    def _require_outside_guest(self, what: str) -> None:
        if self.in_guest:
            raise VpmuStateError(f"{self!r}: {what} while the vCPU runs guest code")

    def _require_cpu(self, cpu: int, what: str) -> None:
        if cpu not in self.kvm.host.possible_cpus:
            raise VpmuStateError(
                f"{self!r}: {what} on CPU {cpu}, which the host topology does not have "
                f"(possible CPUs: {sorted(self.kvm.host.possible_cpus)})"
            )


def create_vcpu(kvm: Kvm) -> Vcpu:
    """``KVM_CREATE_VCPU``: a new, uninitialised vCPU with the next id."""
    vcpu = Vcpu(kvm, kvm.nr_vcpus)
    kvm.nr_vcpus += 1
    return vcpu
