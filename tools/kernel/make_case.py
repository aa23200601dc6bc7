"""Turn one recorded case of the harness into a ``pmu-replay validate`` case directory.

Input: ``$LAB/out/<case>/`` as written by ``init.sh`` inside the emulated host (``trace.txt``,
``exits.csv``, ``vmm-reads.csv``, ``vmm.log``, ``topology.json``, ``host.txt``,
``trace-stats.txt``). Output: ``fixtures/kernel/<case>/`` with ``case.json``, the capture, the
topology, ``guest-reads.csv``, ``exits.csv``, the guest profile and a README.

The host time of each guest read (``guest-reads.csv`` ``ts``) is the trace's own timestamp of
the read: KVM traps the guest's ``MRS PMCCNTR_EL0`` (``MDCR_EL2.TPM``) and logs
``kvm_sys_access`` in ``perform_access()`` just before it emulates the read, after the guest
window that ran up to the read ended. The VMM learns the value only at the MMIO report that
follows and marks it in the trace (``pmu-replay-vmm: read seq=N``). Read N is therefore paired
with the single ``PMCCNTR_EL0`` access of the vCPU thread between marker N-1 and marker N; the
script refuses a case in which that is not exactly one access, or the trace lost events.

Usage (the Makefile's ``fixtures`` target)::

    python3 make_case.py OUT_CASE_DIR FIXTURE_DIR --case-file cases/NAME \\
        --qemu "$(qemu-system-aarch64 --version | head -1)" \\
        --kernel-source "$(dpkg-query -W linux-source-6.12)" \\
        --harness "$(git describe --always --dirty)"
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

# "<comm>-<pid> (<tgid>) [<cpu>] <flags> <sec>.<usec>: <event>: <payload>" (record-tgid on)
LINE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+\(\s*(?P<tgid>[\d-]+)\)\s+\[(?P<cpu>\d+)\]\s+\S+\s+"
    r"(?P<sec>\d+)\.(?P<usec>\d{6}): (?P<event>\w+): (?P<payload>.*)$"
)
READ_MARK = re.compile(r"pmu-replay-vmm: read seq=(\d+) ")
# kvm_sys_access: "PC: 40000068 SYS_PMCCNTR_EL0 (3,3,9,13,0) read": the encoding, not the name
PMCCNTR_READ = re.compile(r" \(3,3,9,13,0\) read$")
INIT = re.compile(r"vmm: vcpu_init cpu=(\d+) pmu=(\S+) set_pmu_type=(-?\d+) tid=(\d+)")
GUEST_PROFILE = {
    "name": "harness-guest",
    "description": (
        "tools/kernel/guest.S: PMCCNTR_EL0 enabled at boot (PMCR_EL0.E|C|LC, PMCCFILTR_EL0 = 0), "
        "the guest runs at EL1 only"
    ),
    "counters": [{"idx": 31, "event": "0x11", "name": "cycles"}],
    "el0_share": 0.0,
}


@dataclass
class Event:
    tid: int
    ts: int  # ns, from the printed microseconds (never via float)
    event: str
    payload: str


def parse_trace(path: Path) -> list[Event]:
    events = []
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if m:
            ts = int(m["sec"]) * 1_000_000_000 + int(m["usec"]) * 1000
            events.append(Event(int(m["pid"]), ts, m["event"], m["payload"]))
    return events


def read_times(events: list[Event], tid: int, count: int) -> list[int]:
    """Trace time of each of the ``count`` reads: its PMCCNTR_EL0 access (module docstring)."""
    times: list[int] = []
    pending: list[int] = []
    for e in events:
        if e.tid != tid:
            continue
        if e.event == "kvm_sys_access" and PMCCNTR_READ.search(e.payload):
            pending.append(e.ts)
        elif e.event == "tracing_mark_write" and (m := READ_MARK.search(e.payload)):
            seq = int(m.group(1))
            if seq != len(times) + 1 or len(pending) != 1:
                raise SystemExit(
                    f"read {seq}: expected read {len(times) + 1} with exactly one PMCCNTR_EL0 "
                    f"access before its marker, found {len(pending)}"
                )
            times.append(pending.pop())
    if len(times) != count:
        raise SystemExit(f"the trace marks {len(times)} reads, the VMM logged {count}")
    return times


def check_no_loss(stats: Path) -> None:
    for line in stats.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("overrun", "dropped events") and int(value) != 0:
            raise SystemExit(f"{stats}: the trace lost events ({line.strip()}); record again")


def counts(reads: list[dict[str, str]], exits: list[dict[str, str]]) -> dict[str, int]:
    """What the guest and the VMM saw, for the README."""
    seen = {"reads": len(reads), "zero": 0, "counted": 0, "undef": 0, "exits": len(exits)}
    for prev, cur in itertools.pairwise(reads):
        if not cur["pmccntr"]:
            seen["undef"] += 1
        elif prev["pmccntr"]:
            seen["zero" if cur["pmccntr"] == prev["pmccntr"] else "counted"] += 1
    seen["undef"] += int(bool(reads) and not reads[0]["pmccntr"])
    seen["fail_entry"] = sum(e["exit_name"] == "FAIL_ENTRY" for e in exits)
    seen["mmio"] = sum(e["exit_name"] == "MMIO" for e in exits)
    return seen


def readme(name: str, scenario: str, facts: dict[str, str], seen: dict[str, int]) -> str:
    """The case's README: provenance, what it shows, how it was made."""
    return f"""# {name}

Recorded by this project's harness (`tools/kernel/`, {facts["harness"]}) on a real Linux host
kernel running KVM inside QEMU; validated by `pmu-replay validate fixtures/kernel/{name}`.

{facts["story"]}

* Scenario: `{scenario}`; the VMM: `{facts["init"]}`.
* Host kernel: `{facts["uname"]}`, built from Debian's `{facts["kernel_source"]}` with
  `tools/kernel/host.config` on top of `allnoconfig`; VHE KVM, two arm_pmus
  (`armv8_cortex_a53` on CPUs 0-1, `armv8_cortex_a72` on CPUs 2-3, see `topology.json`).
* Machine: `{facts["qemu"]}`, `qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3
  -cpu max -smp 4 -m 1024` (TCG), with QEMU's device tree edited by `tools/kernel/two_pmu_dt.py`
  (two PMU nodes on PPI 7, split by GICv3 `ppi-partitions`).
* Guest: `tools/kernel/guest.S` at EL1: PMCR_EL0.E|C|LC, PMCCFILTR_EL0 = 0, PMCNTENSET_EL0 bit
  31; then a loop of spin, `MRS CNTVCT_EL0`, `MRS PMCCNTR_EL0`, two MMIO reports. The guest
  saw ID_AA64DFR0_EL1 = {facts["dfr0"]}, PMCR_EL0 = {facts["pmcr"]} at boot.
* Harness case (`tools/kernel/cases/{name}`):

  ```sh
{facts["case_file"]}
  ```

What was recorded: {seen["reads"]} guest reads ({seen["zero"]} zero deltas, {seen["counted"]}
counted deltas, {seen["undef"]} UNDEF reads); {seen["exits"]} returns of KVM_RUN in the exit log
({seen["mmio"]} MMIO, {seen["fail_entry"]} KVM_EXIT_FAIL_ENTRY).

Files: `trace.txt` (tracefs text, trace clock `mono`: sched_switch, sched_migrate_task,
sched_wakeup, kvm_entry, kvm_exit, kvm_userspace_exit, kvm_sys_access, kvm_vcpu_wakeup and the
VMM's and harness's trace_marker lines), `topology.json` (sysfs snapshot of the emulated host),
`guest-reads.csv` (read time = the trace time of KVM's `kvm_sys_access` for the trapped read),
`exits.csv` (the VMM's exit log), `vmm-reads.csv` (the VMM's own log, times after the MMIO
report), `vmm.log`, `host.txt` (uname, dmesg lines, event sources, cpuinfo), `guest-profile.json`,
`case.json`.

Rebuild: `make -C tools/kernel record CASES={name} && make -C tools/kernel fixtures CASES={name}`
(see `tools/kernel/README.md`).
"""


def _guest_reg(log: str, name: str) -> str:
    m = re.search(rf"vmm: guest {name} = (0x[0-9a-f]+)", log)
    return m.group(1) if m else "(not read: no vPMU)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recorded", type=Path)
    parser.add_argument("fixture", type=Path)
    parser.add_argument("--case-file", type=Path, required=True, help="tools/kernel/cases/NAME")
    parser.add_argument("--qemu", required=True, help="qemu-system-aarch64 --version, first line")
    parser.add_argument("--kernel-source", required=True, help="dpkg-query -W linux-source-6.12")
    parser.add_argument("--harness", required=True, help="git describe --always --dirty")
    args = parser.parse_args(argv)
    src: Path = args.recorded
    dst: Path = args.fixture
    check_no_loss(src / "trace-stats.txt")
    init = INIT.search((src / "vmm.log").read_text())
    if init is None:
        raise SystemExit(f"{src}/vmm.log: no vcpu_init line (did the VMM start?)")
    init_cpu, pmu, tid = int(init.group(1)), init.group(2), int(init.group(4))
    scenario = {"default": f"default@cpu{init_cpu}", "none": "no-pmu"}.get(pmu, f"set-pmu:{pmu}")
    with open(src / "vmm-reads.csv", newline="") as f:
        vmm_reads = list(csv.DictReader(f))
    times = read_times(parse_trace(src / "trace.txt"), tid, len(vmm_reads))
    dst.mkdir(parents=True, exist_ok=True)
    with open(dst / "guest-reads.csv", "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["ts", "vcpu", "cntvct", "pmccntr"])
        for ts, row in zip(times, vmm_reads, strict=True):
            out.writerow([ts, row["vcpu"], row["cntvct"], row["pmccntr"]])
    for name in ("trace.txt", "topology.json", "exits.csv", "vmm-reads.csv", "vmm.log", "host.txt"):
        shutil.copyfile(src / name, dst / name)
    (dst / "guest-profile.json").write_text(json.dumps(GUEST_PROFILE, indent=2) + "\n")
    case = {
        "format": "pmu-replay-validate/1",
        "capture": "trace.txt",
        "topology": "topology.json",
        "vcpus": [f"{tid}=vmm:0"],
        "scenario": scenario,
        "profile": "guest-profile.json",
        "reads": "guest-reads.csv",
        "exits": "exits.csv",
        "qemu": args.qemu,
    }
    (dst / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    with open(src / "exits.csv", newline="") as f:
        exits = list(csv.DictReader(f))
    log = (src / "vmm.log").read_text()
    host = (src / "host.txt").read_text().splitlines()
    case_lines = args.case_file.read_text().splitlines()
    facts = {
        "harness": args.harness,
        "story": " ".join(line.lstrip("# ") for line in case_lines if line.startswith("#")),
        "case_file": "\n".join(f"  {line}" for line in case_lines if not line.startswith("#")),
        "init": init.group(0),
        "uname": host[0],
        "kernel_source": args.kernel_source.replace("\t", " "),
        "qemu": args.qemu,
        "dfr0": _guest_reg(log, "ID_AA64DFR0_EL1"),
        "pmcr": _guest_reg(log, "PMCR_EL0"),
    }
    (dst / "README.md").write_text(readme(dst.name, scenario, facts, counts(vmm_reads, exits)))
    print(f"{dst}: {scenario}, {len(times)} reads, vCPU thread {tid}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
