"""Research helpers: compare, sweep (one compiled program), and the plots."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from riskopt.data import SAMPLES
from riskopt.data.errors import BookLoadError
from riskopt.optimizer import rebalance, research
from riskopt.optimizer.program import ProgramCache


def test_compare_gives_one_row_per_set(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    table = research.compare(
        book, dec, {"default": "default", "conservative": "conservative"}, risk_aversion=1.0
    )
    assert list(table.index) == ["default", "conservative"]
    for column in (
        "volatility",
        "gross",
        "net",
        "turnover",
        "tracking",
        "OK",
        "SCALED_DOWN",
        "CAPPED",
        "REJECTED",
        "largest_sector",
        "binding",
        "seconds",
    ):
        assert column in table.columns
    assert table.loc["conservative", "gross"] < table.loc["default", "gross"]
    assert list(table["state"]) == ["ELEVATED", "ELEVATED"]  # no state: each set's default


def test_sweep_builds_the_program_once_and_traces_a_frontier(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    cache = ProgramCache()
    values = [0.9, 1.1, 1.3, 1.6]
    swept = research.sweep(book, dec, "default", "gross", values, state="NORMAL", cache=cache)
    assert cache.builds == 1 and swept.attrs["programs_built"] == 1
    assert swept["gross"].is_monotonic_increasing  # a looser cap never lowers gross
    assert swept["tracking"].is_monotonic_decreasing  # and never moves further from the proposal

    # Keeping Clarabel's solver between values: the same frontier, to the tolerance.
    kept = ProgramCache(reuse_solver=True)
    again = research.sweep(book, dec, "default", "gross", values, state="NORMAL", cache=kept)
    (program,) = kept._programs.values()
    assert program._direct is not None and program._direct.reused >= 1
    numbers = ["volatility", "gross", "net", "turnover", "tracking"]
    assert (again[numbers] - swept[numbers]).abs().max().max() < 1e-9
    labels = ["OK", "SCALED_DOWN", "CAPPED", "REJECTED"]
    assert again[labels].equals(swept[labels])


def test_plots_return_figures_and_save_pngs(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    result = rebalance(book, dec, "default", state="NORMAL", risk_aversion=1.0)
    swept = research.sweep(book, dec, "default", "position", [0.02, 0.05])
    assert list(swept["state"]) == ["ELEVATED", "ELEVATED"]  # no state: the set's default
    figures = {
        "sectors": research.plot_sector_exposures(result, book, save=tmp_path / "sectors.png"),
        "labels": research.plot_label_counts({"default": result}, save=tmp_path / "labels.png"),
        "frontier": research.plot_frontier(swept, save=tmp_path / "frontier.png"),
        "overrides": research.plot_overrides_by_strategy(result, save=tmp_path / "overrides.png"),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure)
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_compare_and_sweep_take_a_book_directory_and_a_decisions_file(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    numbers = ["status", "state", "gamma", "volatility", "gross", "net", "turnover", "tracking"]
    sets = {"default": "default", "conservative": "conservative"}
    given = research.compare(book, dec, sets, risk_aversion=1.0)
    for source in (SAMPLES / "book", str(SAMPLES / "book")):
        read = research.compare(source, SAMPLES / "decisions.csv", sets, risk_aversion=1.0)
        assert read[numbers].equals(given[numbers])
    values = [0.9, 1.3]
    swept = research.sweep(book, dec, "default", "gross", values, state="NORMAL")
    from_path = research.sweep(SAMPLES / "book", dec, "default", "gross", values, state="NORMAL")
    assert from_path.drop(columns="seconds").equals(swept.drop(columns="seconds"))


def test_compare_refuses_a_book_that_cannot_be_loaded(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, dec = sample
    with pytest.raises(BookLoadError, match="book directory not found"):
        research.compare(tmp_path / "none", dec, {"default": "default"})
