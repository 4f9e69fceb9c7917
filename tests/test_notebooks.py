"""The research notebooks run top to bottom (their cells assert their own claims) and their
stored .ipynb matches the plain-text form, without outputs."""

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


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(source: Path) -> None:
    notebook = jupytext.read(source)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # a failing cell (an assertion of the notebook's claims) raises here
