"""Loaded in each worker process of a local fleet cluster (a Dask worker preload).

Ctrl-C in a terminal signals the whole foreground process group, the local cluster's worker
processes included. A worker that took it would die with a traceback of its own while the
driver, which took it too, stops the cluster in order (``replay.fleet``): workers ignore it.
"""

from __future__ import annotations

import signal

# Imported in the worker process's main thread, where its event loop runs (Worker.__init__).
signal.signal(signal.SIGINT, signal.SIG_IGN)
