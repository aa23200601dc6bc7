"""``pmu-replay compare``: every KVM vPMU configuration on one capture, ranked."""

from __future__ import annotations

import argparse
import json

from replay.commands import summary
from replay.commands.session import (
    add_verdict_options,
    load_work,
    print_comparison,
    replay_parser,
    run_scenarios,
    write_outputs,
    writes_files,
)
from replay.compare import scenario_matrix

HELP = summary("compare")
EPILOG = """\
The matrix: default with the first KVM_ARM_VCPU_INIT on a CPU of each cluster, set-pmu for each
host PMU and no-pmu, on a released (mainline) kernel, and the proposed fixed-counters-only at
series revision v8 (add more with --scenario, e.g. fixed-counters-only+v4).

Ranking (--explain prints it): a configuration that takes away a counter the guest profile
programs ranks below every one that keeps them all; then zero cycle deltas the guest read, risky
zero-delta ticks, stalled counter time (the guest's stalls); then the host capacity pinning
takes (share of capacity on CPUs where entries fail, then the guest time the schedule ran
there) and the CPU time of perf-event re-creations; then a released kernel before a proposed
one. --prefer capacity ranks the pinning cost before the guest's stalls.

The verdict names the kernel: a fixed-counters-only recommendation is "proposed (series
revision ...), not in a released kernel", with the best configuration of a released kernel
beside it. It is "inconclusive" when a vCPU has more than --max-unknown of its time unknown.

example:
  pmu-replay compare trace.dat --topology plat_info.yml -o compare/ --explain
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = replay_parser(
        sub,
        "compare",
        HELP,
        EPILOG,
        "extra scenario to include",
    )
    add_verdict_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    capture, work = load_work(args)
    scenarios = [*scenario_matrix(work.host), *args.scenario]
    results = run_scenarios(
        work,
        capture,
        scenarios,
        args.path,
        recreate_cost_us=args.recreate_cost_us,
        prefer=args.prefer,
        max_unknown_pct=args.max_unknown,
        keep_observations=writes_files(args),
    )
    write_outputs(results, args)
    if args.json:
        keys = ("verdict", "recommendation", "ranking", "ranking_rule", "notes", "host")
        out = {key: results.meta[key] for key in keys}
        print(json.dumps(out, indent=2, default=str))
        return 0
    print_comparison(
        results,
        f"what-if comparison on {capture.metadata.source_path} ({work.profile.name} guest)",
        explain=args.explain,
        wide=args.wide,
    )
    return 0
