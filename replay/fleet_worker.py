"""Loaded in each worker process of a local fleet cluster (a Dask worker preload).

Ctrl-C in a terminal signals the whole foreground process group, the local cluster's worker
processes included. A worker that took it would die with a traceback of its own while the
driver, which took it too, stops the cluster in order (``replay.fleet``): workers ignore it.
"""

from __future__ import annotations

import signal

# polars installs a SIGINT handler of its own when it is imported (over whatever was there,
# SIG_IGN included) and turns a SIGINT into a KeyboardInterrupt of the query it is running:
# it is imported first, so that ignoring SIGINT is the last word in this process.
import polars  # noqa: F401

# Imported in the worker process's main thread, where its event loop runs (Worker.__init__).
signal.signal(signal.SIGINT, signal.SIG_IGN)
