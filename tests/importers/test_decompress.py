"""Compressed captures import like the plain ones; compression bombs are refused early.

The captures are compressed here with the command-line tools (gzip, xz, zstd, bzip2: CI
installs them), so the reading side is checked against independent writers. Bombs are
imported in a child process whose peak RSS (``getrusage``) is compared with a child that
only loads the importers: streaming to a temporary file holds one block at a time, and zip
members are inflated in memory up to their running limit.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from importers.capture import Capture
from importers.decompress import IN_MEMORY_RATIO, MIN_LIMIT
from importers.detect import load, sniff
from importers.errors import CaptureFormatError
from replay.cli import EXIT_OS_ERROR, main
from tests.conftest import ROOT
from tests.replay.test_faults import small_tmpfs

TOOLS = {"gzip": ["gzip", "-c"], "xz": ["xz", "-c"], "zstd": ["zstd", "-q", "-c"],
         "bzip2": ["bzip2", "-c"]}  # fmt: skip
SUFFIX = {"gzip": ".gz", "xz": ".xz", "zstd": ".zst", "bzip2": ".bz2"}


def compress(source: Path, tool: str, out_dir: Path) -> Path:
    if shutil.which(TOOLS[tool][0]) is None:
        pytest.skip(f"{tool} is not installed (CI installs it)")
    out = out_dir / (source.name + SUFFIX[tool])
    with open(out, "wb") as fh:
        subprocess.run([*TOOLS[tool], str(source)], stdout=fh, check=True)
    return out


def same_tables(a: Capture, b: Capture) -> None:
    assert sorted(a.tables) == sorted(b.tables)
    for name in a.tables:
        assert a.table(name).equals(b.table(name)), name


@pytest.mark.parametrize("tool", list(TOOLS))
def test_text_capture_compressed_each_way_imports_the_same(
    shared_traces: Path, tmp_path: Path, tool: str
) -> None:
    plain_path = shared_traces / "juno-trace-txt/trace.txt"
    packed = compress(plain_path, tool, tmp_path)
    assert sniff(packed) == tool
    cap, plain = load(packed), load(plain_path)
    same_tables(cap, plain)
    meta = cap.metadata
    assert meta.format == plain.metadata.format and meta.extra["compression"] == tool
    assert meta.source_path == str(packed)
    assert meta.source_sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("capture", "tool"),
    [
        ("perfetto-galaxy-j5/trace_file.perfetto-trace", "gzip"),  # .perfetto-trace.gz
        ("juno-sched-load/trace.dat", "zstd"),
        ("quipper-perfdata/perf.data.armv7-3.4", "xz"),
        ("trappy-surfaceflinger/trace_surfaceflinger.html", "bzip2"),
    ],
)
def test_every_format_reads_through_decompression(
    shared_traces: Path, tmp_path: Path, capture: str, tool: str
) -> None:
    plain = load(shared_traces / capture)
    cap = load(compress(shared_traces / capture, tool, tmp_path))
    same_tables(cap, plain)
    assert cap.metadata.format == plain.metadata.format


def test_errors_name_the_compressed_file(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello world\nthis is not a trace\n")
    packed = compress(junk, "gzip", tmp_path)
    with pytest.raises(CaptureFormatError) as err:
        load(packed)
    assert f"{packed} (decompressed): not a capture format" in str(err.value)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(packed.read_bytes()[:-12])
    with pytest.raises(CaptureFormatError, match=f"{cut}: damaged gzip data"):
        load(cut)


def test_a_full_temporary_disk_is_not_called_damage(
    shared_traces: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The inflated copy filling TMPDIR is a disk problem (exit 8, naming where), not
    "damaged gzip data ... check the file was copied whole" (exit 3)."""
    packed = tmp_path / "trace.txt.gz"
    packed.write_bytes(gzip.compress((shared_traces / "juno-trace-txt/trace.txt").read_bytes()))
    with small_tmpfs(tmp_path / "tmp", "64k") as small:  # the 448 kB trace does not fit
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        assert main(["import", str(packed)]) == EXIT_OS_ERROR
        err = capsys.readouterr().err
        assert f"{small}: cannot inflate trace.txt.gz there: No space left on device" in err
        assert "damaged" not in err and list(small.iterdir()) == []


CHILD = """
import importlib, os, resource, sys
from importers.detect import load
from importers.errors import PmuReplayError
for module in sys.argv[2:]:
    importlib.import_module(module)
if sys.argv[1] != "-":
    try:
        load(sys.argv[1])
        print("IMPORTED")
    except PmuReplayError as exc:
        print("REFUSED", exc)
print("LEFT", len(os.listdir(os.environ["TMPDIR"])))
print("RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def child(path: str, tmp: Path, *modules: str) -> tuple[str, int, int]:
    """(message, files left in TMPDIR, peak RSS in bytes) of importing ``path`` alone (``-``:
    nothing) after loading ``modules``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}
    out = subprocess.run([sys.executable, "-c", CHILD, path, *modules], capture_output=True,
                         text=True, env=env, check=True, timeout=300).stdout.splitlines()  # fmt: skip
    return out[0] if len(out) == 3 else "", int(out[-2].split()[1]), int(out[-1].split()[1])


@pytest.mark.slow
def test_a_compression_bomb_is_refused_within_a_block_of_memory(tmp_path: Path) -> None:
    if shutil.which("zstd") is None:
        pytest.skip("zstd is not installed (CI installs it)")
    bomb = tmp_path / "trace.txt.zst"
    with open(bomb, "wb") as fh:  # 1 GiB of zeros in about 30 kB
        head = subprocess.Popen(["head", "-c", str(1 << 30), "/dev/zero"], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-c"], stdin=head.stdout, stdout=fh, check=True)
        head.wait()
    assert bomb.stat().st_size * 1000 < MIN_LIMIT
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    _, _, baseline = child("-", scratch)
    message, left, peak = child(str(bomb), scratch)
    assert message.startswith(f"REFUSED {bomb}: decompresses to more than 64 MiB")
    assert left == 0  # the temporary file is gone
    # stated bound: what streaming holds (a block of 1 MiB, a few more in the codecs)
    assert peak - baseline < 32 << 20, (peak, baseline)


def test_zip_members_are_read_under_a_running_limit(tmp_path: Path) -> None:
    # a systrace zip whose member inflates to 200 MiB: it used to be read whole (the central
    # directory's size was trusted); now reading stops at the in-memory limit
    archive = tmp_path / "systrace.zip"
    with (
        zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("trace.html", "w", force_zip64=True) as member,
    ):
        member.write(b"<html>\n")
        for _ in range(200):
            member.write(bytes(1 << 20))
    assert archive.stat().st_size * IN_MEMORY_RATIO < MIN_LIMIT
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # the baseline has the text importer loaded, as the refusing child has by then
    _, _, baseline = child("-", scratch, "importers.ftrace.text")
    message, _, peak = child(str(archive), scratch)
    assert "zip member trace.html: decompresses to more than 64 MiB" in message
    assert peak - baseline < MIN_LIMIT + (32 << 20), (peak, baseline)
