"""Host side: the CPU PMUs a host registers with KVM, in registration order (spec §1.1).

A :class:`HostPmu` is one ``struct arm_pmu`` (one per micro-architecture on big.LITTLE);
:class:`HostPmus` is KVM's ``arm_pmus`` list plus the host facts KVM derives from it: the
sanitised PMU version, whether a vPMU is offered at all, and which PMU covers a CPU. A
:class:`Reservation` is a host condition: hardware counters the host's own CPU-pinned perf events
hold on a CPU (the hard-lockup detector's cycles event, a profiling agent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from importers.errors import TopologyError
from importers.host.pmuv3 import MAX_EVENT_COUNTERS, PmuVer, Reservation
from replay.pmu.arch import MASK64, pmuv3_implemented

#: Default general-purpose counter count: Cortex-A53, A55, A57, A72 and A76 all implement 6.
DEFAULT_NUM_COUNTERS = 6
#: Default PMU version: PMUv3p1 (Armv8.1+ cores such as Cortex-A55/A76), 16-bit event space.
DEFAULT_PMUVER = PmuVer.V3P1
#: Default common-event bitmaps (PMCEID0, PMCEID1), in the layout of ``__compute_pmceid()``:
#: low word = events 0x00-0x1F (resp. 0x20-0x3F), high word = 0x4000-0x401F (resp. 0x4020-).
#: 0x67FFBFFF is the Cortex-A53 set (TRM DDI 0500 table 12-6): events 0x00-0x0D, 0x0F-0x1A,
#: 0x1D and 0x1E; it implements nothing at 0x20 and above.
DEFAULT_PMCEID = (0x67FF_BFFF, 0x0)
#: First perf ``type`` handed to dynamically registered PMUs when none is given. Real values
#: come from ``/sys/bus/event_source/devices/<name>/type``.
FIRST_DYNAMIC_PERF_TYPE = 8


@dataclass(frozen=True, slots=True)
class HostPmu:
    """One registered host CPU PMU (``struct arm_pmu``).

    Parameters
    ----------
    name
        perf PMU name, e.g. ``armv8_cortex_a53`` (DT) or ``armv8_pmuv3_0`` (ACPI).
    perf_type
        perf ``type`` id (``arm_pmu->pmu.type``), the value ``SET_PMU`` takes.
    cpus
        ``supported_cpus``.
    num_counters
        General-purpose counters (``bitmap_weight(cntr_mask, 31)``), 0..31.
    pmuver
        ``ID_AA64DFR0_EL1.PMUVer`` of these CPUs.
    pmceid
        ``(PMCEID0, PMCEID1)`` as 64-bit values: common events and, in the high words, the
        extended events 0x4000+.
    mappable_events
        For a non-PMUv3 PMU whose driver provides ``map_pmuv3_event`` (Apple M1/M2): the PMUv3
        event numbers it translates; ``kvm_map_pmu_event()`` refuses every other. ``None`` for
        PMUv3 hardware, which counts PMUv3 event numbers as they are.
    """

    name: str
    perf_type: int
    cpus: frozenset[int]
    num_counters: int = DEFAULT_NUM_COUNTERS
    pmuver: int = DEFAULT_PMUVER
    pmceid: tuple[int, int] = DEFAULT_PMCEID
    mappable_events: frozenset[int] | None = None

    def __post_init__(self) -> None:
        where = f"host PMU {self.name!r}"
        if not self.name:
            raise TopologyError("a host PMU needs a non-empty name")
        if not self.cpus or min(self.cpus) < 0:
            raise TopologyError(f"{where}: supported CPUs must be a non-empty set of CPU ids >= 0")
        if not 0 <= self.num_counters <= MAX_EVENT_COUNTERS:
            raise TopologyError(
                f"{where}: {self.num_counters} general-purpose counters; PMUv3 allows 0..31"
            )
        if not 0 <= self.pmuver <= 0xF:
            raise TopologyError(f"{where}: PMUVer {self.pmuver} is not a 4-bit field value")
        if len(self.pmceid) != 2 or any(not 0 <= w <= MASK64 for w in self.pmceid):
            raise TopologyError(f"{where}: pmceid must be two 64-bit values")

    def maps_event(self, eventsel: int) -> bool:
        """Mirror ``kvm_map_pmu_event() >= 0``: the driver's ``map_pmuv3_event`` translates the
        event (PMUv3 hardware counts every PMUv3 event number as it is)."""
        return self.mappable_events is None or eventsel in self.mappable_events


class HostPmus:
    """KVM's ``arm_pmus`` list and the host facts derived from it (spec §1.1, §5.3).

    Parameters
    ----------
    pmus
        The host's CPU PMUs in registration order (``kvm_host_pmu_init()`` appends with
        ``list_add_tail``).
    possible_cpus
        ``cpu_possible_mask``; defaults to the union of the PMUs' CPUs. CPUs listed here but
        covered by no PMU are PMUv3 CPUs without a registered ``arm_pmu`` (spec §1.5 item 4).
    cpu_pmuver
        Per-CPU ``PMUVer`` overrides. A CPU covered by a PMU reports that PMU's version, any
        other CPU the version of the first PMU, unless overridden here (0 = no PMUv3).
    aarch32_el0
        Whether the host supports AArch32 EL0 (``kvm_supports_32bit_el0()``); without it
        ``PMCR_EL0.LC`` is RES1.
    impdef_traps
        Apple-style IMPDEF PMUv3 traps (``ARM64_WORKAROUND_PMUV3_IMPDEF_TRAPS``): the guest sees
        PMUv3 ``IMP`` and one event counter.
    reserved
        Per CPU, the counters the host's own pinned events hold (none unless stated).
    """

    __slots__ = (
        "_by_cpu",
        "_by_name",
        "_by_type",
        "aarch32_el0",
        "cpu_pmuver",
        "impdef_traps",
        "pmus",
        "possible_cpus",
        "registered",
        "reserved",
        "union_cpus",
    )

    def __init__(
        self,
        pmus: Iterable[HostPmu],
        *,
        possible_cpus: Iterable[int] | None = None,
        cpu_pmuver: Mapping[int, int] | None = None,
        aarch32_el0: bool = True,
        impdef_traps: bool = False,
        reserved: Mapping[int, Reservation] | None = None,
    ) -> None:
        self.pmus: tuple[HostPmu, ...] = tuple(pmus)
        self._by_name = {p.name: p for p in self.pmus}
        self._by_type = {p.perf_type: p for p in self.pmus}
        if len(self._by_name) != len(self.pmus) or len(self._by_type) != len(self.pmus):
            raise TopologyError("host PMU names and perf types must be unique")
        covered = frozenset().union(*(p.cpus for p in self.pmus))
        self.possible_cpus = frozenset(covered if possible_cpus is None else possible_cpus)
        if not self.possible_cpus:
            raise TopologyError("the host has no CPUs: give at least one PMU or possible CPU")
        if not covered <= self.possible_cpus:
            extra = sorted(covered - self.possible_cpus)
            raise TopologyError(f"PMU CPUs {extra} are not in the host's possible CPUs")
        self.aarch32_el0 = aarch32_el0
        self.impdef_traps = impdef_traps
        self.reserved: Mapping[int, Reservation] = dict(reserved or {})
        if not self.reserved.keys() <= self.possible_cpus:
            extra = sorted(self.reserved.keys() - self.possible_cpus)
            raise TopologyError(f"reserved counters on CPUs {extra}, which the host does not have")
        default_ver = self.pmus[0].pmuver if self.pmus else PmuVer.NI
        versions = {cpu: default_ver for cpu in self.possible_cpus}
        for pmu in reversed(self.pmus):  # first PMU in registration order wins on overlap
            versions.update(dict.fromkeys(pmu.cpus, pmu.pmuver))
        versions.update(cpu_pmuver or {})
        self.cpu_pmuver: Mapping[int, int] = versions
        # kvm_host_pmu_init(): no PMU is registered unless the sanitised PMUVer is real PMUv3.
        self.registered: tuple[HostPmu, ...] = (
            self.pmus if pmuv3_implemented(self.pmuver_limit()) else ()
        )
        self.union_cpus = frozenset().union(*(p.cpus for p in self.registered))
        self._by_cpu: dict[int, HostPmu] = {}
        for pmu in reversed(self.registered):
            self._by_cpu.update(dict.fromkeys(pmu.cpus, pmu))

    @classmethod
    def from_topology(
        cls,
        cpu_pmu: Mapping[int, str | None],
        *,
        perf_types: Mapping[str, int] | None = None,
        num_counters: int = DEFAULT_NUM_COUNTERS,
        pmuver: int = DEFAULT_PMUVER,
        pmceid: tuple[int, int] = DEFAULT_PMCEID,
        aarch32_el0: bool = True,
    ) -> HostPmus:
        """Build the PMU list from a CPU -> PMU-name topology alone.

        PMUs register in order of their lowest CPU (DT probe order); CPUs mapped to ``None``
        have PMUv3 but no registered PMU. Every PMU gets the given counter count, version and
        event bitmaps, and perf types ``FIRST_DYNAMIC_PERF_TYPE``, +1, ... unless ``perf_types``
        names them.

        Parameters
        ----------
        cpu_pmu
            CPU id -> PMU name (or ``None``) for every possible CPU.
        perf_types
            Optional PMU name -> perf type.
        num_counters, pmuver, pmceid
            Per-PMU defaults documented on this module's constants.
        aarch32_el0
            See :class:`HostPmus`.

        Returns
        -------
        HostPmus
        """
        groups: dict[str, set[int]] = {}
        for cpu in sorted(cpu_pmu):
            name = cpu_pmu[cpu]
            if name is not None:
                groups.setdefault(name, set()).add(cpu)
        types = dict(perf_types or {})
        pmus = [
            HostPmu(
                name=name,
                perf_type=types.get(name, FIRST_DYNAMIC_PERF_TYPE + i),
                cpus=frozenset(cpus),
                num_counters=num_counters,
                pmuver=pmuver,
                pmceid=pmceid,
            )
            for i, (name, cpus) in enumerate(groups.items())
        ]
        return cls(pmus, possible_cpus=cpu_pmu.keys(), aarch32_el0=aarch32_el0)

    @property
    def sanitised_pmuver(self) -> int:
        """``ID_AA64DFR0_EL1.PMUVer`` sanitised over all CPUs (``FTR_EXACT``: 0 if they differ)."""
        versions = set(self.cpu_pmuver.values())
        return versions.pop() if len(versions) == 1 else PmuVer.NI

    def pmuver_limit(self) -> int:
        """Mirror ``kvm_arm_pmu_get_pmuver_limit()``: the PMU version a guest can be given."""
        if self.impdef_traps:
            return PmuVer.IMP
        pmuver = self.sanitised_pmuver
        if pmuver == PmuVer.IMP_DEF:
            return PmuVer.NI
        return min(pmuver, PmuVer.V3P5)

    def supports_guest_pmuv3(self) -> bool:
        """Mirror ``kvm_supports_guest_pmuv3()``: a vPMU is offered iff a PMU is registered."""
        return bool(self.registered)

    def probe_armpmu(self, cpu: int) -> HostPmu | None:
        """Mirror ``kvm_pmu_probe_armpmu(cpu)``: first registered PMU whose CPUs include ``cpu``."""
        return self._by_cpu.get(cpu)

    def by_type(self, perf_type: int) -> HostPmu | None:
        """The registered PMU with ``pmu.type == perf_type`` (the ``SET_PMU`` lookup)."""
        pmu = self._by_type.get(perf_type)
        return pmu if pmu is not None and self.registered else None

    def by_name(self, name: str) -> HostPmu | None:
        """The host PMU called ``name`` (registered or not)."""
        return self._by_name.get(name)

    def max_counters(self, pmu: HostPmu) -> int:
        """Mirror ``kvm_arm_pmu_get_max_counters()`` for a VM bound to ``pmu``: its general-purpose
        counters, or 1 with ``ARM64_WORKAROUND_PMUV3_IMPDEF_TRAPS`` (non-PMUv3 hardware need not
        count every event on every counter, as PMUv3 requires)."""
        return 1 if self.impdef_traps else pmu.num_counters

    def __repr__(self) -> str:
        pmus = ", ".join(f"{p.name}(type={p.perf_type}, cpus={sorted(p.cpus)})" for p in self.pmus)
        return f"HostPmus([{pmus}], possible_cpus={sorted(self.possible_cpus)})"
