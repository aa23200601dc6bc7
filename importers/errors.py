"""The one exception hierarchy of pmu-replay.

Every error a user can cause with bad input or bad arguments is a :class:`PmuReplayError`.
Messages name the file, the offset or line, and what to do; the CLI maps each class to an exit
code in one place (``replay.cli``) and never prints a traceback for them.
"""

from __future__ import annotations


class PmuReplayError(Exception):
    """Base class of every error pmu-replay reports to users."""

    exit_code = 1


class UsageError(PmuReplayError):
    """A command-line argument or option value that cannot be used."""

    exit_code = 2


class CaptureFormatError(PmuReplayError):
    """The input does not follow its format (or is not a format we read)."""

    exit_code = 3


class MissingEventsError(PmuReplayError):
    """The capture lacks events the requested analysis needs."""

    exit_code = 4


class DroppedEventsError(PmuReplayError):
    """Events were lost or dropped and ``--strict`` forbids continuing."""

    exit_code = 5


class TopologyError(PmuReplayError):
    """The CPU -> host PMU topology is missing, inconsistent or unreadable."""

    exit_code = 6


def where(path: str, *, line: int | None = None, offset: int | None = None) -> str:
    """Render a location such as ``trace.txt:17`` or ``trace.dat@0x1f40`` for messages."""
    if line is not None:
        return f"{path}:{line}"
    if offset is not None:
        return f"{path}@{offset:#x}"
    return path
