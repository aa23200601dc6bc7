"""pmu-replay: replay real scheduling histories through a model of KVM's arm64 vPMU."""

__version__ = "0.1.0"
