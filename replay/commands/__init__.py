"""One module per ``pmu-replay`` subcommand, each with ``register(subparsers)``.

:data:`COMMANDS` lists them with their one-line summaries, so the command line can list every
subcommand while loading only the module of the one it runs (``--help`` loads none).
"""

#: subcommand -> (module under replay.commands, one-line summary), in ``--help`` order
COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("import_cmd", "import a capture into Parquet tables and print what it contains"),
    "replay": (
        "replay_cmd",
        "replay a capture's real schedule through the KVM vPMU model under chosen scenarios",
    ),
    "compare": (
        "compare_cmd",
        "compare default, set-pmu per host PMU, fixed-counters-only and no-pmu on one capture",
    ),
    "export": (
        "export_cmd",
        "write replay results as a Perfetto trace (open it with `pmu-replay view`)",
    ),
    "report": (
        "report_cmd",
        "write replay results as one self-contained HTML report (verdict, host, ranking, charts)",
    ),
    "view": (
        "view_cmd",
        "serve a Perfetto trace and the Perfetto UI on localhost; print the URL (--open: open it)",
    ),
    "record": (
        "record_cmd",
        "record the scheduling and KVM events replay needs, plus topology and threads (root)",
    ),
    "demo": (
        "demo_cmd",
        "replay the embedded capture under every KVM vPMU mode, recommend one, write a Perfetto "
        "trace and an HTML report",
    ),
    "fleet": (
        "fleet_cmd",
        "replay many captures on a Dask cluster into one dataset, with a fleet summary",
    ),
    "validate": (
        "validate_cmd",
        "replay a real KVM capture under its scenario and compare with what the guest read",
    ),
}


def summary(command: str) -> str:
    """The one-line summary of ``command`` (its ``--help`` description and listing)."""
    return COMMANDS[command][1]
