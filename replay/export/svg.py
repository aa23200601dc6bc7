"""Matplotlib figures as inline SVG that follows the page's colour scheme, byte for byte stable.

The report's charts are drawn with matplotlib's SVG backend (a static picture: no script runs
in the reader's mail client or browser). Figures are drawn in *placeholder* colours — hex
values no real chart uses — and the SVG text then has each placeholder replaced by a CSS custom
property (``var(--ink)``, ``var(--s0)``, …). The report's stylesheet (:func:`css_variables`)
gives those properties one value in light mode and another under ``prefers-color-scheme: dark``,
so the same SVG reads well in both.

Same figure, same bytes: ``svg.hashsalt`` is fixed (per chart, so the ids of clip paths and
markers of two charts on one page never collide), the ``Date`` and ``Creator`` metadata are
left out, and text stays text (``svg.fonttype = none``: smaller, selectable, no glyph paths
that depend on the installed fonts' hinting).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from importers.errors import UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Placeholder colours -> CSS custom properties. Foreground ink, muted ink, grid lines.
INK, MUTED, GRID = "#0a0b0c", "#0a0b0d", "#0a0b0e"
#: Placeholders of the series palette, in the order series take them.
SERIES = tuple(f"#0a0c{i:02x}" for i in range(1, 9))
#: Light and dark values of every custom property: Okabe-Ito's colour-blind-safe palette, with
#: lighter tints in dark mode so each series keeps its contrast against the background.
_LIGHT = {
    "ink": "#1b1f24",
    "muted": "#59636e",
    "grid": "#d0d7de",
    "s0": "#0072b2",
    "s1": "#e69f00",
    "s2": "#009e73",
    "s3": "#cc79a7",
    "s4": "#d55e00",
    "s5": "#56b4e9",
    "s6": "#8a6d00",
    "s7": "#6a3d9a",
}
_DARK = {
    "ink": "#e6edf3",
    "muted": "#9da7b3",
    "grid": "#3d444d",
    "s0": "#56b4e9",
    "s1": "#f0b341",
    "s2": "#3fcf9f",
    "s3": "#e3a1c8",
    "s4": "#ff8a4c",
    "s5": "#9fd6f5",
    "s6": "#e8d44d",
    "s7": "#b7a1e0",
}
_PLACEHOLDERS = {INK: "ink", MUTED: "muted", GRID: "grid"} | {
    colour: f"s{i}" for i, colour in enumerate(SERIES)
}
_STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9.0,
    "text.color": INK,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.facecolor": "none",
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelcolor": INK,
    "ytick.labelcolor": INK,
    "legend.frameon": False,
    "figure.facecolor": "none",
    "savefig.facecolor": "none",
    "savefig.edgecolor": "none",
    "hatch.color": INK,
}
#: matplotlib names the groups it writes ``figure_1``, ``axes_2``, …: the same in every chart.
_PLAIN_ID = re.compile(r'id="([A-Za-z][A-Za-z0-9.]*_\d+)"')
_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_SIZE = re.compile(r'<svg([^>]*?) width="[^"]*" height="[^"]*"')


def css_variables() -> str:
    """The stylesheet rules that give the placeholders their light and dark colours."""

    def block(values: dict[str, str]) -> str:
        return " ".join(f"--{name}: {value};" for name, value in values.items())

    return (
        f":root {{ {block(_LIGHT)} }}\n"
        f"@media (prefers-color-scheme: dark) {{ :root {{ {block(_DARK)} }} }}\n"
    )


def series_var(i: int) -> str:
    """The CSS colour of series ``i`` (for HTML swatches beside a chart)."""
    return f"var(--s{i % len(SERIES)})"


def _require_matplotlib() -> None:
    """Fail clearly when matplotlib is missing (it is a dependency; a broken install)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "the HTML report draws its charts with matplotlib, which is not installed here: "
            "pip install 'matplotlib>=3.8' (or reinstall pmu-replay)"
        ) from None


@contextmanager
def drawing(salt: str) -> Iterator[None]:
    """Matplotlib settings of the report's charts, ``salt`` keeping this chart's ids apart."""
    _require_matplotlib()
    import matplotlib as mpl
    from cycler import cycler

    # Any: matplotlib types rc_context's keys as a Literal of every rcParam name
    style: Any = _STYLE | {"axes.prop_cycle": cycler(color=list(SERIES)), "svg.hashsalt": salt}
    with mpl.rc_context(style):
        yield


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure drawn off-screen (no pyplot, so no global figure list and no GUI backend)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def to_svg(fig: Figure, name: str) -> str:
    """``fig`` as an ``<svg>`` element to inline in HTML, coloured through CSS variables.

    Call inside :func:`drawing` (the settings apply when the SVG is written). ``name`` prefixes
    the element ids matplotlib numbers the same way in every chart.
    """
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = _PROLOG.sub("", out.getvalue(), count=1)
    text = _METADATA.sub("", text, count=1)
    # Sized by the page (CSS), drawn by its viewBox.
    text = _SIZE.sub(r"<svg\1", text, count=1)
    text = _PLAIN_ID.sub(lambda m: f'id="{name}-{m.group(1)}"', text)
    for colour, var in _PLACEHOLDERS.items():
        text = text.replace(colour, f"var(--{var})")
    return text.strip()
