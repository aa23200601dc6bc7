"""The host perf event that backs one guest counter (spec §1.5, §2.3).

``kvm_pmu_create_perf_event()`` creates a pinned, task-bound event on ONE host PMU. perf core
schedules it only on CPUs that PMU supports (``armpmu_filter()``), and with ``exclude_host`` it
counts only guest execution. The guest-visible counter is the saved register plus this event's
:attr:`BackingEvent.count` (``kvm_pmu_get_pmc_value()``).
"""

from __future__ import annotations

from replay.pmu.host import HostPmu


class BackingEvent:
    """State of one ``struct perf_event`` KVM created for a guest counter.

    Attributes
    ----------
    pmu
        Host PMU the event is bound to (``attr.type``).
    config
        Event number counted (``attr.config``; CPU_CYCLES for the cycle counter).
    enabled
        Not disabled (``!attr.disabled``, ``perf_event_enable``/``disable``).
    exclude_user, exclude_kernel
        From the counter's U and P filter bits: guest EL0 resp. EL1 not counted.
    exclude_host, exclude_hv
        Always true for KVM's events: host execution and EL2 never count.
    counter_64bit
        ``attr.config1`` has ``PERF_ATTR_CFG1_COUNTER_64BIT`` (``kvm_pmc_is_64bit()``): on a PMU
        without long counters such an event needs a chained pair unless it gets the cycle
        counter.
    serial
        Creation order among the vCPU's events (perf's ``group_index``): the order in which perf
        schedules them in.
    error
        ``PERF_EVENT_STATE_ERROR``: the pinned event got no hardware counter when scheduled in
        and counts nothing until it is enabled again or recreated.
    count
        Events counted since creation (``perf_event_read_value()``).
    next_overflow
        Unless ``architectural_overflow`` is on: the :attr:`count` at which perf next calls
        ``kvm_pmu_perf_overflow()``: the ``sample_period`` given at creation (``compute_period()``:
        events until the guest counter wraps at its overflow width), then wherever the last
        overflow re-armed it; ``None`` for a non-sampling event (period 0).
    """

    __slots__ = (
        "config",
        "count",
        "counter_64bit",
        "enabled",
        "error",
        "exclude_kernel",
        "exclude_user",
        "next_overflow",
        "pmu",
        "serial",
    )

    exclude_host = True
    exclude_hv = True

    def __init__(
        self,
        *,
        pmu: HostPmu,
        config: int,
        enabled: bool,
        exclude_user: bool,
        exclude_kernel: bool,
        sample_period: int,
        counter_64bit: bool,
        serial: int,
    ) -> None:
        self.pmu = pmu
        self.config = config
        self.enabled = enabled
        self.exclude_user = exclude_user
        self.exclude_kernel = exclude_kernel
        self.counter_64bit = counter_64bit
        self.serial = serial
        self.error = False
        self.count = 0
        # perf fires the first overflow after sample_period events; 0 = non-sampling event.
        self.next_overflow: int | None = sample_period or None

    def __repr__(self) -> str:
        return (
            f"BackingEvent(pmu={self.pmu.name}, config={self.config:#x}, "
            f"enabled={self.enabled}, error={self.error}, count={self.count}, "
            f"exclude_user={self.exclude_user}, exclude_kernel={self.exclude_kernel})"
        )
