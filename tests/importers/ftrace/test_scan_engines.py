"""The two engines of the text scanner (:mod:`importers.ftrace.scan`) give identical captures.

Every shared text capture (kernel and ``trace-cmd report`` text, systrace HTML, ``perf
script`` text) and a set of hand-written corner cases are imported with every scan forced to
numpy and then to the numba kernels; tables and metadata must be equal. Property tests compare
the scanners one by one on lines built from the pieces of the context grammar, and on
arbitrary bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importers.detect import sniff
from importers.ftrace import scan_jit, scan_np
from importers.ftrace.scan import (
    find_keys,
    line_bounds,
    repeated_lines,
    string_column,
    view_column,
)
from importers.ftrace.scan import scan_event_lines as scan_lines
from importers.ftrace.scan_bytes import COMM, REPEAT_WINDOW, SATURATED, TOKEN, VALUE
from importers.ranges import ABSENT, OVERFLOW, SIGNED, UNSIGNED
from tests.conftest import SHARED_TRACES
from tests.importers.test_byte_loops import assert_arrays_equal as assert_equal
from tests.importers.test_byte_loops import assert_same, imported_by_each

TEXT_FORMATS = {"ftrace-text", "systrace-html", "systrace-zip", "perf-script"}
TEXTS = sorted(
    p.relative_to(SHARED_TRACES).as_posix()
    for p in SHARED_TRACES.glob("*/*")
    if not p.name.startswith(".") and p.suffix in {".txt", ".html", ".perf-script"}
)


@pytest.mark.parametrize("rel", TEXTS)
def test_text_engines_agree_on_shared_captures(shared_traces: Path, rel: str) -> None:
    path = shared_traces / rel
    assert sniff(path) in TEXT_FORMATS
    captures = imported_by_each(path)
    assert captures["numpy"].event_counts()  # a capture, not two empty ones
    assert_same(captures)


# Hand-written lines for what real captures rarely show: every context shape the scanner
# takes (TGID before or after the CPU, flag formats, placeholders, raw and ns clocks,
# --ts-diff), lost-events markers, malformed and unknown lines, numbers that overflow.
CORNERS = {
    "contexts": """\
# tracer: nop
#
            bash-1234  [001] d..1.   100.000001: sched_switch: prev_comm=bash prev_pid=1234 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
          <idle>-0     [002] dNh2.   100.000002: sched_wakeup: comm=kworker/2:1 pid=77 prio=120 target_cpu=002
       CPU 0/KVM-4321  (   4300) [003] .... 100.000003: kvm_entry: vcpu 0, rip 0xffffffff81000000
           <...>-555   ( -----) [000] ...1 100.000004: sched_waking: comm=<...> pid=556 prio=-1 success=1 target_cpu=000
      foo-12-bar-13    [004] (  13) .N..   100.000005: sched_migrate_task: comm=x pid=13 prio=120 orig_cpu=4 dest_cpu=5
          kvm-vcpu-0-99  [005] -0x1 100.000006: kvm_exit: TRAP: HSR_EC: 0x0018 (SYS64), PC: 0x0000ffff8000a000
            task-7     [001] d.s2 100.000007: (+12) cpu_idle: state=4294967295 cpu_id=1
            task-7     [001] 100.000008: cpu_frequency: state=1800000 cpu_id=1
            task-7     [001] d..1 100.000008: cpu_frequency: state=1800000 cpu_id=1
            task-7     [001] d..1 100.000008: cpu_frequency: state=1800000 cpu_id=1
        <1234>-1234  [002] ....   100.000009: sched_process_exit: comm=<1234> pid=1234 prio=120 group_dead=1
          a [9] b-8    [002] ....   100.000010: print: tracing_mark_write: B|8|work
            spin-9     [002] ....   100.000011: kernel_stack: <stack trace>
 => do_idle
            spin-9     [002] ....   100.000012: func <-parent
""",
    "markers": """\
cpus=4
          bash-1  [000]   200.000001: sched_switch: prev_comm=bash prev_pid=1 prev_prio=120 prev_state=R+ ==> next_comm=b next_pid=2 next_prio=120
CPU:1 [LOST 42 EVENTS]
CPU:0 [123 EVENTS DROPPED]
CPU:2 [EVENTS DROPPED]
CPU:99999 [LOST 1 EVENTS]
          bash-1  [001]   200.000002: sched_switch: prev_comm=b prev_pid=2 prev_prio=120 prev_state=D|W ==> next_comm=c next_pid=3 next_prio=120
this line is not ftrace at all
          bash-1  [001] 200.x: broken
          bash-1  [1x] 200.000003: broken
          bash-1  [001] d..1 200.000004: mystery_event: a=1 b=0x2
          bash-1  [001] d..1 200.000005: sched_switch: prev_comm=b prev_pid=99999999999999999999 prev_prio=120 prev_state=S ==> next_comm=c next_pid=3 next_prio=120
          bash-1  [001] d..1 200.000006: sched_switch: prev_comm=b prev_pid=-5 prev_prio=0x7fffffffffffffff prev_state=0x1 ==> next_comm=c next_pid=3 next_prio=120
          bash-1  [001] d..1 200.000007: kvm_handle_sys_reg: hsr=0xffffffffffffffff
          bash-1  [001] d..1 200.000008: kvm_handle_sys_reg: hsr=0x10000000000000000
          bash-1-2  [99999999999999] d..1 200.000009: sched_switch: prev_comm=x
          bash-1  [001] d..1 99999999999.000010: cpu_idle: state=1 cpu_id=1
""",
    "raw-clock": """\
          bash-1  [000] d..1 123456789: sched_wakeup: comm=a pid=2 prio=120 target_cpu=000
          bash-1  [001] d..1 123456790: sched_wakeup: comm=a pid=3 prio=120 success=1 target_cpu=001
          bash-1  [001] d..1 123456790: sched_wakeup: comm=a pid=3 prio=120 success=1 target_cpu=001
""",
    "instances": """\
cpus=2
inst: cpus=2
inst:           bash-1  [000]   300.000001: sched_wakeup: comm=a pid=2 prio=120 target_cpu=000
          bash-1  [001]   300.000002: sched_wakeup: comm=a pid=3 prio=120 target_cpu=001
""",
}


@pytest.mark.parametrize("name", sorted(CORNERS))
def test_text_engines_agree_on_corner_cases(tmp_path: Path, name: str) -> None:
    path = tmp_path / "trace.txt"
    path.write_text(CORNERS[name])
    captures = imported_by_each(path)
    assert captures["numpy"].event_counts()
    assert_same(captures)


def each(fn: object, *args: object) -> tuple[object, object]:
    """``fn(*args, compiled)`` with numpy, then with the numba kernels."""
    assert callable(fn)
    return fn(*args, False), fn(*args, True)


# each part of an event line's context in order: the first two as printed, then near misses
PARTS = [
    ["", " ", "   ", "\t"],
    ["bash", "<...>", "<12>", "<>", "CPU 0/KVM", "a-1", "a [9] b", "", "x:y", "\u00e9"],
    ["-", "--", "", "-x"],
    ["1234", "0", "007", "99999999999999", "123456789012345678901", ""],
    [" ", "  ", "", "\t"],
    ["", "( 4300) ", "(-----) ", "(12) ", "(1-2) ", "(x) ", "( 1 "],
    ["[001]", "[1]", "[]", "[1x]", "[99999999999999]", "[0001", "001"],
    ["", " ", "  "],
    ["", "( 13) ", "(---) ", "(1-2-3) ", "(12", "(0001) "],
    ["", "d..1 ", "dNh2. ", "-0x1 ", "-0X1f ", "-0y1 ", "d. ", "abcdefghi ", "d!.1 ", "-01 "],
    ["100.000001", "123456789", "1.1234567890", "1.", "9223372036.000000", "9223372035.1",
     "123456789012345678", "1234567890123456789", "0.000000001", "12"],
    [": ", ":\t", ":", " : ", ": (+12) ", ": (+) ", ": (+12 ", ":  "],
    ["sched_switch: ", "a:b: ", ": ", "", "ev:", "ev :"],
    ["", "prev_comm=a", "x", "  y  "],
    ["", "\r"],
]  # fmt: skip
event_line = st.tuples(*(st.one_of(st.sampled_from(p[:2]), st.sampled_from(p)) for p in PARTS)).map(
    "".join
)
lines_text = st.lists(event_line, min_size=1, max_size=12).map(lambda ls: "\n".join(ls) + "\n")


@settings(deadline=None, max_examples=400)
@given(st.one_of(lines_text, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_context_scan_engines_agree(text: str) -> None:
    buf = np.frombuffer(text.encode("utf-8", "surrogateescape"), np.uint8)
    starts, ends = line_bounds(buf, False)
    assert_equal(line_bounds(buf, True), (starts, ends))
    ok, fields, views = scan_lines(buf, starts, ends, False)
    theirs = scan_lines(buf, starts, ends, True)
    assert_equal(ok, theirs[0])
    # fields and views of lines that are not event lines are unspecified
    assert_equal(fields[:, ok], theirs[1][:, ok])
    assert_equal(views[:, ok], theirs[2][:, ok])


VALUES = [
    "1", "-1", "0", "-0", "007", "0x1F", "0XfF", "-0x8000000000000000", "-0x8000000000000001",
    "0xffffffffffffffff", "0x10000000000000000", "0x0000000000000000001",
    "18446744073709551615", "18446744073709551616", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "00000000000000000000000042",
    "1x", "x", "", "-", "0x", "<...>", "<12>", "a b", "S", "R+", "R:1", "\x11\x12",
    "7 tail", "7\t", "pid=1", "0x1F x",
]  # fmt: skip
KEYS = ["comm", "pid", "prio", "state", "cpu"]


@st.composite
def payloads(draw: st.DrawFn) -> str:
    """``key=value`` payloads: the keys in order, some missing or repeated, odd spacing."""
    parts = []
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=7)):
        parts.append(f"{key}={draw(st.sampled_from(VALUES))}")
    return draw(st.sampled_from([" ", "  ", " ==> ", "\t ", " \t"])).join(parts) + draw(
        st.sampled_from(["", " ", "\t"])
    )


@settings(deadline=None, max_examples=400)
@given(st.lists(payloads(), min_size=1, max_size=8), st.data())
def test_key_value_engines_agree(rows: list[str], data: st.DataObject) -> None:
    text = "\n".join(rows) + "\n"
    buf = np.frombuffer(text.encode(), np.uint8)
    starts, ends = line_bounds(buf, False)
    n = data.draw(st.integers(1, len(KEYS)))
    keys = [k.encode() + b"=" for k in KEYS[:n]]
    kinds = data.draw(st.lists(st.sampled_from([VALUE, TOKEN, COMM]), min_size=n, max_size=n))
    required = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    strings = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    view_of = np.where(strings, np.cumsum(strings) - 1, -1).astype(np.int8)
    args = (
        buf,
        starts,
        ends,
        np.frombuffer(b"".join(keys), np.uint8),
        np.cumsum([0, *(len(k) for k in keys)]).astype(np.int64),
        np.array(required),
        np.array(kinds, np.int8),
        view_of,
    )
    assert_equal(*each(find_keys, *args))


# Where each value ends and how its integer reads, for the keys comm= (COMM), pid= (VALUE),
# prio= (VALUE, optional) and state= (TOKEN, optional): the numba kernel reads each integer as
# its key is found, before the value's end is known. (payload, ok, then (string, integer) of
# each key; None: missing, or not a number)
CUTS = [
    # an integer stops at a blank: what follows up to the next key is still the value's text
    ("comm=a pid=7 tail prio=3", True, ("a", None), ("7 tail", 7), ("3", 3), (None, None)),
    ("comm=a pid=7x prio=3", True, ("a", None), ("7x", None), ("3", 3), (None, None)),
    ("comm=a pid=-0x1f\t\t prio=3\t", True, ("a", None), ("-0x1f", -31), ("3", 3), (None, None)),
    # a key needs a space before it: a tab, or the value's own start, makes it value text
    ("comm=a pid=3 \tprio=4", True, ("a", None), ("3 \tprio=4", 3), (None, None), (None, None)),
    ("comm=pid=1 pid=2", True, ("pid=1", None), ("2", 2), (None, None), (None, None)),
    ("comm=1 2 pid=0x", True, ("1 2", 1), ("0x", None), (None, None), (None, None)),
    # empty values, a TOKEN's end, a placeholder comm whose integer is still read
    ("comm= pid= state=S ==> x", True, ("", None), ("", None), (None, None), ("S", None)),
    ("comm=<12> pid=5 state=1\tprio=2", True, (None, None), ("5", 5), (None, None), ("1", 1)),
    ("comm=a prio=1", False, (None, None), (None, None), (None, None), (None, None)),
]  # fmt: skip


def test_values_end_before_the_next_key_found() -> None:
    text = "".join(row + "\n" for row, *_ in CUTS)
    data = text.encode()
    buf = np.frombuffer(data, np.uint8)
    starts, ends = line_bounds(buf, False)
    keys = [b"comm=", b"pid=", b"prio=", b"state="]
    args = (
        np.frombuffer(b"".join(keys), np.uint8),
        np.cumsum([0, *(len(k) for k in keys)]).astype(np.int64),
        np.array([True, True, False, False]),
        np.array([COMM, VALUE, VALUE, TOKEN], np.int8),
        np.array([0, 1, 2, 3], np.int8),
    )
    for compiled in (False, True):
        ok, vs, ints, how, views = find_keys(buf, starts, ends, *args, compiled)
        assert ok.tolist() == [row_ok for _, row_ok, *_ in CUTS]
        for k in range(len(keys)):
            strings = view_column(data, views[k], vs[k] >= 0).to_pylist()
            numbers = [
                int(v) if h == SIGNED else None for v, h in zip(ints[k], how[k], strict=True)
            ]
            expected = [cuts[k] for _, _, *cuts in CUTS]
            assert list(zip(strings, numbers, strict=True)) == expected, keys[k]


def test_payload_end_bounds_the_integer() -> None:
    """Digits stop at the payload's end even where the line goes on (the kernel reads each
    integer before its value's end is known, bounded by the payload's)."""
    buf = np.frombuffer(b"v=1234 v=56\n", np.uint8)
    starts, ends = np.array([0, 7], np.int64), np.array([4, 10], np.int64)
    one = (np.frombuffer(b"v=", np.uint8), np.array([0, 2], np.int64), np.array([True]))
    for compiled in (False, True):
        ok, _, ints, how, _ = find_keys(
            buf, starts, ends, *one, np.array([VALUE], np.int8), np.array([-1], np.int8), compiled
        )
        assert ok.all()
        assert how[0].tolist() == [SIGNED, SIGNED]
        assert ints[0].tolist() == [12, 5]


def test_key_values_read_as_the_kernel_prints_them() -> None:
    """The integer rules on their own: hex and decimal, the sign, the u64 range."""
    text = (
        "v=0x1F\nv=-5\nv=18446744073709551615\nv=18446744073709551616\nv=-9223372036854775808\n"
        "v=-9223372036854775809\nv=0x10000000000000000\nv=12x\nv=7 tail\n"
    )
    buf = np.frombuffer(text.encode(), np.uint8)
    starts, ends = line_bounds(buf, False)
    one = (np.frombuffer(b"v=", np.uint8), np.array([0, 2], np.int64), np.array([True]))
    for compiled in (False, True):
        ok, _, ints, how, _ = find_keys(
            buf, starts, ends, *one, np.array([VALUE], np.int8), np.array([-1], np.int8), compiled
        )
        assert ok.all()
        assert how[0].tolist() == [
            SIGNED, SIGNED, UNSIGNED, OVERFLOW, SIGNED, OVERFLOW, OVERFLOW, ABSENT, SIGNED
        ]  # fmt: skip
        assert ints[0].tolist() == [31, -5, -1, 0, -(2**63), 0, 0, 0, 7]


@settings(deadline=None, max_examples=300)
@given(
    st.lists(st.sampled_from(["a", "b", "ab", "", "aa"]), min_size=1, max_size=90),
    st.lists(st.integers(0, 2), min_size=90, max_size=90),
)
def test_repeated_lines_engines_agree(lines: list[str], times: list[int]) -> None:
    buf = np.frombuffer(("\n".join(lines) + "\n").encode(), np.uint8)
    starts, ends = line_bounds(buf, False)
    ts = np.sort(np.array(times[: starts.size], np.int64))
    assert_equal(*each(repeated_lines, buf, starts, ends, ts))


def test_lines_end_before_one_carriage_return() -> None:
    """A line of a lone ``\\r`` is empty; only the ``\\r`` right before ``\\n`` goes."""
    text = b"\r\n\n\r\r\nab\r\n\rx\na\rb\n"
    bounds, pos = [], 0
    for line in text.split(b"\n")[:-1]:
        width = len(line) - line.endswith(b"\r")
        bounds.append((pos, pos + width))
        pos += len(line) + 1
    buf = np.frombuffer(text, np.uint8)
    for compiled in (False, True):
        starts, ends = line_bounds(buf, compiled)
        assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == bounds


def test_repeats_are_looked_for_within_the_window() -> None:
    """One timestamp for many lines: a line REPEAT_WINDOW lines after its twin is a repeat,
    one more line apart it is not (counted as an event of its own)."""
    lines = [f"line {i}" for i in range(REPEAT_WINDOW + 8)]
    lines[REPEAT_WINDOW] = lines[0]  # REPEAT_WINDOW lines apart
    lines[REPEAT_WINDOW + 6] = lines[5]  # one line too far
    buf = np.frombuffer(("\n".join(lines) + "\n").encode(), np.uint8)
    starts, ends = line_bounds(buf, False)
    ts = np.zeros(starts.size, np.int64)
    window = [
        any(lines[j] == line for j in range(max(0, i - REPEAT_WINDOW), i))
        for i, line in enumerate(lines)
    ]
    assert window.count(True) == 1
    for compiled in (False, True):
        assert repeated_lines(buf, starts, ends, ts, compiled).tolist() == window


def test_context_numbers_saturate_as_the_kernel_does() -> None:
    """A pid takes a digit while it is below SATURATED (``_digit``), so 14 digits may
    still read exactly; leading zeros add nothing."""
    pids = ["1099511627775", "10000000000000", "99999999999999", "0000000000000000042"]
    text = "".join(f"  bash-{pid}  [001] d..1 1.000001: ev: x\n" for pid in pids)
    buf = np.frombuffer(text.encode(), np.uint8)
    starts, ends = line_bounds(buf, False)
    expected = []
    for pid in pids:
        v = 0
        for c in pid:
            v = v * 10 + int(c) if v < SATURATED else SATURATED
        expected.append(v)
    assert expected[1] == 10**13 and expected[2] == SATURATED
    for compiled in (False, True):
        ok, fields, _ = scan_lines(buf, starts, ends, compiled)
        assert ok.all()
        assert fields[2].tolist() == expected


def test_token_values_run_to_the_next_blank() -> None:
    """A TOKEN value ends at a space or tab, not at a colon (``prev_state=R:1 ==> ...``)."""
    text = b"state=R:1 ==> next=2\nstate=S\t next=3\n"
    buf = np.frombuffer(text, np.uint8)
    starts, ends = line_bounds(buf, False)
    keys = (np.frombuffer(b"state=next=", np.uint8), np.array([0, 6, 11], np.int64))
    for compiled in (False, True):
        ok, vs, ints, _, views = find_keys(
            buf, starts, ends, *keys, np.array([True, True]), np.array([TOKEN, VALUE], np.int8),
            np.array([0, -1], np.int8), compiled,
        )  # fmt: skip
        assert ok.all()
        assert vs[0].tolist() == [6, text.index(b"\n") + 1 + 6]
        assert views[0, :, 0].tolist() == [3, 1]  # the string_view lengths: "R:1", "S"
        assert bytes(views[0, 0, 4:7]) == b"R:1"
        assert ints[1].tolist() == [2, 3]


@settings(deadline=None, max_examples=200)
@given(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.lists(st.tuples(st.integers(-1, 40), st.integers(0, 20)), max_size=12),
)
def test_string_columns_engines_agree(text: str, ranges: list[tuple[int, int]]) -> None:
    """Strings of up to 12 bytes inline, longer ones by offset, nulls, ranges ending at the
    chunk's end: the same string_view structs from both engines, and the text they cut."""
    data = text.encode()
    starts = np.array([min(a, len(data)) for a, _ in ranges], np.int64)
    ends = np.array([min(max(a, 0) + w, len(data)) for a, w in ranges], np.int64)
    expected = [data[a:e].decode() if a >= 0 else None for a, e in zip(starts, ends, strict=True)]
    buf = np.frombuffer(data, np.uint8)
    assert_equal(scan_np.views(buf, starts, ends), scan_jit.views(buf, starts, ends))
    for compiled in (False, True):
        assert string_column(data, starts, ends, compiled).to_pylist() == expected
