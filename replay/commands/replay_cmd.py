"""``pmu-replay replay``: one capture through chosen KVM vPMU scenarios."""

from __future__ import annotations

import argparse
import json
from textwrap import fill

from replay.commands import summary
from replay.commands.session import (
    load_work,
    print_report,
    replay_parser,
    run_scenarios,
    write_outputs,
    writes_files,
)
from replay.profiles import PROFILE_FILE_FORMAT
from replay.scenarios import SCENARIO_SYNTAX

HELP = summary("replay")
EPILOG = f"""\
{fill(f"scenarios ({SCENARIO_SYNTAX}):", 96, subsequent_indent="    ", break_on_hyphens=False)}
  default@cpu0                  one host PMU, chosen by the CPU of the first KVM_ARM_VCPU_INIT
  set-pmu:armv8_cortex_a57      KVM_ARM_VCPU_PMU_V3_SET_PMU: entries on other CPUs fail
  fixed-counters-only           the proposed KVM_ARM_VCPU_PMU_V3_FIXED_COUNTERS_ONLY (series v8+)
  fixed-counters-only+v4        the same under the series' v4 semantics
  default@cpu0+v4               default mode under v4 (its reloads re-create perf events)
  no-pmu                        no vPMU at all
every mode but fixed-counters-only runs on a released (mainline) kernel unless +v4/+v8 is given

examples:
  pmu-replay replay trace.dat --topology plat_info.yml --scenario default@cpu0 -o out/
  pmu-replay replay trace.txt --pmu armv8_cortex_a53=0,3-5 --pmu armv8_cortex_a57=1-2 \\
      --vcpu 4242=vm0:0 --scenario default --scenario fixed-counters-only --json

outputs (-o DIR): observations.parquet (per guest piece and counter: counting, delta, value),
findings.parquet (stall episodes, failed entries, unknown time, perf-event re-creations),
ticks.parquet, reads.parquet (zero-delta checks at traced guest PMCCNTR reads),
summary.parquet (per scenario and vCPU: stalls, cross-PMU loads, re-creations, pinning,
unknown share), pieces.parquet (where each vCPU ran), frequency.parquet and replay.json.

{PROFILE_FILE_FORMAT}"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = replay_parser(
        sub,
        "replay",
        HELP,
        EPILOG,
        "scenario to replay (repeat); default: default and fixed-counters-only",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    capture, work = load_work(args)
    names = args.scenario or ["default", "fixed-counters-only"]
    # Ranking is compare's business: replay's outputs carry none.
    results = run_scenarios(
        work,
        capture,
        names,
        args.path,
        rank=False,
        recreate_cost_us=args.recreate_cost_us,
        keep_observations=writes_files(args),
    )
    write_outputs(results, args)
    if args.json:
        print(
            json.dumps(
                {
                    "summary": results.summary.to_dicts(),
                    "notes": results.meta["notes"],
                    "vcpus_without_rows": results.meta["vcpus_without_rows"],
                },
                indent=2,
                default=str,
            )
        )
    else:
        print_report(
            results,
            f"replay of {capture.metadata.source_path} ({work.profile.name} guest)",
            wide=args.wide,
        )
    return 0
