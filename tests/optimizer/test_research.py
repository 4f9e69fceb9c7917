"""Research helpers: compare at one γ, sweep (one compiled program), the frontier, the caps
a sweep applied, factor exposures, and the plots (built without touching the backend)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from riskopt.constraints.config import ConstraintSet
from riskopt.data import SAMPLES
from riskopt.data.book import Book
from riskopt.data.errors import BookLoadError, ValidationError
from riskopt.optimizer import rebalance, research
from riskopt.optimizer.program import ProgramCache

SETS = {"default": "default", "conservative": "conservative", "long_only": "long_only"}


def test_compare_gives_one_row_per_set(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    table = research.compare(
        book, dec, {"default": "default", "conservative": "conservative"}, gamma=1.0
    )
    assert list(table.index) == ["default", "conservative"]
    for column in (
        "volatility",
        "gross",
        "net",
        "turnover",
        "tracking",
        "tracking_error",
        "OK",
        "SCALED_DOWN",
        "CAPPED",
        "REJECTED",
        "largest_sector",
        "binding",
        "seconds",
        "gamma_source",
    ):
        assert column in table.columns
    assert table.loc["conservative", "gross"] < table.loc["default", "gross"]
    assert list(table["state"]) == ["ELEVATED", "ELEVATED"]  # no state: each set's default
    assert list(table["gamma_source"]) == ["given", "given"]
    assert (table["gamma"] == 1.0).all()  # above both sets' ELEVATED floor


def test_compare_holds_one_gamma_unless_each_set_runs_its_own_debate(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    own = {name: rebalance(book, dec, name, state="NORMAL").run.gamma for name in SETS}
    assert len({round(g, 9) for g in own.values()}) == len(SETS)  # the debates disagree

    held = research.compare(book, dec, SETS, state="NORMAL")
    assert np.allclose(held["gamma"], own["default"])  # the first set's debate, for all
    assert set(held["gamma_source"]) == {"debate on default"}

    debated = research.compare(book, dec, SETS, state="NORMAL", debate=True)
    assert np.allclose(debated["gamma"], pd.Series(own))
    assert set(debated["gamma_source"]) == {"own debate"}
    # The first set runs with the same γ both ways; only its per-name γ_i differ.
    assert held.loc["default", "gamma"] == debated.loc["default", "gamma"]

    given = research.compare(book, dec, SETS, state="NORMAL", gamma=0.5)
    assert np.allclose(given["gamma"], 0.5) and set(given["gamma_source"]) == {"given"}
    # At one γ a looser set never sits further from the proposal than a stricter one.
    assert given.loc["default", "tracking"] < given.loc["conservative", "tracking"]


def test_compare_refuses_a_gamma_beside_its_own_debate(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    with pytest.raises(ValidationError, match=r"its own debate's γ, not at 0\.5"):
        research.compare(book, dec, SETS, gamma=0.5, debate=True)
    with pytest.raises(ValidationError, match="disagree"):
        research.compare(book, dec, SETS, gamma=0.5, risk_aversion=1.0)


def test_a_gamma_sweep_applies_the_states_floor(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    floor = ConstraintSet.load("default").states.sop("ELEVATED").risk_aversion_floor
    swept = research.sweep(book, dec, "default", "gamma", [0.0, 0.5], state="ELEVATED")
    assert swept.attrs["parameter"] == "gamma"
    assert list(swept["value"]) == [0.0, 0.5]
    assert list(swept["applied"]) == [floor, 0.5] == list(swept["gamma"])


@pytest.mark.parametrize(
    ("parameter", "values"),
    [("volatility", [0.10, 0.03, 0.05, 0.04, 0.08]), ("gamma", [0.0, 10.0, 0.3, 3.0, 1.0])],
)
def test_the_frontier_loosens_monotonically(sample, parameter: str, values: list[float]) -> None:  # type: ignore[no-untyped-def]
    """As the cap loosens (or γ falls), tracking error to the proposal never rises and
    ex-ante risk never falls: a frontier, not a zig-zag."""
    book, dec = sample
    line = research.frontier(book, dec, "default", parameter, values, state="NORMAL")
    loosening = line["value"] if parameter != "gamma" else -line["value"]
    assert loosening.is_monotonic_increasing
    assert (np.diff(line["tracking_error"]) <= 1e-6).all()
    assert (np.diff(line["volatility"]) >= -1e-6).all()
    assert line["tracking_error"].iloc[0] > line["tracking_error"].iloc[-1] + 1e-3
    assert line["volatility"].iloc[0] < line["volatility"].iloc[-1] - 1e-3
    if parameter == "gamma":
        assert np.allclose(line["gamma"], line["value"])  # NORMAL has no floor above 0


def test_tracking_error_is_the_distance_in_the_full_covariance(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    result = rebalance(book, dec, "default", state="NORMAL", risk_aversion=1.0)
    t = result.targets
    model = book.risk_model
    b = model.loadings.loc[t.index].to_numpy()
    sigma = b @ model.factor_cov.to_numpy() @ b.T + np.diag(model.specific_var.loc[t.index])
    d = (t["target_weight"] - t["proposed_weight"]).to_numpy()
    assert research.tracking_error(result, book) == pytest.approx(np.sqrt(d @ sigma @ d), rel=1e-9)
    assert research.tracking_error(result, book) > 0


def test_factor_exposures_give_back_the_runs_volatility(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    result = rebalance(book, dec, "default", state="NORMAL", risk_aversion=1.0)
    frame = research.factor_exposures(result, book)
    assert list(frame.columns) == ["before", "proposed", "after"]
    assert list(frame.index) == book.risk_model.factors
    model = book.risk_model
    h = result.targets["target_weight"].to_numpy()
    f = frame["after"].to_numpy()
    specific = (model.specific_var.loc[result.targets.index].to_numpy() * h * h).sum()
    volatility = np.sqrt(f @ model.factor_cov.to_numpy() @ f + specific)
    assert volatility == pytest.approx(result.run.exposures_after["volatility"], rel=1e-9)
    assert not np.allclose(frame["before"], frame["after"])  # the run moved the exposures


def _in_drawdown(book: Book, depth: float) -> Book:
    """The book with a NAV peak ``1 / (1 − depth)`` times today's NAV a month ago."""
    peak = pd.Series(
        [book.nav / (1 - depth)], index=[pd.Timestamp(book.as_of) - pd.Timedelta(days=30)]
    )
    return dataclasses.replace(book, nav_history=pd.concat([peak, book.nav_history]).sort_index())


@pytest.mark.parametrize("state", ["NORMAL", "ELEVATED"])
def test_a_sweep_reports_the_cap_it_applied_under_a_drawdown(sample, state: str) -> None:  # type: ignore[no-untyped-def]
    """Drawdown 10% against a 15% budget: m = (0.15 − 0.10) / (0.15 × 0.90) of every gross
    and volatility cap, after the state's own multiplier."""
    book, dec = sample
    deep = _in_drawdown(book, 0.10)
    cs = ConstraintSet.load("default")
    m = (cs.drawdown.budget - 0.10) / (cs.drawdown.budget * (1 - 0.10))
    values = np.array([0.8, 1.2, 1.6])
    swept = research.sweep(deep, dec, cs, "gross", values, state=state)
    expected = values * cs.states.sop(state).gross * m
    assert np.allclose(swept["value"], values)
    assert np.allclose(swept["applied"], expected, rtol=1e-9)
    # The loosest value binds at the scaled cap, far below the configured one; the
    # tightest cannot be met within a day's liquidity, and its breach names that cap.
    assert swept["gross"].iloc[-1] == pytest.approx(swept["applied"].iloc[-1], abs=1e-4)
    assert swept["gross"].iloc[-1] < 0.5 * values[-1]
    tight = rebalance(deep, dec, cs.replace(**{"exposure.gross.max": 0.8}), state=state)
    (breach,) = [b for b in tight.breaches if b["constraint"] == "exposure.gross.max"]
    assert breach["limit"] == pytest.approx(swept["applied"].iloc[0], rel=1e-9)

    vols = np.array([0.05, 0.10])
    risk = research.sweep(deep, dec, cs, "volatility", vols, state=state)
    assert np.allclose(risk["applied"], vols * cs.states.sop(state).volatility * m, rtol=1e-9)
    assert (risk["volatility"] < vols).all()

    # A limit neither the state nor the drawdown scales is applied as configured.
    trade = research.sweep(deep, dec, cs, "trade", [0.05], state=state)
    assert trade["applied"].iloc[0] == pytest.approx(0.05)


MPL_IMPORTS = (
    "import matplotlib, riskopt, riskopt.optimizer.research, riskopt.optimizer.report;"
    "from riskopt.optimizer import research;"
    "print(matplotlib.rcParams._get_backend_or_none())"
)


@pytest.mark.parametrize("backend", ["module://matplotlib_inline.backend_inline", "svg", None])
def test_importing_the_package_leaves_the_backend_alone(backend: str | None) -> None:
    """A notebook's inline backend (or any other, or none chosen yet) survives the import."""
    if backend and backend.startswith("module://"):
        pytest.importorskip(backend.removeprefix("module://"))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if backend is not None:
        env["MPLBACKEND"] = backend
    out = subprocess.run(
        [sys.executable, "-c", MPL_IMPORTS], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(backend)


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
        "factors": research.plot_factor_exposures(result, book, save=tmp_path / "factors.png"),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure)
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    percent = {
        "sectors": "x",
        "factors": "x",
        "frontier": "xy",
        "overrides": "y",
    }
    for name, axes in percent.items():
        (ax,) = figures[name].axes[:1]
        for axis in axes:
            formatter = getattr(ax, f"{axis}axis").get_major_formatter()
            assert isinstance(formatter, PercentFormatter), (name, axis)


def test_compare_and_sweep_take_a_book_directory_and_a_decisions_file(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    numbers = ["status", "state", "gamma", "volatility", "gross", "net", "turnover", "tracking"]
    sets = {"default": "default", "conservative": "conservative"}
    given = research.compare(book, dec, sets, gamma=1.0)
    for source in (SAMPLES / "book", str(SAMPLES / "book")):
        read = research.compare(source, SAMPLES / "decisions.csv", sets, gamma=1.0)
        assert read[numbers].equals(given[numbers])
    values = [0.9, 1.3]
    swept = research.sweep(book, dec, "default", "gross", values, state="NORMAL")
    from_path = research.sweep(SAMPLES / "book", dec, "default", "gross", values, state="NORMAL")
    assert from_path.drop(columns="seconds").equals(swept.drop(columns="seconds"))


def test_compare_refuses_a_book_that_cannot_be_loaded(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, dec = sample
    with pytest.raises(BookLoadError, match="book directory not found"):
        research.compare(tmp_path / "none", dec, {"default": "default"})


def test_sweep_and_frontier_say_where_their_gamma_came_from(sample) -> None:  # type: ignore[no-untyped-def]
    """A limit sweep holds γ = 1 unless told otherwise, and says so per row; a given γ, the
    debate's and a γ sweep each read differently, and the γ column is the one run."""
    book, dec = sample
    default = research.sweep(book, dec, "default", "gross", [1.0, 1.5], state="NORMAL")
    assert set(default["gamma_source"]) == {"default (risk_aversion=1)"}
    assert (default["gamma"] == 1.0).all()
    given = research.frontier(
        book, dec, "default", "volatility", [0.05], state="NORMAL", risk_aversion=0.25
    )
    assert list(given["gamma_source"]) == ["given"] and list(given["gamma"]) == [0.25]
    own = research.sweep(book, dec, "default", "gross", [1.0], state="NORMAL", risk_aversion=None)
    cs = ConstraintSet.load("default").replace(**{"exposure.gross.max": 1.0})
    debate = rebalance(book, dec, cs, state="NORMAL").run.gamma
    assert list(own["gamma_source"]) == ["own debate"] and own["gamma"].iloc[0] == debate != 1.0
    swept = research.sweep(book, dec, "default", "gamma", [0.5], state="NORMAL")
    assert list(swept["gamma_source"]) == ["swept"]
