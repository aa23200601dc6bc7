"""Which engine runs the importers' byte loops: numpy for small inputs, numba for large ones.

The loops that walk ring-buffer pages and perf records and gather fields from scattered
records have two implementations that give identical results: vectorised numpy, and compiled
numba kernels (the ``*_jit`` modules). numba is fast per byte but costs about a second before
its first byte: importing it (with llvmlite, and the scipy parts ``numba.np`` pulls in) and
loading its cached kernels. Most real captures are a few MB, which numpy decodes in
milliseconds, so a loop over at most :data:`SMALL_INPUT_BYTES` bytes runs in numpy and a
capture that small never loads numba. Past it, the compiled kernel's speed repays its
start-up. The line scans of text captures (:mod:`importers.ftrace.scan`) and the protobuf
loops of Perfetto traces (:mod:`importers.perfetto.wire`) choose the same way, against their
own, smaller, :data:`SMALL_TEXT_BYTES` and :data:`SMALL_PERFETTO_BYTES`.
"""

from __future__ import annotations

import sys

#: the largest loop (in bytes of input it walks or gathers) that numpy runs. Measured on
#: recorded trace.dat files (benchmarks/README.md, "Byte loops"): with 67 and 155 MiB of
#: ring-buffer pages the whole numpy import took less CPU time than numba's (whose start-up
#: is about a second) and less peak memory; the compiled walk pays off beyond that
SMALL_INPUT_BYTES = 256 << 20


#: the largest text capture (ftrace text, systrace, perf script) whose line scans run in
#: numpy. Text costs numpy far more per byte than ring-buffer pages (a dozen passes per line
#: field instead of one per record), so it breaks even much sooner. Measured whole-process on
#: copies of juno-trace-txt (benchmarks/README.md, "Byte loops"): at 4 MiB numpy took less CPU
#: and memory than numba with its start-up, at 8 MiB as much CPU and 15 % more memory
SMALL_TEXT_BYTES = 4 << 20


#: the largest Perfetto trace whose protobuf loops run in numpy
#: (:mod:`importers.perfetto.kernels_np`). The twins step every message one field at a time
#: and read nested messages level by level, so they cost more per byte than the page walk
#: and break even sooner. Measured whole-process on copies of perfetto-pixel6a-startup
#: (``import --json``, CPU s and peak RSS, numpy vs numba): 2 MB 1.2 vs 2.2 s, 232 vs 346
#: MB; 7 MB 1.75 vs 2.3 s, 305 vs 392 MB; 14 MB 1.9 vs 2.2 s, 404 vs 431 MB; 28 MB 3.4 vs
#: 3.0 s, 600 vs 512 MB
SMALL_PERFETTO_BYTES = 16 << 20


def compiled(nbytes: int) -> bool:
    """Whether a loop over ``nbytes`` bytes runs as a numba kernel (else in numpy)."""
    return nbytes > SMALL_INPUT_BYTES


def compiled_text(nbytes: int) -> bool:
    """Whether the line scans of a text capture of ``nbytes`` bytes run as numba kernels."""
    return nbytes > SMALL_TEXT_BYTES


def compiled_perfetto(nbytes: int) -> bool:
    """Whether the protobuf loops of a Perfetto trace of ``nbytes`` bytes run as numba
    kernels."""
    return nbytes > SMALL_PERFETTO_BYTES


#: what numba's first kernel load imports to see whether BLAS is there
#: (``numba.np.arraymath._check_blas`` -> ``numba.np.linalg.ensure_blas``): all of
#: ``scipy.linalg`` where scipy is installed, 0.2-0.3 CPU-s of every numba start-up on the
#: development VM (an 8 MB text import: 1.50 -> 1.27 CPU-s), for linear algebra no kernel of
#: this project calls
BLAS_PROBE = "scipy.linalg.cython_blas"


def skip_blas_probe() -> None:
    """Have numba find no BLAS in this process: its probe's import fails at once, and numba
    goes on without ``np.dot`` and ``np.linalg`` in compiled code.

    For the ``pmu-replay`` process only, which runs this project's kernels and nothing else:
    a program that imports the importers as a library may compile kernels of its own that
    need BLAS, and keeps numba's usual start-up. Call it before numba loads its first kernel.
    """
    sys.modules.setdefault(BLAS_PROBE, None)  # type: ignore[arg-type]
