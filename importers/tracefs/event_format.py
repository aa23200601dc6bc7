"""Parser of ftrace event ``format`` files, independent of any container format.

A format file (``/sys/kernel/tracing/events/<system>/<event>/format``, also embedded in
trace-cmd ``trace.dat`` files and in perf.data tracing data) gives an event's id, its field
layout and its ``print fmt``. Every binary record is decoded from its own format, never from
hard-coded offsets (RHEL kernels add ``common_preempt_lazy_count``; 32-bit kernels shrink
``long`` fields; ``formats.md`` §2, §3.5).

Public API
----------
* :func:`parse_event_format` -> :class:`EventFormat` (id, name, system, :class:`FormatField`
  layout, parsed print fmt).
* :func:`parse_fields` for the field list alone (``header_page`` uses the same syntax).
* :class:`EventFormat.print_args` are expression trees (:mod:`importers.tracefs.print_fmt`) that
  :func:`importers.tracefs.print_fmt.evaluate` evaluates for given field values, which is how
  ``__print_flags`` / ``__print_symbolic`` tables of the capture decode ``prev_state`` or
  ``kvm_exit`` reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from importers.errors import CaptureFormatError
from importers.tracefs.print_fmt import Expr, parse_print_fmt


class EventFormatError(CaptureFormatError):
    """A format file (or header_page / header_event text) that does not parse."""


# "field:<decl>;" then "offset:N;", "size:N;", optional "signed:N;" — separated by tabs or
# single spaces depending on the kernel (formats.md §3.5), so tokenise on ';' and ':'.
_ARRAY = re.compile(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_]\w*)\s*\[(?P<len>[^\]]*)\]$")
_SCALAR = re.compile(r"^(?P<type>.*?)(?P<name>[A-Za-z_]\w*)$")


@dataclass(frozen=True)
class FormatField:
    """One field of an event record, as the format file declares it.

    ``offset`` and ``size`` are in bytes from the start of the record (common header included).
    ``array_len`` is the declared element count of a fixed array (``None`` for scalars, ``-1``
    for dynamic arrays ``T name[]`` and for bounds given as a macro such as ``TASK_COMM_LEN``);
    decoders must trust ``size``, which can be smaller than the declared bound
    (``char prev_comm[32]; size:16`` on a 3.10 kernel). ``loc`` is ``"data_loc"`` or
    ``"rel_loc"`` for dynamic fields whose 4-byte value is ``len << 16 | offset``.
    """

    name: str
    type: str
    offset: int
    size: int
    signed: bool
    array_len: int | None = None
    loc: str | None = None

    @property
    def is_array(self) -> bool:
        return self.array_len is not None or self.loc is not None

    @property
    def is_string(self) -> bool:
        """``char`` arrays and ``__data_loc char[]`` strings (NUL-terminated text)."""
        base = self.type.replace("unsigned", "").replace("signed", "").split()
        return self.is_array and base[-1:] == ["char"]

    @property
    def is_pointer(self) -> bool:
        """Kernel pointers (``const char *name``, ``void *fn``): opaque addresses."""
        return "*" in self.type and not self.is_array


@dataclass(frozen=True)
class EventFormat:
    """An event's id, name, system, field layout and print fmt."""

    name: str
    id: int
    system: str
    fields: tuple[FormatField, ...]
    common_count: int
    print_fmt: str = ""

    @cached_property
    def by_name(self) -> dict[str, FormatField]:
        # Duplicate field names have shipped (regmap regcache_sync); keep the first one.
        out: dict[str, FormatField] = {}
        for f in self.fields:
            out.setdefault(f.name, f)
        return out

    @property
    def common_fields(self) -> tuple[FormatField, ...]:
        return self.fields[: self.common_count]

    @cached_property
    def print_args(self) -> tuple[Expr, ...]:
        """The print-fmt arguments as expression trees (parsed on first use)."""
        return tuple(parse_print_fmt(self.print_fmt)[1]) if self.print_fmt else ()

    @property
    def fixed_size(self) -> int:
        """End of the last fixed field: the smallest valid record length."""
        return max((f.offset + f.size for f in self.fields), default=0)

    def field(self, name: str) -> FormatField | None:
        """The first field called ``name``, or ``None``."""
        return self.by_name.get(name)


def parse_fields(lines: list[str], *, where: str = "format") -> list[tuple[int, FormatField]]:
    """Parse ``field:`` lines; return ``(line index, field)`` pairs.

    Lines that are not ``field:`` lines are ignored, so the caller can pass a whole file.
    Raises :class:`EventFormatError` naming ``where`` and the line when a field line is
    malformed (missing offset/size, non-numeric values).
    """
    out: list[tuple[int, FormatField]] = []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line.startswith("field"):
            continue
        attrs: dict[str, str] = {}
        for part in line.split(";"):
            key, sep, value = part.partition(":")
            if sep:
                attrs.setdefault(key.strip(), value.strip())
        decl = attrs.get("field") or attrs.get("field special")
        try:
            offset = int(attrs["offset"], 0)
            size = int(attrs["size"], 0)
            signed = int(attrs.get("signed", "0"), 0) != 0
        except (KeyError, ValueError):
            raise EventFormatError(
                f"{where}: line {i + 1}: malformed field line {line[:120]!r} "
                "(expected field:...; offset:N; size:N; signed:N;)"
            ) from None
        if not decl or offset < 0 or size < 0:
            raise EventFormatError(f"{where}: line {i + 1}: malformed field line {line[:120]!r}")
        out.append((i, _declaration(decl, offset, size, signed)))
    return out


def _declaration(decl: str, offset: int, size: int, signed: bool) -> FormatField:
    loc: str | None = None
    for prefix, kind in (("__data_loc ", "data_loc"), ("__rel_loc ", "rel_loc")):
        if decl.startswith(prefix):
            decl, loc = decl[len(prefix) :].strip(), kind
    array = _ARRAY.match(decl)
    if array and loc is None:
        bound = array["len"].strip()
        n = int(bound, 0) if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", bound) else -1
        return FormatField(array["name"], array["type"].strip(), offset, size, signed, n)
    if loc is not None:
        # "__data_loc char[] name": the brackets follow the type, the name comes last.
        m = re.match(r"^(?P<type>.*?)\s*(?:\[\s*\])?\s*(?P<name>[A-Za-z_]\w*)$", decl)
        if m:
            return FormatField(m["name"], m["type"].strip(), offset, size, signed, -1, loc)
    scalar = _SCALAR.match(decl)
    if not scalar:
        raise EventFormatError(f"cannot parse field declaration {decl!r}")
    return FormatField(scalar["name"], scalar["type"].strip(), offset, size, signed)


def parse_event_format(text: str, *, system: str = "", where: str = "format") -> EventFormat:
    """Parse one event ``format`` file.

    Parameters
    ----------
    text
        The file content (``name:``, ``ID:``, ``format:`` with ``field:`` lines, ``print fmt:``).
    system
        The event system (``sched``, ``kvm``, ``ftrace``); format files do not name it.
    where
        How to name the source in error messages (file and offset).

    Returns
    -------
    EventFormat

    Raises
    ------
    EventFormatError
        When the name, the id or a field line is missing or malformed.
    """
    lines = text.splitlines()
    name: str | None = None
    event_id: int | None = None
    print_fmt = ""
    for i, line in enumerate(lines):
        if line.startswith("print fmt:"):
            # A format string with a literal newline continues on the following lines.
            print_fmt = "\n".join([line[len("print fmt:") :], *lines[i + 1 :]]).strip()
            break
        if line.startswith("name:"):
            name = line[5:].strip()
        elif line.startswith("ID:"):
            try:
                event_id = int(line[3:].strip(), 0)
            except ValueError:
                raise EventFormatError(f"{where}: non-numeric ID line {line!r}") from None
    if not name or event_id is None:
        raise EventFormatError(
            f"{where}: not an event format (missing 'name:' or 'ID:' line); "
            f"starts with {text[:60]!r}"
        )
    where_ev = f"{where} (event {system}:{name})"
    parsed = parse_fields(lines, where=where_ev)
    # The common fields end at the first blank line after "format:" (events.rst §4); fall back
    # to the "common_" name prefix when a writer dropped the blank line.
    fmt_line = next((i for i, ln in enumerate(lines) if ln.strip() == "format:"), -1)
    blank = next(
        (i for i in range(fmt_line + 1, len(lines)) if not lines[i].strip()),
        len(lines),
    )
    common = sum(1 for i, _ in parsed if i < blank)
    if common == 0 or common == len(parsed):
        common = sum(1 for _, f in parsed if f.name.startswith("common_"))
    return EventFormat(
        name=name,
        id=event_id,
        system=system,
        fields=tuple(f for _, f in parsed),
        common_count=common,
        print_fmt=print_fmt,
    )
