"""Research helpers: compare constraint sets, sweep one limit, and plot the outcome.

``compare`` runs the same book and decisions under several sets; ``sweep`` varies one
limit and re-solves the same program with new values (a limit's value is not part of
the program's structure, so the cache entry stays the same). Both return one row of
metrics per run. Plots return the matplotlib figure and can save a PNG.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from riskopt.constraints.config import ConstraintSet
from riskopt.data.book import Book
from riskopt.data.contracts import DecisionsInput
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer.diff import LABEL_ORDER
from riskopt.optimizer.program import ProgramCache
from riskopt.optimizer.rebalance import rebalance
from riskopt.optimizer.result import RebalanceResult, binding_by_family

PARAMETERS = {
    "gross": "exposure.gross.max",
    "position": "position.max_weight",
    "volatility": "risk.max_volatility",
    "trade": "trading.max_trade_pct_adv",
    "sector_net": "groups.sector.max_net",
}
"""Short names for :func:`sweep`; any dotted key of the constraint set works too."""


def metrics(result: RebalanceResult, book: Book, *, seconds: float | None = None) -> dict[str, Any]:
    """The numbers a researcher compares between runs."""
    t = result.targets.dropna(subset=["target_weight"])
    after = result.run.exposures_after
    sector = book.market["sector"].reindex(t["ticker"]).to_numpy()
    by_sector = pd.Series(t["target_weight"].to_numpy()).groupby(sector).sum()
    largest = by_sector.abs().sort_values(ascending=False)
    counts = result.label_counts()
    return {
        "status": result.status,
        "state": result.run.state,
        "gamma": result.run.gamma,
        "volatility": after.get("volatility", np.nan),
        "gross": after["gross"],
        "net": after["net"],
        "turnover": float((t["target_weight"] - t["current_weight"]).abs().sum()),
        "tracking": float(np.sqrt(((t["target_weight"] - t["proposed_weight"]) ** 2).sum())),
        **{label: int(counts[label]) for label in LABEL_ORDER},
        "largest_sector": f"{largest.index[0]} {by_sector[largest.index[0]]:+.1%}"
        if len(largest)
        else "",
        "binding": ", ".join(binding_by_family(result.binding)["constraint"].head(5)),
        "breaches": len(result.breaches),
        "seconds": seconds if seconds is not None else result.run.timings.get("total", np.nan),
    }


def compare(
    book: Book | str | Path,
    decisions: DecisionsInput,
    sets: Mapping[str, ConstraintSet | str | Path],
    *,
    state: str | None = None,
    risk_aversion: float | None = None,
) -> pd.DataFrame:
    """One row per constraint set: risk, exposures, turnover, tracking, labels, binding limits.

    Without ``state`` each set runs under its own ``states.default_state`` (the ``state``
    column says which). ``book`` may be a book directory and ``decisions`` anything
    :func:`~riskopt.data.loaders.load_decisions` reads; each is read once, before the
    first run, and a book that cannot be loaded is a :class:`BookLoadError` (or
    :class:`ValidationError`) rather than a row of ``DEGRADED`` runs."""
    book, decisions = _inputs(book, decisions)
    rows = {}
    for name, cs in sets.items():
        start = time.perf_counter()
        result = rebalance(book, decisions, cs, state=state, risk_aversion=risk_aversion)
        rows[name] = metrics(result, book, seconds=time.perf_counter() - start)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("constraint_set")


def sweep(
    book: Book | str | Path,
    decisions: DecisionsInput,
    constraint_set: ConstraintSet | str | Path,
    parameter: str = "gross",
    values: Iterable[float] = (),
    *,
    state: str | None = None,
    risk_aversion: float | None = 1.0,
    cache: ProgramCache | None = None,
) -> pd.DataFrame:
    """The metrics as one limit varies: a risk/tracking frontier.

    Without ``state`` the set's ``states.default_state`` applies. Every value shares one
    :class:`ProgramCache`, so the program is built once and re-solved with new parameter
    values (``cache.builds`` stays 1 under NORMAL; a stricter state adds the program of
    the calmer state whose outcome caps it). With
    ``cache=ProgramCache(reuse_solver=True)`` the values also share Clarabel's setup
    where the program's pattern stays the same: faster on a large book, each answer
    then the cold one to the solver's tolerance rather than to the last bit. ``book`` and
    ``decisions`` are read once, as in :func:`compare`.
    """
    book, decisions = _inputs(book, decisions)
    key = PARAMETERS.get(parameter, parameter)
    base = (
        constraint_set
        if isinstance(constraint_set, ConstraintSet)
        else ConstraintSet.load(constraint_set)
    )
    cache = cache if cache is not None else ProgramCache()
    rows = []
    for value in values:
        cs = base.replace(**{key: float(value)})
        start = time.perf_counter()
        result = rebalance(
            book, decisions, cs, state=state, risk_aversion=risk_aversion, cache=cache
        )
        rows.append(
            {"value": float(value), **metrics(result, book, seconds=time.perf_counter() - start)}
        )
    out = pd.DataFrame(rows)
    out.attrs["parameter"] = key
    out.attrs["programs_built"] = cache.builds
    return out


def _inputs(book: Book | str | Path, decisions: DecisionsInput) -> tuple[Book, pd.DataFrame]:
    """The book (loaded from its directory if a path) and the decisions as a table (a
    table is passed on as it is: the gate checks it)."""
    if isinstance(book, str | Path):
        book = load_book(book)
    if not isinstance(decisions, pd.DataFrame):
        decisions = load_decisions(decisions)
    return book, decisions


# -- plots ---------------------------------------------------------------------------------------


def _finish(fig: Figure, save: str | Path | None) -> Figure:
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, dpi=110)
    return fig


def plot_sector_exposures(
    result: RebalanceResult, book: Book, *, save: str | Path | None = None
) -> Figure:
    """Net exposure by sector, before and after the gate."""
    t = result.targets.dropna(subset=["target_weight"])
    sector = book.market["sector"].reindex(t["ticker"]).to_numpy()
    frame = (
        pd.DataFrame(
            {
                "before": t["current_weight"].to_numpy(),
                "proposed": t["proposed_weight"].to_numpy(),
                "after": t["target_weight"].to_numpy(),
            }
        )
        .groupby(sector)
        .sum()
        .sort_values("after")
    )
    fig, ax = plt.subplots(figsize=(8, 4.5))
    frame.plot.barh(ax=ax, color=["#9aa5b1", "#f0b429", "#2680c2"])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("net weight (fraction of NAV)")
    ax.set_title(f"Sector exposures ({result.run.constraint_set}, {result.run.state})")
    return _finish(fig, save)


def plot_label_counts(
    results: Mapping[str, RebalanceResult], *, save: str | Path | None = None
) -> Figure:
    """Decisions by label, one group of bars per run."""
    frame = pd.DataFrame({name: r.label_counts() for name, r in results.items()}).T[
        list(LABEL_ORDER)
    ]
    fig, ax = plt.subplots(figsize=(8, 4))
    frame.plot.bar(ax=ax, color=["#3ebd93", "#f0b429", "#e66a6a", "#7b8794"], rot=0)
    ax.set_ylabel("decisions")
    ax.set_title("Decisions by label")
    return _finish(fig, save)


def plot_frontier(
    swept: pd.DataFrame,
    *,
    x: str = "volatility",
    y: str = "tracking",
    save: str | Path | None = None,
) -> Figure:
    """The risk/tracking frontier of a :func:`sweep`, each point labelled by its value."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(swept[x], swept[y], marker="o", color="#2680c2")
    for _, row in swept.iterrows():
        ax.annotate(
            f"{row['value']:.3g}",
            (row[x], row[y]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y} (distance to the proposal)")
    ax.set_title(f"Frontier over {swept.attrs.get('parameter', 'the limit')}")
    return _finish(fig, save)


def plot_overrides_by_strategy(
    result: RebalanceResult, *, save: str | Path | None = None
) -> Figure:
    """How strongly the gate overrode each strategy: mean |proposed − final| by label."""
    dec = result.actions[result.actions["decision_id"].notna()].copy()
    dec["override"] = (
        (dec["proposed_weight"] - dec["final_weight"]).abs().fillna(dec["proposed_weight"].abs())
    )
    frame = dec.pivot_table(
        index="strategy_id", columns="action_type", values="override", aggfunc="sum", fill_value=0.0
    ).reindex(columns=list(LABEL_ORDER), fill_value=0.0)
    fig, ax = plt.subplots(figsize=(7, 4))
    frame.plot.bar(ax=ax, stacked=True, color=["#3ebd93", "#f0b429", "#e66a6a", "#7b8794"], rot=0)
    ax.set_ylabel("sum of |proposed − final| weight")
    ax.set_title("Overrides by strategy")
    return _finish(fig, save)
