"""The two engines of the byte loops (``importers.byte_loops``) give identical captures.

Every shared capture whose importer has byte loops is imported twice, once with every loop
forced to numpy and once with every loop forced to the numba kernels, whatever its size, and
every table and the metadata must be equal. Property tests do the same for the loops one by
one on arbitrary bytes (damaged pages included). A small import must not load numba at all.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importers import byte_loops
from importers.capture import Capture
from importers.detect import load
from importers.perf.records import walk
from importers.perf.samples import gather_words
from importers.tracedat.pages import PageLayout, walk_pages
from importers.tracefs import fields
from tests.conftest import ROOT, SHARED_TRACES
from tests.importers.tracedat.builder import Capture as Synthetic
from tests.importers.tracedat.builder import Layout, write_v6, write_v7
from tests.importers.tracedat.test_synthetic import VARIANTS, build

ENGINES = ("numpy", "numba")
T = TypeVar("T")
TRACE_DATS = sorted(p.relative_to(SHARED_TRACES).as_posix() for p in SHARED_TRACES.glob("*/*.dat"))
PERF_DATAS = sorted(
    p.relative_to(SHARED_TRACES).as_posix()
    for p in [*SHARED_TRACES.glob("quipper-perfdata/perf.data.*"), *SHARED_TRACES.glob("*/*.data")]
)


@contextmanager
def engine(name: str) -> Iterator[None]:
    """Every byte loop on ``name``'s side of the threshold, whatever its size."""
    with pytest.MonkeyPatch.context() as patch:
        for limit in ("SMALL_INPUT_BYTES", "SMALL_TEXT_BYTES", "SMALL_PERFETTO_BYTES"):
            patch.setattr(byte_loops, limit, (1 << 62) if name == "numpy" else -1)
        yield


def imported_by_each(path: Path) -> dict[str, Capture]:
    captures = {}
    for name in ENGINES:
        with engine(name):
            captures[name] = load(path)
    return captures


def assert_same(captures: dict[str, Capture]) -> None:
    ours, theirs = captures["numpy"], captures["numba"]
    assert ours.metadata == theirs.metadata
    assert ours.tables.keys() == theirs.tables.keys()
    for name, table in ours.tables.items():
        assert table.equals(theirs.tables[name], check_metadata=True), name


@pytest.mark.parametrize("rel", TRACE_DATS)
def test_trace_dat_engines_agree_on_shared_captures(shared_traces: Path, rel: str) -> None:
    captures = imported_by_each(shared_traces / rel)
    assert captures["numpy"].event_counts()  # a capture, not two empty ones
    assert_same(captures)


@pytest.mark.parametrize("rel", PERF_DATAS)
def test_perf_data_engines_agree_on_shared_captures(shared_traces: Path, rel: str) -> None:
    captures = imported_by_each(shared_traces / rel)
    assert captures["numpy"].event_counts()
    assert_same(captures)


@pytest.mark.parametrize(("big", "klong", "kind"), VARIANTS)
def test_trace_dat_engines_agree_on_every_record_type(
    tmp_path: Path, big: bool, klong: int, kind: str
) -> None:
    c = build(Layout(big=big, kernel_long=klong))
    path = tmp_path / "t.dat"
    path.write_bytes(write_v6(c) if kind == "v6" else write_v7(c, kind.split("-")[1]))
    assert_same(imported_by_each(path))


def test_trace_dat_engines_agree_on_damaged_pages(tmp_path: Path) -> None:
    lo = Layout()
    good = lo.page(100, lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)))
    past_end = lo.page(200, lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)), commit=5000)
    past_commit = lo.page(300, lo.data(1, lo.switch(1, "a", 1, 0, "b", 2)), commit=40)
    c = Synthetic(layout=lo, cpus=1, data={"": {0: good + past_end + past_commit + good}})
    path = tmp_path / "damaged.dat"
    path.write_bytes(write_v6(c))
    captures = imported_by_each(path)
    assert len(captures["numpy"].metadata.skipped) == 2
    assert_same(captures)


def each_engine(fn: Callable[..., T], *args: object) -> tuple[T, T]:
    """``fn(*args)`` with the numpy loops, then with the numba kernels."""
    out = {}
    for name in ENGINES:
        with engine(name):
            out[name] = fn(*args)
    return out["numpy"], out["numba"]


def assert_arrays_equal(ours: object, theirs: object) -> None:
    if isinstance(ours, tuple):
        assert isinstance(theirs, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_arrays_equal(a, b)
        return
    a, b = np.asarray(ours), np.asarray(theirs)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b)


PAGE = 256


@st.composite
def pages(draw: st.DrawFn) -> tuple[bytes, PageLayout, int]:
    """A few pages of arbitrary bytes behind plausible headers: commits that fit or overrun,
    missed-events flags with and without a stored count, records of every type_len."""
    big, commit_size = draw(st.booleans()), draw(st.sampled_from([4, 8]))
    layout = PageLayout(PAGE, 8, commit_size, 8 + commit_size, big)
    order = ">" if big else "<"
    blob = bytearray()
    for _ in range(draw(st.integers(1, 4))):
        body = draw(st.binary(min_size=0, max_size=PAGE - layout.data_offset))
        commit = draw(st.integers(0, PAGE)) | draw(st.sampled_from([0, 1 << 31, 3 << 30]))
        head = np.array([draw(st.integers(0, 1 << 40))], f"{order}u8").tobytes()
        head += np.array([commit], f"{order}u{commit_size}").tobytes()
        blob += (head + body).ljust(PAGE, b"\0")
    cut = draw(st.integers(0, 40))  # the last page may be cut short
    return bytes(blob[: len(blob) - cut]), layout, len(blob) // PAGE


@settings(deadline=None)  # the first example compiles the kernels of a fresh checkout
@given(pages())
def test_page_walk_engines_agree(case: tuple[bytes, PageLayout, int]) -> None:
    raw, layout, n = case
    data = np.frombuffer(raw, np.uint8)
    starts = np.arange(n, dtype=np.int64) * PAGE
    ends = np.minimum(starts + PAGE, len(raw))
    ours, theirs = each_engine(walk_pages, data, starts, ends, layout)
    assert_arrays_equal((*ours[0].arrays(), *ours[1:]), (*theirs[0].arrays(), *theirs[1:]))


@settings(deadline=None)
@given(
    st.binary(min_size=8, max_size=200),
    st.lists(st.integers(-8, 210), max_size=10),
    st.integers(0, 9),
    st.sampled_from([1, 2, 4, 8]),
    st.booleans(),
    st.sampled_from([1, 3, 1 << 20]),
)
def test_gathers_agree(
    raw: bytes, offsets: list[int], start: int, size: int, big: bool, block: int
) -> None:
    data = np.frombuffer(raw, np.uint8)
    at = np.array(offsets, np.int64)
    for fn, args in (
        (fields.gather_matrix, (data, at, start, size + 3)),
        (fields.gather_uint, (data, at, start, size, big)),
    ):
        assert_arrays_equal(*each_engine(fn, *args))
    inside = at[(at >= 0) & (at + size <= len(raw))]
    lengths = inside % (size + 1)  # 0 to size bytes, all inside
    with pytest.MonkeyPatch.context() as patch:  # numpy's gather_bytes, block by block
        patch.setattr(fields, "_BLOCK", block)
        assert_arrays_equal(*each_engine(fields.gather_bytes, data, inside, lengths))
        assert_arrays_equal(*each_engine(fields._cstr_lengths, data, inside, lengths))


@st.composite
def record_streams(draw: st.DrawFn) -> tuple[bytes, bool]:
    """perf records of a few sizes in runs, with TRACING_DATA and AUXTRACE records whose data
    follows them, and arbitrary bytes (damage) mixed in."""
    big = draw(st.booleans())
    e = ">" if big else "<"
    out = bytearray()
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["run", "tracing", "aux", "junk"]))
        if kind == "run":
            size = draw(st.sampled_from([8, 16, 24, 40]))
            head = np.array([9, (size << 16) if not big else size], f"{e}u4")
            out += (head.tobytes() + bytes(size - 8)) * draw(st.integers(1, 70))
        elif kind == "tracing":
            blob = draw(st.integers(0, 40))
            out += np.array([66, 16 << 16 if not big else 16, blob, 0], f"{e}u4").tobytes()
            out += bytes((blob + 7) // 8 * 8)
        elif kind == "aux":
            size = draw(st.integers(0, 24))
            out += np.array([71, 16 << 16 if not big else 16], f"{e}u4").tobytes()
            out += np.array([size], f"{e}u8").tobytes() + bytes(size)
        else:
            out += draw(st.binary(max_size=24))
    return bytes(out), big


@settings(deadline=None)
@given(record_streams(), st.integers(0, 20))
def test_record_walk_engines_agree(case: tuple[bytes, bool], start: int) -> None:
    raw, big = case
    data = np.frombuffer(raw, np.uint8)
    start = min(start, len(raw))
    ours, theirs = each_engine(walk, data, start, len(raw), big)
    fields = ("offset", "type", "misc", "size", "inflated")
    assert_arrays_equal(
        (*(getattr(ours[0], f) for f in fields), *ours[1:]),
        (*(getattr(theirs[0], f) for f in fields), *theirs[1:]),
    )


@settings(deadline=None)
@given(
    st.binary(min_size=8, max_size=200), st.lists(st.integers(-8, 210), max_size=10), st.booleans()
)
def test_gather_words_engines_agree(raw: bytes, bases: list[int], big: bool) -> None:
    data = np.frombuffer(raw, np.uint8)
    at, width = np.array([0, 4, 8, 13], np.int64), np.array([4, 8, 4, 8], np.int64)
    args = (data, np.array(bases, np.int64), at, width, big)
    assert_arrays_equal(*each_engine(gather_words, *args))


SMALL_IMPORT = """
import sys
from replay.cli import main
assert main(["import", *sys.argv[1:]]) == 0
heavy = sorted({"numba", "llvmlite", "polars", "scipy"} & {m.split(".")[0] for m in sys.modules})
print(" ".join(heavy), file=sys.stderr)
"""


def heavy_modules_of_imports(capture: Path, tmp_path: Path) -> dict[bool, list[str]]:
    """The heavy libraries that ``pmu-replay import capture`` loads, in a fresh interpreter,
    with ``--json`` (True) and without (False: a capture without VMs then gets the stand-in
    advice of :mod:`replay.standins`); each import's tables are the library's own."""
    loaded = {}
    for options in (["--json"], []):
        out = tmp_path / f"out{len(options)}"
        done = subprocess.run(
            [sys.executable, "-c", SMALL_IMPORT, str(capture), "-o", str(out), *options],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            check=True,
        )
        loaded[bool(options)] = done.stderr.split()
        assert Capture.load(out).event_counts() == load(capture).event_counts()
        if not options:
            assert "no VMs" in done.stdout or "none found" in done.stdout
    return loaded


@pytest.mark.parametrize(
    "rel", ["juno-sched-load/trace.dat", "quipper-perfdata/perf.data.armv7-3.4"]
)
def test_small_binary_import_loads_neither_numba_nor_polars(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    """A typical capture's import is start-up bound: no JIT, no cache load, no polars.

    Without ``--json``, a capture in which no VM is found also gets the threads that could
    stand in for vCPUs (:mod:`replay.standins`, NumPy over Arrow): still no polars.
    """
    capture = shared_traces / rel
    assert capture.stat().st_size <= byte_loops.SMALL_INPUT_BYTES
    assert heavy_modules_of_imports(capture, tmp_path) == {True: [], False: []}


@pytest.mark.parametrize(
    "rel", ["juno-trace-txt/trace.txt", "trappy-surfaceflinger/trace_systrace.html"]
)
def test_small_text_import_loads_neither_numba_nor_polars(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    """Small text and systrace captures are scanned in numpy (no JIT, no cache load), and the
    text importer's tables are built in Arrow and numpy (no polars), with or without the
    stand-in advice."""
    capture = shared_traces / rel
    assert capture.stat().st_size <= byte_loops.SMALL_TEXT_BYTES
    assert heavy_modules_of_imports(capture, tmp_path) == {True: [], False: []}


@pytest.mark.parametrize(
    "rel",
    [
        "perfetto-galaxy-j5/trace_file.perfetto-trace",  # plain events
        "perfetto-pixel6a-startup/api32_startup_warm.perfetto-trace",  # compact_sched
        "perfetto-pixel7-app/trace.perfetto-trace",  # prints only
    ],
)
def test_small_perfetto_import_loads_neither_numba_nor_polars(
    shared_traces: Path, tmp_path: Path, rel: str
) -> None:
    """A small Perfetto trace's loops run as the numpy twins of its kernels
    (:mod:`importers.perfetto.kernels_np`): no JIT, no cache load; its tables are built in
    numpy and Arrow (polars alone took ~0.3 s and ~29 MiB of such an import)."""
    capture = shared_traces / rel
    assert capture.stat().st_size <= byte_loops.SMALL_PERFETTO_BYTES
    assert heavy_modules_of_imports(capture, tmp_path) == {True: [], False: []}


LARGE_TEXT_IMPORT = """
import sys
from importers import byte_loops
byte_loops.SMALL_TEXT_BYTES = -1  # the numba kernels, as for a large text
from replay.cli import console_main
sys.argv = ["pmu-replay", "import", *sys.argv[1:]]
code = console_main()
print(" ".join(m for m in ("numba", "scipy.linalg") if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def test_the_command_loads_numba_without_probing_blas(shared_traces: Path, tmp_path: Path) -> None:
    """``pmu-replay`` compiles its kernels without numba's BLAS probe (all of scipy.linalg
    where scipy is installed: 0.3-0.4 s of start-up), and they give the tables the numpy
    engine gives."""
    capture = shared_traces / "juno-trace-txt/trace.txt"
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", LARGE_TEXT_IMPORT, str(capture), "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert done.stderr.split() == ["numba"]
    with engine("numpy"):
        expected = load(capture)
    assert_same({"numpy": expected, "numba": Capture.load(out)})
