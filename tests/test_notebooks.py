"""The notebooks run top to bottom on the current code (they cannot rot), and show their plots."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: A cell that makes a figure: it must show it (inline) and save it (kept for CI).
PLOTTING = re.compile(r"\bplt\.(subplots|figure)\(")
SAVED = re.compile(r"savefig\(FIGURES / \"([^\"]+)\"")
IMAGES = ("image/png", "image/svg+xml")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_and_shows_every_plot(path: Path, request: pytest.FixtureRequest) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if "../shared/traces" in path.read_text():
        # only a notebook reading the real captures skips without them
        request.getfixturevalue("shared_traces")
    notebook = nbformat.read(path, as_version=4)
    plotting = [c for c in notebook.cells if c.cell_type == "code" and PLOTTING.search(c.source)]
    assert plotting, f"{path.name} has no plotting cell: the check below would be empty"
    saved = [
        ROOT / "benchmarks" / "out" / "notebooks" / n
        for c in plotting
        for n in SAVED.findall(c.source)
    ]
    for figure in saved:
        figure.unlink(missing_ok=True)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    # raises CellExecutionError, with the cell and its traceback, at the first failing cell
    client.execute()
    for cell in plotting:
        shown = [o for o in cell.outputs if _images(o)]
        assert shown, f"{path.name}: a plotting cell shows no image:\n{cell.source[:300]}"
    assert len(saved) == len(plotting)
    assert all(f.stat().st_size > 0 for f in saved)


def _images(output: Any) -> list[str]:
    return [kind for kind in IMAGES if kind in output.get("data", {})]
