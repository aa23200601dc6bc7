"""The last module mutmut's fork server imports (``tests/mutmut_preload.txt``).

Each mutant runs in a child forked from that server, so what the server has already done no
child repeats. Two costs were left in every child (benchmarks/README.md, "Mutation score"):

* numba loads its CPU target (the typing and lowering registries) at the first compile or
  cache load of a process, about a second here. One trivial compile here loads it once; the
  project's kernels still load their own cached code in the child, a few ms each.
* pytest ends every session with ``gc.collect()`` (its unraisable-exception hook, five times),
  which walks every object the imports made: most of a second with polars, pyarrow and numba
  loaded, and each walk writes to pages the child shares with the server. ``gc.freeze()``
  moves the server's objects out of the collector's reach, as the ``gc`` docs advise before
  forking without exec.

Nothing here may start a thread or run a polars query: a child forked from a process whose
polars pool exists hangs at its first query.
"""

from __future__ import annotations

import gc

from numba import njit


@njit
def _increment(x: int) -> int:
    return x + 1


_increment(1)
gc.freeze()
