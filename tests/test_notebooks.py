"""The research notebooks run top to bottom (their cells assert their own claims), show
their figures inline, and their stored .ipynb matches the plain-text form, without outputs."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))


def test_there_are_three_notebooks() -> None:
    assert {p.stem for p in SOURCES} == {
        "compare_constraint_sets",
        "emergency_drill",
        "debate_sensitivity",
    }


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_stored_notebook_matches_its_text_form_and_has_no_outputs(source: Path) -> None:
    stored = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    paired = jupytext.read(source)
    assert [c.source for c in stored.cells] == [c.source for c in paired.cells]
    assert all(not c.get("outputs") for c in stored.cells if c.cell_type == "code")


IMAGES = ("image/png", "image/svg+xml")


def images(notebook: nbformat.NotebookNode) -> int:
    """How many outputs of the notebook's code cells are figures."""
    return sum(
        any(kind in output.get("data", {}) for kind in IMAGES)
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_and_shows_its_figures(source: Path) -> None:
    notebook = jupytext.read(source)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # a failing cell (an assertion of the notebook's claims) raises here
    # Inline figures, at least two in each: a package that forced a non-interactive
    # backend at import would drop those a notebook draws with pyplot, and a plot that
    # drew nowhere would leave none.
    assert images(notebook) >= 2, f"{source.stem}: {images(notebook)} figure outputs"


def test_a_notebook_without_figures_is_told_apart() -> None:
    """The check above counts figures, not outputs: text and tables alone give none."""
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1")
    cell.outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "<Figure size 800x400>"}),
        nbformat.v4.new_output("display_data", {"text/html": "<table></table>"}),
    ]
    notebook.cells.append(cell)
    assert images(notebook) == 0
    cell.outputs.append(nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo="}))
    assert images(notebook) == 1
