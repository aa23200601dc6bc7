"""Counted, reported skips: what an importer could not use, and where.

Importers never drop input silently. Anything they cannot decode (a malformed line, a damaged
page, an event with an unparseable payload) is recorded here under a short reason, with a count
and the locations of the first few occurrences, and ends up in the capture metadata and in the
import summary. With ``strict=True`` the first skip raises instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from importers.errors import CaptureFormatError

FIRST_LOCATIONS = 5


@dataclass
class SkipRecord:
    """How often one reason occurred and where it first did."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"count": self.count, "first": list(self.first)}


@dataclass
class SkipLog:
    """Skips of one import, keyed by reason.

    Parameters
    ----------
    path
        The input file, used in messages.
    strict
        When true, :meth:`add` raises :class:`CaptureFormatError` instead of counting.
    """

    path: str
    strict: bool = False
    reasons: dict[str, SkipRecord] = field(default_factory=dict)

    def add(self, reason: str, locations: list[str], count: int | None = None) -> None:
        """Record ``count`` (default: ``len(locations)``) skips of ``reason``.

        ``locations`` are rendered positions (``"line 17"``, ``"offset 0x1f40"``); only the
        first few are kept.
        """
        n = len(locations) if count is None else count
        if n == 0:
            return
        if self.strict:
            at = locations[0] if locations else "unknown position"
            raise CaptureFormatError(
                f"{self.path}: {reason} at {at} ({n} in all); "
                "drop --strict to skip and count such input instead"
            )
        record = self.reasons.setdefault(reason, SkipRecord())
        record.count += n
        room = FIRST_LOCATIONS - len(record.first)
        if room > 0:
            record.first.extend(locations[:room])

    def to_json(self) -> dict[str, dict[str, object]]:
        return {reason: rec.to_json() for reason, rec in sorted(self.reasons.items())}
