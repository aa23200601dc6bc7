"""Errors of the vPMU model, all inside the project's :class:`PmuReplayError` hierarchy."""

from __future__ import annotations

from importers.errors import PmuReplayError


class VpmuStateError(PmuReplayError):
    """An operation that cannot happen in the vCPU's current state.

    Examples: ``advance()`` outside guest mode, ``vcpu_load()`` of a vCPU that is already loaded,
    a guest register access while the vCPU is not executing guest code. The replay engine raises
    these only when its timeline is inconsistent (for example two ``kvm_entry`` in a row), so the
    message names the vCPU, the operation and the state it was in.
    """


class KvmRefusedError(PmuReplayError):
    """The kernel would refuse a configuration step with ``-errno``.

    Raised by the scenario builder (``replay.scenarios.build_vm``) and by ``guest_enter()`` when
    ``KVM_RUN`` itself fails; ``errno`` holds the positive error number.
    """

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class UndefinedAccess(PmuReplayError):
    """The guest's register access is UNDEFINED: KVM injects an UNDEF exception.

    ``register`` is the Arm register name accessed, ``reason`` why it is undefined (for example
    ``"counter 7 >= PMCR_EL0.N (6)"`` or ``"EL0 access with PMUSERENR_EL0.EN clear"``).
    """

    def __init__(self, register: str, reason: str) -> None:
        super().__init__(f"guest access to {register} is UNDEFINED: {reason}")
        self.register = register
        self.reason = reason


class UnknownRegisterError(PmuReplayError):
    """A register name (or counter index) that is not a PMU register the model emulates.

    Guest profiles name registers by their Arm names (``PMCCNTR_EL0``, ``PMEVCNTR<n>_EL0`` with an
    index 0..30, ...); anything else is reported with the list of accepted spellings.
    """
