"""Short scenario names for narrow terminals, the same in every table, with one legend.

At 80 columns a table cannot give ``set-pmu:armv8_cortex_a53`` its 24 characters, and rich
would cut it to ``set-pmu…`` — which no longer says which PMU, and two set-pmu rows then read
the same. Instead every scenario gets one short name built from its parts (``dflt@0``,
``set:a53``, ``fixed+v8``, ``no-pmu``, quirks by their initials: ``+ao`` for
``+architectural-overflow``), used in every table, and the legend spelling them out is printed
once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import JustifyMethod
from rich.table import Table

from replay.commands.console import stdout

#: Mode label (``replay.scenarios.MODES``) -> its short form.
_MODES = {"default": "dflt", "set-pmu": "set", "fixed-counters-only": "fixed", "no-pmu": "no-pmu"}
#: Suffix parts this long or shorter (``v8``, ``n4``) stay as they are.
_KEEP = 3


def short_names(scenarios: Sequence[str]) -> dict[str, str]:
    """Scenario name -> a short name, unique among ``scenarios`` (see module docstring).

    A name of a shape this module does not know is kept whole.
    """
    parsed = {name: _parts(name) for name in scenarios}
    pmus = _distinct({p[1] for p in parsed.values() if p[0] == "set-pmu"})
    out: dict[str, str] = {}
    for name, (mode, arg, extras) in parsed.items():
        if mode not in _MODES:
            out[name] = name
            continue
        short = _MODES[mode]
        if mode == "default":
            short += "@" + arg.removeprefix("cpu")
        elif mode == "set-pmu":
            short += ":" + pmus[arg]
        out[name] = short + "".join(f"+{_initials(e)}" for e in extras)
    return _unique(out)


def _parts(name: str) -> tuple[str, str, list[str]]:
    """``set-pmu:a+v8`` -> ``("set-pmu", "a", ["v8"])``."""
    base, *extras = name.split("+")
    mode, _, arg = base.partition("@") if "@" in base else base.partition(":")
    return mode, arg, extras


def _initials(part: str) -> str:
    if len(part) <= _KEEP:
        return part
    return "".join(word[0] for word in part.split("-") if word)


def _distinct(pmus: set[str]) -> dict[str, str]:
    """PMU name -> the part that tells it from the others: the common ``_``-separated prefix
    and suffix dropped (``armv8_cortex_a53`` -> ``a53``)."""
    if len(pmus) == 1:
        (only,) = pmus
        return {only: only.split("_")[-1] or only}
    words = {p: p.split("_") for p in pmus}
    lists = list(words.values())
    head = 0
    while all(len(w) > head + 1 for w in lists) and len({w[head] for w in lists}) == 1:
        head += 1
    tail = 0
    while all(len(w) > head + tail + 1 for w in lists) and len({w[-1 - tail] for w in lists}) == 1:
        tail += 1
    return {p: "_".join(w[head : len(w) - tail]) for p, w in words.items()}


def _unique(short: dict[str, str]) -> dict[str, str]:
    """Numbers the second and later scenarios that came out with the same short name."""
    seen: dict[str, int] = {}
    out = {}
    for name, s in short.items():
        seen[s] = seen.get(s, 0) + 1
        out[name] = s if seen[s] == 1 else f"{s}~{seen[s]}"
    return out


@dataclass(frozen=True)
class ScenarioNames:
    """How one report prints scenario names: whole, or short with a legend.

    Short names come with tables whose cells fold rather than cut text (rich's default
    ellipsis would hide what tells two rows apart).
    """

    short: dict[str, str]

    @classmethod
    def full(cls) -> ScenarioNames:
        return cls({})

    @classmethod
    def shortened(cls, scenarios: Sequence[str]) -> ScenarioNames:
        return cls(short_names(scenarios))

    def __call__(self, scenario: str) -> str:
        return self.short.get(scenario, scenario)

    def table(self, title: str) -> Table:
        """A table titled ``title``; compact (light rules, one space between columns) when the
        names are short."""
        if not self.short:
            return Table(title=title, title_justify="left")
        return Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,  # its column divider is one space: no padding needed
            padding=0,
        )

    def add_column(
        self,
        table: Table,
        wide: str,
        compact: str,
        justify: JustifyMethod = "left",
        whole: int | None = None,
    ) -> None:
        """A column headed ``wide``, or ``compact`` with short names. A compact column folds
        long text onto more lines instead of cutting it; the scenario column never folds, nor
        does a column of names as long as ``whole`` at most (a vCPU folded in two reads as
        two)."""
        if not self.short:
            table.add_column(wide, justify=justify)
            return
        if wide == "scenario":
            whole = max(map(len, self.short.values()))
        table.add_column(
            compact,
            justify=justify,
            overflow="fold",
            no_wrap=whole is not None,
            min_width=whole,
        )


def print_legend(names: ScenarioNames) -> None:
    """The short names and what they stand for, once, before the first table."""
    legend = Table.grid(padding=(0, 2))
    legend.add_column(style="bold")
    legend.add_column(overflow="fold")
    for full, short in names.short.items():
        legend.add_row(short, full)
    stdout.print("short scenario names in the tables below (--wide prints them whole):")
    stdout.print(legend)
