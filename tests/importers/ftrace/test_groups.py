"""importers.ftrace.groups: RE2's named groups over Arrow, held to Python's ``re``.

Python's ``re`` reports a group that took no part in a match as None and one that matched
nothing as ``""``, which is what the grammars need; RE2 reports ``""`` for both, and
:func:`groups` must tell them apart. Every regex of the text grammars is run over lines and
payloads in the shapes they take (and some they do not), and compared group by group.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importers.ftrace.groups import groups
from importers.ftrace.lines import _DROPPED, _LOST, EVENT_LINE, LATENCY_LINE
from importers.ftrace.payloads import GRAMMARS, Pattern

PATTERNS = {g.regex for grammars in GRAMMARS.values() for g in grammars if isinstance(g, Pattern)}
REGEXES = [EVENT_LINE, LATENCY_LINE, _LOST, _DROPPED, *sorted(PATTERNS)]
SAMPLES = [
    "            bash-1234  [001] d..1.   100.000001: sched_switch: prev_comm=bash",
    "-4 [1] 3: x",  # an empty comm: a group that matched nothing
    "   <idle>-0     (-------) [002] 5:",  # no fraction, a TGID of dashes
    "  foo-12 ( 7) [003] .... 99.5: ev: args",
    "<idle>-0       0d.h1. 106467.859747: function: foo <-bar",
    "<idle>-0       0 106467.859747: function:",  # latency line without flags
    "CPU:1 [LOST 42 EVENTS]",
    "CPU:2 [EVENTS DROPPED]",
    "CPU:0 [123 EVENTS DROPPED]",
    "prev:1 [120] S ==> next:2 [120]",
    ":1 [120] S ==> :2 [-1]",  # empty comms
    "kworker/2:1:77 [120] success=1 CPU:002",
    "kworker:77 [120] CPU:002",
    "x PC: 0x0000ffff8000a000",
    "vcpu 0, rip 0xffffffff81000000",
    "TRAP: HSR_EC: 0x0016 (HVC64), PC: 0xffff800010000000",
    ">IRQ: HSR_EC: 0x0000 (), PC: 0x1",  # an empty EC name
    "reason EXTERNAL_INTERRUPT rip 0xffffffff81000000",
    "vcpu 1 reason HLT (12) rip 0x1f",
    "reason restart (-4)",
    "wait time 1234 ns, polling valid",
    "PC: 0xffff800010000000 PMCR_EL0 (3, 3, 9, 12, 0) write",
    "HSR 0x93c08c03",
    "",
    "not a line at all",
]


def by_python(regex: str, text: str) -> dict[str, str | None]:
    match = re.search(regex, text)
    names = re.compile(regex).groupindex
    return match.groupdict() if match else dict.fromkeys(names)


def assert_like_python(regex: str, texts: list[str]) -> None:
    got = {name: column.to_pylist() for name, column in groups(pa.array(texts), regex).items()}
    assert list(got) == list(re.compile(regex).groupindex)  # the regex's order
    for i, text in enumerate(texts):
        assert {name: values[i] for name, values in got.items()} == by_python(regex, text), text


@pytest.mark.parametrize("regex", REGEXES)
def test_groups_as_python_reads_them(regex: str) -> None:
    assert_like_python(regex, SAMPLES)


PIECES = st.sampled_from(
    [
        " ",
        "-",
        "12",
        "[001]",
        "(",
        ")",
        "( 7)",
        "d..1.",
        "100.000001",
        ":",
        "x",
        "<...>",
        "0x1f",
        "CPU:",
        "LOST",
        "EVENTS",
        "]",
        "[",
        "==>",
        "PC: 0x",
        "reason",
        "rip",
        "HSR",
        "ns,",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(PIECES, max_size=12).map("".join), min_size=1, max_size=20))
def test_groups_as_python_reads_them_on_jumbled_pieces(texts: list[str]) -> None:
    for regex in REGEXES:
        assert_like_python(regex, texts)
