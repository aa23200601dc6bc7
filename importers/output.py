"""Outputs that are whole or absent: a directory (or file) appears under its name complete.

Everything is written into a temporary sibling (``.NAME.XXXX.partial``) and renamed into place
at the end, so a run that fails, is interrupted or is killed leaves the previous output
untouched (or nothing), never a half-written directory that reads as complete. Replacing an
existing directory takes two renames (the old one aside, the new one in); between them the
name is briefly absent, never half-written. The rename is atomic within one file system, which
the sibling shares with the target.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from importers.errors import UsageError


@contextmanager
def whole_directory(target: str | Path, marker: str) -> Iterator[Path]:
    """A fresh directory to fill; on success it replaces ``target`` as a whole.

    ``marker`` is the file every output of this kind has (``metadata.json``,
    ``replay.json``): an existing non-empty ``target`` without it is not an earlier output and
    is refused rather than replaced, so ``-o ~`` cannot take a home directory with it.

    Raises
    ------
    UsageError
        When ``target`` or a directory above it is a file, or ``target`` is a non-empty
        directory that is not such an output.
    OSError
        Naming ``target``, when it cannot be created or written (disk full, permission, ...);
        the partial copy is removed and ``target`` is left as it was.
    """
    out = Path(os.path.abspath(target))
    _check_replaceable(out, marker)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        _swap_in(tmp, out)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        _raise_naming(exc, out)
        raise


@contextmanager
def whole_file(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write; on success it replaces ``target``."""
    out = Path(os.path.abspath(target))
    if out.is_dir():
        raise UsageError(f"{target}: is a directory; give a file name")
    _check_ancestors(out)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        os.replace(tmp, out)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        _raise_naming(exc, out)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: polars reports an I/O error of its Parquet writer as a ComputeError ending "(os error N)"
_POLARS_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _raise_naming(exc: BaseException, out: Path) -> None:
    """For an I/O failure, raise an ``OSError`` of the same errno that names ``out`` (not the
    temporary file the message would otherwise show); return for anything else."""
    code: int | None = None
    polars = sys.modules.get("polars")  # a polars error comes only from a loaded polars
    if isinstance(exc, OSError):
        code = exc.errno
    elif (
        polars is not None
        and isinstance(exc, polars.exceptions.ComputeError)
        and (m := _POLARS_OS_ERROR.search(str(exc)))
    ):
        code = int(m[1])
    if code is not None:
        raise OSError(code, f"cannot write it: {os.strerror(code)}", str(out)) from exc


def _check_ancestors(out: Path) -> None:
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{out}: {parent} is a file, not a directory")
            return


def _check_replaceable(out: Path, marker: str) -> None:
    _check_ancestors(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory; give a directory name")
    if out.is_dir() and not (out / marker).exists() and any(out.iterdir()):
        raise UsageError(
            f"{out}: a directory that is not an earlier pmu-replay output (no {marker}) and "
            "not empty; give a new or empty directory (outputs replace their directory whole)"
        )


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``, moving an existing ``out`` aside first and removing it.

    Ctrl-C waits until both renames are done (SIGINT is blocked meanwhile), so an interrupt
    cannot leave the name absent; only a kill between them can.
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        try:
            os.rename(tmp, out)  # no earlier output (or an empty directory)
            return
        except OSError:
            if not out.is_dir():
                raise
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rename(out, old / out.name)
        os.rename(tmp, out)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    shutil.rmtree(old, ignore_errors=True)
