"""Benchmark: what re-creating one task-bound perf event costs on this host.

A FIXED_COUNTERS_ONLY re-creation (``kvm_pmu_create_perf_event()`` after a load onto another
PMU) releases the vCPU thread's perf event and creates a new one
(``perf_event_release_kernel()`` + ``perf_event_create_kernel_counter()``). From user space the
nearest measurable operation is ``close()`` of a counting event of the calling thread plus a
new ``perf_event_open()`` of the same event: the same allocation, context lookup, install and
removal, plus a syscall and a file descriptor each way. Run this on the host you replay for and
pass the median to ``--recreate-cost-us``.

The event is the CPU cycle counter (user-space only, allowed at perf_event_paranoid <= 2), or
the software ``cpu-clock`` event where the host exposes no hardware PMU (a VM, a container);
software events skip the PMU driver's ``event_init``, so that figure is a lower bound.
Reported: the median and 90th percentile of open+close in microseconds, and the ratio to a
``getppid()`` syscall measured in the same run (the peer).

Usage: python benchmarks/bench_recreate.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import struct
import time

PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE = 0, 1
PERF_COUNT_HW_CPU_CYCLES, PERF_COUNT_SW_CPU_CLOCK = 0, 0
ATTR_SIZE = 128
EXCLUDE_KERNEL, EXCLUDE_HV = 1 << 5, 1 << 6  # perf_event_attr flag bits
NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}

libc = ctypes.CDLL(None, use_errno=True)


def attr(kind: int, config: int) -> ctypes.Array[ctypes.c_char]:
    raw = bytearray(ATTR_SIZE)
    struct.pack_into("IIQ", raw, 0, kind, ATTR_SIZE, config)
    struct.pack_into("Q", raw, 40, EXCLUDE_KERNEL | EXCLUDE_HV)
    return ctypes.create_string_buffer(bytes(raw), ATTR_SIZE)


def perf_event_open(event: ctypes.Array[ctypes.c_char]) -> int:
    nr = NR_PERF_EVENT_OPEN[platform.machine()]
    fd: int = libc.syscall(nr, event, 0, -1, -1, 0)  # this thread, any CPU, no group, no flags
    return fd


def timed(rounds: int, step: object) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter_ns()
        step()  # type: ignore[operator]
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    event, name = attr(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES), "cycles"
    probe = perf_event_open(event)
    if probe < 0:
        event, name = attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK), "cpu-clock (software)"
        probe = perf_event_open(event)
    if probe < 0:
        raise SystemExit(f"perf_event_open fails: {os.strerror(ctypes.get_errno())}")
    fd = [probe]

    def recreate() -> None:
        os.close(fd[0])
        fd[0] = perf_event_open(event)

    recreate_us = sorted(timed(args.rounds, recreate))
    os.close(fd[0])
    syscall_us = sorted(timed(args.rounds, os.getppid))
    median = statistics.median(recreate_us)
    p90 = recreate_us[int(0.9 * len(recreate_us))]
    peer = statistics.median(syscall_us)
    print(f"event: {name}, {args.rounds} rounds, {platform.machine()} {platform.release()}")
    print(f"close + perf_event_open: median {median:.2f} us, p90 {p90:.2f} us")
    print(f"getppid(): median {peer:.3f} us; ratio {median / peer:.0f}x")


if __name__ == "__main__":
    main()
