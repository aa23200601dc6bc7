"""Named groups of a regex in each string of an Arrow array, null where a group took no part.

The text grammars' fallbacks (event lines the byte scanner does not take, lost-event
markers, payload forms that are not ``key=value``) are regexes with named groups, run by
Arrow's RE2 (``extract_regex``). RE2 reports a group that took no part in a match as an empty
string; the grammars need null there (an absent TGID, flags, fraction), and an empty string
only where the group itself matched nothing (an empty comm or payload).
"""

from __future__ import annotations

import re
from functools import cache

import pyarrow as pa

from importers.arrow_compute import (
    binary_length,
    equal,
    extract_regex,
    if_else,
    invert,
    is_valid,
    or_,
)


def groups(strings: pa.Array, regex: str) -> dict[str, pa.Array]:
    """The named groups of ``regex`` (RE2) in each string, in the order of the regex: null
    where the string does not match, or the group took no part in the match (told apart
    from a group that matched nothing by whether it can match the empty string at all)."""
    found = extract_regex(strings, regex)
    unmatched = invert(is_valid(found))
    out = {}
    for i in range(found.type.num_fields):
        name, value = found.type.field(i).name, found.field(i)
        absent = unmatched
        if name not in _empty_groups(regex):
            absent = or_(absent, equal(binary_length(value), 0))
        out[name] = if_else(absent, pa.scalar(None, value.type), value)
    return out


@cache
def _empty_groups(regex: str) -> frozenset[str]:
    """Named groups of ``regex`` that can match the empty string, found with Python's ``re``
    on each group's body (the grammars use only syntax RE2 and ``re`` read alike)."""
    empty = set()
    for m in re.finditer(r"\(\?P<(\w+)>", regex):
        depth, i, in_class = 1, m.end(), False
        while depth:  # to the parenthesis that closes the group
            c = regex[i]
            i += 2 if c == "\\" else 1
            if c == "\\":
                continue
            if in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = True
            elif c in "()":
                depth += 1 if c == "(" else -1
        if re.fullmatch(regex[m.end() : i - 1], ""):
            empty.add(m.group(1))
    return frozenset(empty)
