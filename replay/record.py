"""Recording a capture directory on a Linux host: the events replay needs, and the host facts.

The recording uses its own tracefs *instance* (``instances/pmu-replay-<pid>``), so nothing of
the host's global tracing state is touched: the instance has its own buffer, events and
``tracing_on``, and removing it at the end (always, also after Ctrl-C or SIGTERM) undoes
everything. It enables ``sched_switch``, ``sched_migrate_task``, ``sched_wakeup``,
``cpu_frequency``, ``cpu_idle`` and, when the kernel has them, ``kvm_entry``, ``kvm_exit``,
``kvm_userspace_exit`` and ``kvm_vcpu_wakeup``; writes the buffer as ``trace.dat`` with
``trace-cmd extract`` when trace-cmd is installed, else as tracefs text; and snapshots the
topology (``/sys/bus/event_source/devices/*/{type,cpus,events/}``, cpufreq, capacities, each
CPU's ``MIDR_EL1``, from ``regs/identification`` or else ``/proc/cpuinfo``), the threads
(``/proc/*/task/*/comm``) and KVM's debugfs vCPU thread ids.

Directory layout (``pmu-replay-record/1``): ``capture.json``, ``trace.dat`` or ``trace.txt``,
``topology.json`` (``importers.host.topology`` snapshot format), ``threads.json``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importers.detect import RECORD_META
from importers.errors import PmuReplayError
from importers.host.facts import midrs_from_cpuinfo
from importers.host.record_dir import RECORD_FORMAT
from importers.host.topology import SNAPSHOT_FORMAT

EVENTS = (
    "sched/sched_switch",
    "sched/sched_migrate_task",
    "sched/sched_wakeup",
    "power/cpu_frequency",
    "power/cpu_idle",
    "kvm/kvm_entry",
    "kvm/kvm_exit",
    "kvm/kvm_userspace_exit",
    "kvm/kvm_vcpu_wakeup",
)
TRACEFS_MOUNTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
SYSFS = Path("/sys")
PROC = Path("/proc")
KVM_DEBUGFS = Path("/sys/kernel/debug/kvm")


class RecordError(PmuReplayError):
    """Recording is impossible here (not root, no tracefs, the command failed, ...)."""

    exit_code = 7


@dataclass
class Recording:
    """What a finished recording wrote and saw."""

    directory: Path
    trace_file: str
    events: list[str]
    missing_events: list[str]
    duration_s: float
    command_status: int | None
    notes: list[str] = field(default_factory=list)


def find_tracefs() -> tuple[Path, bool]:
    """The tracefs mount, mounting it at /sys/kernel/tracing if needed; (path, we_mounted)."""
    for root in TRACEFS_MOUNTS:
        if (root / "instances").is_dir():
            return root, False
    target = TRACEFS_MOUNTS[0]
    result = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", str(target)], capture_output=True, text=True
    )
    if result.returncode != 0 or not (target / "instances").is_dir():
        raise RecordError(
            f"no tracefs at {', '.join(map(str, TRACEFS_MOUNTS))} and mounting it failed "
            f"({result.stderr.strip() or 'no instances directory'}); this kernel cannot trace"
        )
    return target, True


@contextmanager
def tracefs_instance(root: Path, name: str) -> Iterator[Path]:
    """A private tracefs instance, removed on exit whatever happens.

    The instance is created inside the cleanup scope: a Ctrl-C or SIGTERM that lands just
    after ``mkdir`` still removes it. The removal itself runs with both signals blocked (they
    are handled once it is done), so a second Ctrl-C cannot cut it short.
    """
    inst = root / "instances" / name
    if inst.exists():
        raise RecordError(f"the tracefs instance {inst} already exists; remove it (rmdir {inst})")
    try:
        try:
            inst.mkdir()
        except OSError as exc:
            raise RecordError(
                f"cannot create the tracefs instance {inst}: {exc.strerror}"
            ) from None
        yield inst
    finally:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            _remove_instance(inst)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _remove_instance(inst: Path) -> None:
    _write(inst / "tracing_on", "0", missing_ok=True)
    for _ in range(50):  # the kernel refuses rmdir while a reader still holds the buffer
        try:
            inst.rmdir()
            break
        except FileNotFoundError:
            break  # never created, or `trace-cmd extract -B` removed it itself
        except OSError:
            time.sleep(0.1)


def _write(path: Path, value: str, *, missing_ok: bool = False) -> None:
    try:
        path.write_text(value)
    except FileNotFoundError:
        if not missing_ok:
            raise
    except OSError as exc:
        raise RecordError(f"cannot write {value!r} to {path}: {exc.strerror}") from None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so teardown runs for both."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def record(
    out: Path,
    *,
    duration: float | None,
    command: Sequence[str] = (),
    buffer_kb: int = 8192,
    use_trace_cmd: bool = True,
    on_start: Callable[[], None] | None = None,
) -> Recording:
    """Record into directory ``out`` for ``duration`` seconds and/or while ``command`` runs."""
    if os.geteuid() != 0:
        raise RecordError(
            "recording needs root (tracefs and /proc of other users); run it with sudo"
        )
    if duration is None and not command:
        raise RecordError("give --duration SECONDS, a command after --, or both")
    out.mkdir(parents=True, exist_ok=True)
    root, mounted = find_tracefs()
    trace_cmd = shutil.which("trace-cmd") if use_trace_cmd else None
    name = f"pmu-replay-{os.getpid()}"
    notes: list[str] = []
    try:
        with _sigterm_as_interrupt(), tracefs_instance(root, name) as inst:
            _write(inst / "buffer_size_kb", str(buffer_kb))
            enabled, missing = _enable_events(inst)
            _write(inst / "trace", "")
            started = time.monotonic()
            _write(inst / "tracing_on", "1")
            if on_start:
                on_start()
            status, threads = _run(duration, command)
            _write(inst / "tracing_on", "0")
            took = time.monotonic() - started
            trace_file = _save_trace(inst, name, out, trace_cmd, notes)
    finally:
        if mounted:
            subprocess.run(["umount", str(root)], capture_output=True)
    (out / "topology.json").write_text(
        json.dumps(snapshot_topology(), indent=2, sort_keys=True) + "\n"
    )
    (out / "threads.json").write_text(json.dumps(threads, indent=2, sort_keys=True) + "\n")
    meta = {
        "format": RECORD_FORMAT,
        "trace": trace_file,
        "host": platform.node(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "events": enabled,
        "missing_events": missing,
        "duration_s": round(took, 6),
        "command": list(command),
        "command_status": status,
        "notes": notes,
    }
    (out / RECORD_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return Recording(out, trace_file, enabled, missing, took, status, notes)


def _enable_events(inst: Path) -> tuple[list[str], list[str]]:
    enabled, missing = [], []
    for event in EVENTS:
        switch = inst / "events" / event / "enable"
        if switch.exists():
            _write(switch, "1")
            enabled.append(event)
        else:
            missing.append(event)
    if "sched/sched_switch" not in enabled:
        raise RecordError("this kernel has no sched:sched_switch tracepoint; nothing to replay")
    return enabled, missing


def _run(duration: float | None, command: Sequence[str]) -> tuple[int | None, list[dict[str, Any]]]:
    """Wait for the duration and/or the command; snapshot threads while it still runs."""
    deadline = None if duration is None else time.monotonic() + duration
    if not command:
        assert deadline is not None
        time.sleep(max(0.0, deadline - time.monotonic() - 0.05))
        threads = snapshot_threads()
        time.sleep(max(0.0, deadline - time.monotonic()))
        return None, threads
    try:
        proc = subprocess.Popen(list(command))
    except OSError as exc:
        raise RecordError(f"cannot run {command[0]}: {exc.strerror}") from None
    seen: dict[int, dict[str, Any]] = {}
    try:
        while proc.poll() is None and (deadline is None or time.monotonic() < deadline):
            # threads come and go: keep every one seen, with its latest name
            seen.update((t["tid"], t) for t in snapshot_threads())
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    seen.update((t["tid"], t) for t in snapshot_threads())
    return proc.returncode, sorted(seen.values(), key=lambda r: (r["tgid"], r["tid"]))


def _save_trace(inst: Path, name: str, out: Path, trace_cmd: str | None, notes: list[str]) -> str:
    if trace_cmd:
        target = out / "trace.dat"
        result = subprocess.run(
            [trace_cmd, "extract", "-B", name, "-o", str(target)], capture_output=True, text=True
        )
        if result.returncode == 0 and target.exists():
            return target.name
        notes.append(
            f"trace-cmd extract failed ({result.stderr.strip()[:200]}); wrote tracefs text"
        )
    text = out / "trace.txt"
    with open(inst / "trace", "rb") as src, open(text, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return text.name


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def snapshot_topology(sysfs: Path = SYSFS, proc: Path = PROC) -> dict[str, Any]:
    """The host's PMUs (with a core PMU's ``events/``), cpufreq policies, capacities and MIDRs,
    as a ``pmu-replay-topology/1`` dict."""
    devices: dict[str, dict[str, Any]] = {}
    for dev in sorted((sysfs / "bus/event_source/devices").glob("*")):
        files: dict[str, Any] = {
            f: v for f in ("type", "cpus", "cpumask") if (v := _read(dev / f)) is not None
        }
        if "cpus" in files:  # a core PMU: its events/ are the common events it implements
            events = {e.name: v for e in sorted(dev.glob("events/*")) if (v := _read(e))}
            files["events"] = events
        devices[dev.name] = files
    cpufreq = {}
    for policy in sorted((sysfs / "devices/system/cpu/cpufreq").glob("policy*")):
        entry = {
            f: v
            for f in ("related_cpus", "scaling_available_frequencies", "cpuinfo_max_freq")
            if (v := _read(policy / f)) is not None
        }
        cpufreq[policy.name] = entry
    capacity = {}
    midr = {}
    for cpu in sorted((sysfs / "devices/system/cpu").glob("cpu[0-9]*")):
        if (v := _read(cpu / "cpu_capacity")) is not None:
            capacity[cpu.name[3:]] = v
        if (v := _read(cpu / "regs/identification/midr_el1")) is not None:
            midr[cpu.name[3:]] = v
    if not midr:
        cpuinfo = _read(proc / "cpuinfo") or ""
        midr = {str(cpu): f"{m:#018x}" for cpu, m in midrs_from_cpuinfo(cpuinfo).items()}
    return {
        "format": SNAPSHOT_FORMAT,
        "cpus_possible": _read(sysfs / "devices/system/cpu/possible"),
        "event_source_devices": devices,
        "cpufreq": cpufreq,
        "cpu_capacity": capacity,
        "midr_el1": midr,
    }


def snapshot_threads(proc: Path = PROC, debugfs: Path = KVM_DEBUGFS) -> list[dict[str, Any]]:
    """Every thread (tid, tgid, comm) and, from KVM debugfs, which tid runs which vCPU."""
    vcpus = {}
    for pid_file in debugfs.glob("*-*/vcpu*/pid"):
        vm_pid = pid_file.parent.parent.name.split("-")[0]
        tid = _read(pid_file)
        if tid and tid.isdigit() and vm_pid.isdigit():
            vcpus[int(tid)] = (int(vm_pid), int(pid_file.parent.name[4:]))
    threads = []
    for task in proc.glob("[0-9]*/task/[0-9]*"):
        comm = _read(task / "comm")
        if comm is None:
            continue  # exited while we looked
        row: dict[str, Any] = {
            "tid": int(task.name),
            "tgid": int(task.parent.parent.name),
            "comm": comm,
        }
        if int(task.name) in vcpus:
            row["kvm_vm_pid"], row["kvm_vcpu"] = vcpus[int(task.name)]
        threads.append(row)
    return sorted(threads, key=lambda r: (r["tgid"], r["tid"]))
