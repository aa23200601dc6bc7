"""The KVM userspace ABI the model speaks: attribute ids, errnos, exit reasons, outcomes.

Values are those of ``arch/arm64/include/uapi/asm/kvm.h`` and ``include/uapi/linux/kvm.h``
(``KVM_ARM_VCPU_PMU_V3_FIXED_COUNTERS_ONLY`` = 5 is the series' proposal, spec §3.1). Calls that
the kernel answers with ``0`` or ``-errno`` return exactly that here.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Literal

EINVAL: Final = errno.EINVAL
EBUSY: Final = errno.EBUSY
ENXIO: Final = errno.ENXIO
ENODEV: Final = errno.ENODEV
ENOENT: Final = errno.ENOENT
ENOEXEC: Final = errno.ENOEXEC

#: ``run->exit_reason`` when guest entry is refused (``KVM_EXIT_FAIL_ENTRY``).
KVM_EXIT_FAIL_ENTRY: Final = 9
#: ``fail_entry.hardware_entry_failure_reason`` for a CPU outside ``supported_cpus``.
KVM_EXIT_FAIL_ENTRY_CPU_UNSUPPORTED: Final = 1 << 0

#: The PMU overflow interrupt the selftests and QEMU use (a PPI; GICv5 mandates 23).
DEFAULT_PMU_IRQ: Final = 23


class PmuAttr(IntEnum):
    """Attributes of group ``KVM_ARM_VCPU_PMU_V3_CTRL`` (0)."""

    IRQ = 0
    INIT = 1
    FILTER = 2
    SET_PMU = 3
    SET_NR_COUNTERS = 4
    FIXED_COUNTERS_ONLY = 5


class FilterAction(IntEnum):
    """``struct kvm_pmu_event_filter.action``."""

    ALLOW = 0
    DENY = 1


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Payload of ``KVM_ARM_VCPU_PMU_V3_FILTER`` (``struct kvm_pmu_event_filter``).

    Parameters
    ----------
    base_event, nevents
        The event range ``[base_event, base_event + nevents)``.
    action
        Allow or deny the range. The first filter applied to a VM sets the default for every
        other event: deny-all after a first ALLOW, allow-all after a first DENY.
    """

    base_event: int
    nevents: int
    action: FilterAction = FilterAction.ALLOW


@dataclass(frozen=True, slots=True)
class Entered:
    """``guest_enter()`` succeeded: the vCPU now executes guest code."""

    entered: Literal[True] = True


@dataclass(frozen=True, slots=True)
class FailEntry:
    """``KVM_RUN`` returned with ``exit_reason = KVM_EXIT_FAIL_ENTRY`` (spec §1.4).

    The guest did not execute; ``cpu`` is ``fail_entry.cpu``, the pCPU that refused entry.
    """

    cpu: int
    exit_reason: int = KVM_EXIT_FAIL_ENTRY
    hardware_entry_failure_reason: int = KVM_EXIT_FAIL_ENTRY_CPU_UNSUPPORTED
    entered: Literal[False] = False


#: What ``guest_enter()`` returns.
EntryOutcome = Entered | FailEntry
#: The one successful outcome (it carries no data).
ENTERED: Final = Entered()
