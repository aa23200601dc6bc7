"""Scheduler load for the benchmarks that record a capture: threads that nap and wake."""

from __future__ import annotations

import threading
import time


def nap_and_wake(seconds: float, threads: int, nap: float) -> None:
    """``threads`` threads sleeping ``nap`` seconds at a time for ``seconds``: every wakeup is
    a context switch, a sched_wakeup and an hrtimer expiry."""
    end = time.monotonic() + seconds

    def work() -> None:
        while time.monotonic() < end:
            time.sleep(nap)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
