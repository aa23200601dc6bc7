"""One module per ``pmu-replay`` subcommand, each with ``register(subparsers)``."""
