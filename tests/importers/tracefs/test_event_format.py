"""Event format files and print-fmt evaluation (formats.md §2.1, §2.6, §3.5, §6.4 #9)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importers.errors import CaptureFormatError
from importers.tracefs.event_format import EventFormatError, parse_event_format, parse_fields
from importers.tracefs.print_fmt import CannotEvaluate, PrintFmtError, evaluate, parse_print_fmt

# sched_switch of a 3.10 arm32 kernel (exynos-hmp-2014): declared bound 32 > size 16, 4-byte
# long, old state bits with the preempt mark on 1024.
EXYNOS_SCHED_SWITCH = """name: sched_switch
ID: 68
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[32];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:4;\tsigned:1;
\tfield:char next_comm[32];\toffset:36;\tsize:16;\tsigned:0;
\tfield:pid_t next_pid;\toffset:52;\tsize:4;\tsigned:1;
\tfield:int next_prio;\toffset:56;\tsize:4;\tsigned:1;

print fmt: "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s \
next_pid=%d next_prio=%d", REC->prev_comm, REC->prev_pid, REC->prev_prio, \
REC->prev_state & (1024-1) ? __print_flags(REC->prev_state & (1024-1), "|", { 1, "S"} , \
{ 2, "D" }, { 4, "T" }, { 8, "t" }, { 16, "Z" }, { 32, "X" }, { 64, "x" }, { 128, "K" }, \
{ 256, "W" }, { 512, "P" }) : "R", REC->prev_state & 1024 ? "+" : "", REC->next_comm, \
REC->next_pid, REC->next_prio
"""

# The 5.15 spelling of the same masks as constant expressions (kvm-x86-hostguest-v7 guest).
MASK = "(((0x0000 | 0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0010 | 0x0020 | 0x0040) + 1) << 1)"
PRINT_515 = (
    f'"prev_state=%s%s", (REC->prev_state & ({MASK} - 1)) ? '
    f'__print_flags(REC->prev_state & ({MASK} - 1), "|", {{ 0x0001, "S" }}, {{ 0x0002, "D" }}, '
    f'{{ 0x0004, "T" }}, {{ 0x0008, "t" }}, {{ 0x0010, "X" }}, {{ 0x0020, "Z" }}, '
    f'{{ 0x0040, "P" }}, {{ 0x0080, "I" }}) : "R", REC->prev_state & {MASK} ? "+" : ""'
)

# RHEL-style common header with common_preempt_lazy_count, a __data_loc and a __rel_loc string,
# a pointer, duplicate field names, single-space separators and a macro array bound.
ODD_FORMAT = """name: odd_event
ID: 999
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:unsigned char common_preempt_lazy_count;\toffset:8;\tsize:1;\tsigned:0;

\tfield:char comm[TASK_COMM_LEN]; offset:12; size:16; signed:1;
\tfield:__data_loc char[] path;\toffset:28;\tsize:4;\tsigned:1;
\tfield:__rel_loc char[] name;\toffset:32;\tsize:4;\tsigned:1;
\tfield:const char * fn;\toffset:40;\tsize:8;\tsigned:0;
\tfield:int type;\toffset:48;\tsize:4;\tsigned:1;
\tfield:int type;\toffset:52;\tsize:4;\tsigned:1;
\tfield:u32 buf[];\toffset:56;\tsize:0;\tsigned:0;

print fmt: "path=%s", __get_str(path)
"""


def rec_state(fmt_text: str, value: int) -> str:
    fmt = parse_event_format(fmt_text, system="sched")
    args = [a for a in fmt.print_args if a.yields_text() and a.fields() == {"prev_state"}]
    return "".join(str(evaluate(a, {"prev_state": value})) for a in args)


def test_exynos_sched_switch_layout_trusts_size_over_declared_bound() -> None:
    fmt = parse_event_format(EXYNOS_SCHED_SWITCH, system="sched")
    assert (fmt.name, fmt.id, fmt.system) == ("sched_switch", 68, "sched")
    assert [f.name for f in fmt.common_fields] == [
        "common_type",
        "common_flags",
        "common_preempt_count",
        "common_pid",
    ]
    comm = fmt.field("prev_comm")
    assert comm is not None and (comm.offset, comm.size, comm.array_len) == (8, 16, 32)
    assert comm.is_string and not comm.is_pointer
    state = fmt.field("prev_state")
    assert state is not None and (state.offset, state.size, state.signed) == (32, 4, True)
    assert fmt.fixed_size == 60


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "R"), (1, "S"), (2, "D"), (1024, "R+"), (1 | 1024, "S+"), (2 | 256, "D|W"), (128, "K")],
)
def test_old_prev_state_table_from_the_capture(value: int, text: str) -> None:
    assert rec_state(EXYNOS_SCHED_SWITCH, value) == text


def test_leftover_bits_print_as_hex_like_the_kernel() -> None:
    _, args = parse_print_fmt('"%s", __print_flags(REC->v, "|", { 1, "A" }, { 4, "C" })')
    assert evaluate(args[0], {"v": 1 | 2 | 8}) == "A|0xa"
    assert evaluate(args[0], {"v": 0}) == ""


@pytest.mark.parametrize(
    ("value", "text"), [(0, "R"), (0x80, "I"), (0x100, "R+"), (0x1, "S"), (0x2 | 0x100, "D+")]
)
def test_constant_expression_masks_of_a_5_15_kernel(value: int, text: str) -> None:
    _, args = parse_print_fmt(PRINT_515)
    assert "".join(str(evaluate(a, {"prev_state": value})) for a in args) == text


def test_odd_format_layouts() -> None:
    fmt = parse_event_format(ODD_FORMAT, system="test")
    assert fmt.common_count == 5  # common_preempt_lazy_count shifts every event field
    comm, path, name, fn = (fmt.field(n) for n in ("comm", "path", "name", "fn"))
    assert comm is not None and comm.array_len == -1 and comm.size == 16 and comm.is_string
    assert path is not None and path.loc == "data_loc" and path.is_string
    assert name is not None and name.loc == "rel_loc"
    assert fn is not None and fn.is_pointer and not fn.is_string
    dup = fmt.field("type")
    assert dup is not None and dup.offset == 48  # duplicate names: the first one wins
    buf = fmt.field("buf")
    assert buf is not None and buf.is_array and buf.size == 0


def test_symbolic_with_unknown_value_prints_hex() -> None:
    _, args = parse_print_fmt(
        '"%s", __print_symbolic(REC->esr_ec, { (0x18), "SYS64" }, { (0x01), "WFx" })'
    )
    assert evaluate(args[0], {"esr_ec": 0x18}) == "SYS64"
    assert evaluate(args[0], {"esr_ec": 0x3F}) == "0x3f"


def test_x86_exit_reason_depends_on_isa() -> None:
    _, args = parse_print_fmt(
        '"reason %s%s%s", (REC->isa == 1) ? __print_symbolic(REC->exit_reason & 0xffff, '
        '{ 12, "HLT" }) : __print_symbolic(REC->exit_reason, { 0x078, "hlt" }), '
        '(REC->isa == 1 && REC->exit_reason & ~0xffff) ? " " : "", (REC->isa == 1) ? '
        '__print_flags(REC->exit_reason & ~0xffff, " ", { 0x80000000, "FAILED_VMENTRY" }) : ""'
    )
    text = lambda rec: "".join(str(evaluate(a, rec)) for a in args)  # noqa: E731
    assert text({"isa": 1, "exit_reason": 12}) == "HLT"
    assert text({"isa": 1, "exit_reason": 12 | 0x80000000}) == "HLT FAILED_VMENTRY"
    assert text({"isa": 2, "exit_reason": 0x78}) == "hlt"


def test_casts_and_operators() -> None:
    _, args = parse_print_fmt(
        '"%llu %d %d %d", (unsigned long long)REC->delay, (u8)(REC->x + 255), '
        "-REC->x * 3 % 4, ~0 == 0xffffffffffffffff"
    )
    assert [evaluate(a, {"delay": 7, "x": 2}) for a in args] == [7, 1, -2, 1]


def test_unsupported_constructs_raise_cannot_evaluate() -> None:
    _, args = parse_print_fmt(
        '"%s %p %s %s", __get_str(path), REC->fn, __print_flags(REC->x), __print_symbolic()'
    )
    for arg in args:
        with pytest.raises(CannotEvaluate):
            evaluate(arg, {"x": 1})


@pytest.mark.parametrize(
    "text",
    [
        "name: x\nformat:\n",  # no ID
        "ID: 3\nformat:\n",  # no name
        "name: x\nID: zz\n",  # non-numeric id
        "name: x\nID: 3\nformat:\n\tfield:int a;\toffset:x;\tsize:4;\n",  # bad offset
        "name: x\nID: 3\nformat:\n\tfield:int a;\tsize:4;\n",  # no offset
    ],
)
def test_malformed_formats_are_clean_errors(text: str) -> None:
    with pytest.raises(EventFormatError) as err:
        parse_event_format(text, where="trace.dat@0x40")
    assert isinstance(err.value, CaptureFormatError)
    assert "trace.dat@0x40" in str(err.value)


@pytest.mark.parametrize(
    "text", ['"%d", (REC->a', "REC->a", '"%d", {1, 2', '"x" @', '"%d", 08', '"%d", 019']
)
def test_malformed_print_fmts_are_clean_errors(text: str) -> None:
    with pytest.raises(PrintFmtError):
        parse_print_fmt(text)


def test_nesting_past_the_stack_is_a_clean_error() -> None:
    with pytest.raises(PrintFmtError, match="nested too deeply"):
        parse_print_fmt('"%d", ' + "(" * 5000 + "1" + ")" * 5000)
    # unary minus costs the parser one call per level and the evaluator two
    _, (arg,) = parse_print_fmt('"%s", ' + "- " * 900 + 'REC->x ? "a" : "b"')
    with pytest.raises(CannotEvaluate, match="nested too deeply"):
        evaluate(arg, {"x": 1})


def test_integer_literals_follow_c() -> None:
    _, args = parse_print_fmt('"%d %d %d %d", 010, 0, 0x1fUL, 90')
    assert [evaluate(a, {}) for a in args] == [8, 0, 31, 90]


def test_header_page_of_a_32bit_kernel() -> None:
    text = (
        "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
        "\tfield: local_t commit;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
        "\tfield: char data;\toffset:12;\tsize:4084;\tsigned:0;\n"
    )
    fields = {f.name: f for _, f in parse_fields(text.splitlines())}
    assert (fields["commit"].size, fields["data"].offset) == (4, 12)


@given(st.text(max_size=300))
def test_any_format_body_parses_or_fails_cleanly(text: str) -> None:
    """Past the header check, so the field and print-fmt parsers see the text."""
    try:
        fmt = parse_event_format("name: x\nID: 1\nformat:\n" + text)
    except EventFormatError:
        return
    with contextlib.suppress(PrintFmtError):
        fmt.print_args  # noqa: B018 - parsing is lazy


#: pieces of print-fmt C expressions, so generated texts get past the tokenizer
_PRINT_FMT_TOKENS = (
    '"%d"', '"|"', '"S"', ",", "REC->x", "REC", "->", ".", "x", "0", "07", "08", "0x1f", "1",
    "64", "(", ")", "{", "}", "[", "]", "?", ":", "&", "|", "&&", "||", "<<", ">>", "-", "+",
    "*", "/", "%", "!", "~", "==", "<", "int", "unsigned", "u8", "__print_flags",
    "__print_symbolic", "sizeof", "'a'",
)  # fmt: skip


@given(st.lists(st.sampled_from(_PRINT_FMT_TOKENS), max_size=25))
def test_any_print_fmt_parses_or_fails_cleanly(tokens: list[str]) -> None:
    """Parsing raises only PrintFmtError, evaluating only CannotEvaluate (derive_text catches
    those two and nothing else)."""
    try:
        _, args = parse_print_fmt('"%d", ' + " ".join(tokens))
    except PrintFmtError:
        return
    for arg in args:
        with contextlib.suppress(CannotEvaluate):
            evaluate(arg, {"x": 3})
