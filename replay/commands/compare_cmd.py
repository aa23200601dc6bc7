"""``pmu-replay compare``: every KVM vPMU configuration on one capture, ranked."""

from __future__ import annotations

import argparse
import json

from replay.commands.export_cmd import export
from replay.commands.session import load_work, print_comparison, replay_parser, run_scenarios
from replay.compare import scenario_matrix

HELP = "compare default, set-pmu per host PMU, fixed-counters-only and no-pmu on one capture"
EPILOG = """\
The matrix: default with the first KVM_ARM_VCPU_INIT on a CPU of each cluster, set-pmu for each
host PMU, fixed-counters-only and no-pmu (add more with --scenario). Configurations are ranked
by risky zero-delta ticks, then stalled counter time, then guest time on CPUs the configuration
forbids (failed entries), then counters the guest cannot program.

example:
  pmu-replay compare trace.dat --topology plat_info.yml -o compare/
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = replay_parser(
        sub,
        "compare",
        HELP,
        EPILOG,
        "extra scenario to include",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    capture, work = load_work(args)
    scenarios = [*scenario_matrix(work.host), *args.scenario]
    results = run_scenarios(work, capture, scenarios, args.path)
    if args.output:
        results.save(args.output)
    if args.perfetto:
        export(results, args.perfetto, to_stderr=args.json)
    if args.json:
        out = {key: results.meta[key] for key in ("ranking", "recommendation", "notes", "host")}
        print(json.dumps(out, indent=2, default=str))
        return 0
    print_comparison(
        results, f"what-if comparison on {capture.metadata.source_path} ({work.profile.name} guest)"
    )
    return 0
