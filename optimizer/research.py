"""Research helpers: compare constraint sets, sweep one limit or γ, trace the frontier,
and plot the outcome.

``compare`` runs the same book and decisions under several sets at one risk aversion
``γ`` (or, when asked, each at its own debate's); ``sweep`` varies one limit (or ``γ``)
and re-solves the same program with new values (a limit's value is not part of the
program's structure, so the cache entry stays the same); ``frontier`` orders a sweep
from the tightest setting to the loosest, ex-ante volatility against tracking error.
Each returns one row of metrics per run. Plots build a :class:`matplotlib.figure.Figure`
without pyplot, so they neither pick nor change the session's backend: a notebook
shows them inline, a script saves them (``save=``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.registry import FAMILIES
from riskopt.constraints.states import BlackSwanState, resolve_state, tightened
from riskopt.data.book import Book
from riskopt.data.contracts import DecisionsInput
from riskopt.data.errors import ValidationError
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer.diff import LABEL_ORDER
from riskopt.optimizer.inputs import prepare
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
"""Short names for :func:`sweep`; any dotted key of the constraint set works too, and
``"gamma"`` sweeps the risk aversion instead of a limit."""

GAMMA = "gamma"
"""The :func:`sweep` parameter that varies the risk aversion ``γ`` rather than a limit."""
DEFAULT_SWEEP_GAMMA = 1.0
"""The ``γ`` a :func:`sweep` of a limit holds unless told otherwise: one ``γ`` for every
value, so that the rows differ by the limit alone (``risk_aversion=None`` runs each
value at its own debate's ``γ``)."""


def metrics(result: RebalanceResult, book: Book, *, seconds: float | None = None) -> dict[str, Any]:
    """The numbers a researcher compares between runs: ``tracking`` is the Euclidean
    distance of the final weights to the proposal, ``tracking_error`` the same distance
    in the risk model's metric (annualized, as ``volatility`` is)."""
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
        "tracking_error": tracking_error(result, book),
        **{label: int(counts[label]) for label in LABEL_ORDER},
        "largest_sector": f"{largest.index[0]} {by_sector[largest.index[0]]:+.1%}"
        if len(largest)
        else "",
        "binding": ", ".join(binding_by_family(result.binding)["constraint"].head(5)),
        "breaches": len(result.breaches),
        "seconds": seconds if seconds is not None else result.run.timings.get("total", np.nan),
    }


def tracking_error(result: RebalanceResult, book: Book) -> float:
    """``‖h − h̃‖_Σ``: the ex-ante volatility of the final weights less the proposed ones
    under the book's risk model (``Σ = B F Bᵀ + diag(d)``); NaN without a risk model."""
    model = book.risk_model
    t = result.targets.dropna(subset=["target_weight"])
    if model is None:
        return float("nan")
    d = (t["target_weight"] - t["proposed_weight"]).to_numpy(dtype=float)
    loadings = model.loadings.reindex(t.index).to_numpy(dtype=float)
    f = loadings.T @ d
    variance = f @ model.factor_cov.to_numpy(dtype=float) @ f
    variance += float((model.specific_var.reindex(t.index).to_numpy(dtype=float) * d * d).sum())
    return float(np.sqrt(max(variance, 0.0)))


def factor_exposures(result: RebalanceResult, book: Book) -> pd.DataFrame:
    """Each factor's exposure ``Bᵀh`` of the book before the run, as proposed and after
    the gate: one row per factor, columns ``before``, ``proposed``, ``after``."""
    model = book.risk_model
    if model is None:
        raise ValidationError("book", ["no risk model: factor exposures need loadings"])
    t = result.targets.dropna(subset=["target_weight"])
    loadings = model.loadings.reindex(t.index).fillna(0.0)
    weights = t[["current_weight", "proposed_weight", "target_weight"]].to_numpy(dtype=float)
    return pd.DataFrame(
        loadings.to_numpy(dtype=float).T @ weights,
        index=pd.Index(model.factors, name="factor"),
        columns=["before", "proposed", "after"],
    )


def compare(
    book: Book | str | Path,
    decisions: DecisionsInput,
    sets: Mapping[str, ConstraintSet | str | Path],
    *,
    state: str | BlackSwanState | None = None,
    gamma: float | None = None,
    debate: bool = False,
    risk_aversion: float | None = None,
) -> pd.DataFrame:
    """One row per constraint set: risk, exposures, turnover, tracking, labels, binding limits.

    The sets are compared at one risk aversion, so that the rows differ by their limits
    alone: ``gamma`` where given, else the debate's ``γ`` on the first set (what the gate
    would choose today under that set), held for every set. With ``debate=True`` each
    set runs with its own debate's ``γ`` (and per-name ``γ_i``) instead: that compares
    the sets as the gate would run them, debate included. The ``gamma`` column is the
    ``γ`` each run used (a state's floor may raise it), ``gamma_source`` says where it
    came from. ``risk_aversion`` is an older name of ``gamma``; a ``gamma`` beside
    ``debate=True`` is a :class:`ValidationError`.

    Without ``state`` each set runs under its own ``states.default_state`` (the ``state``
    column says which). ``book`` may be a book directory and ``decisions`` anything
    :func:`~riskopt.data.loaders.load_decisions` reads; each is read once, before the
    first run, and a book that cannot be loaded is a :class:`BookLoadError` (or
    :class:`ValidationError`) rather than a row of ``DEGRADED`` runs."""
    gamma = _one_gamma(gamma, risk_aversion, debate)
    book, decisions = _inputs(book, decisions)
    source = "given" if gamma is not None else "own debate"
    if gamma is None and not debate and sets:
        first = next(iter(sets))
        gamma = rebalance(book, decisions, sets[first], state=state).run.gamma
        source = f"debate on {first}"
    rows = {}
    for name, cs in sets.items():
        start = time.perf_counter()
        result = rebalance(book, decisions, cs, state=state, risk_aversion=gamma)
        row = metrics(result, book, seconds=time.perf_counter() - start)
        rows[name] = {**row, "gamma_source": source}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("constraint_set")


def _one_gamma(gamma: float | None, risk_aversion: float | None, debate: bool) -> float | None:
    """The one ``γ`` :func:`compare` was given, if any; two that disagree, or a ``γ``
    beside ``debate=True``, ask for different runs and are refused."""
    problems = []
    if gamma is not None and risk_aversion is not None and gamma != risk_aversion:
        problems.append(f"gamma={gamma} and risk_aversion={risk_aversion} disagree: give one")
    given = gamma if gamma is not None else risk_aversion
    if debate and given is not None:
        problems.append(f"debate=True runs each set at its own debate's γ, not at {given}")
    if problems:
        raise ValidationError("comparison", problems)
    return given


def sweep(
    book: Book | str | Path,
    decisions: DecisionsInput,
    constraint_set: ConstraintSet | str | Path,
    parameter: str = "gross",
    values: Iterable[float] = (),
    *,
    state: str | BlackSwanState | None = None,
    risk_aversion: float | None = DEFAULT_SWEEP_GAMMA,
    cache: ProgramCache | None = None,
) -> pd.DataFrame:
    """The metrics as one limit (or ``γ``, with ``parameter="gamma"``) varies.

    A limit is swept at ``risk_aversion`` (:data:`DEFAULT_SWEEP_GAMMA`, 1, unless given;
    ``None`` for each run's own debate): the ``gamma`` column is the ``γ`` each run used
    (a state's floor may raise it) and ``gamma_source`` says where it came from
    (``"default (risk_aversion=1)"``, ``"given"``, ``"own debate"`` or ``"swept"``).

    ``value`` is the configured value, ``applied`` the one the run used: a cap after the
    state's multiplier and, for the gross and volatility caps, the drawdown's
    (``constraints/drawdown.py``); ``γ`` after the state's floor. The calmer-state
    envelope a stricter state adds is a limit of its own (``state.envelope.*``) and is
    not folded into ``applied``.

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
    values = [float(v) for v in values]
    applied = _applied(book, decisions, base, key, values, state)
    cache = cache if cache is not None else ProgramCache()
    rows = []
    for value, cap in zip(values, applied, strict=True):
        cs = base if key == GAMMA else base.replace(**{key: value})
        gamma = value if key == GAMMA else risk_aversion
        start = time.perf_counter()
        result = rebalance(book, decisions, cs, state=state, risk_aversion=gamma, cache=cache)
        row = metrics(result, book, seconds=time.perf_counter() - start)
        rows.append(
            {
                "value": value,
                "applied": row["gamma"] if key == GAMMA else cap,
                **row,
                "gamma_source": _gamma_source(key, risk_aversion),
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["parameter"] = key
    out.attrs["programs_built"] = cache.builds
    return out


def _gamma_source(key: str, risk_aversion: float | None) -> str:
    """Where a sweep's ``γ`` came from, for its ``gamma_source`` column."""
    if key == GAMMA:
        return "swept"
    if risk_aversion is None:
        return "own debate"
    if risk_aversion == DEFAULT_SWEEP_GAMMA:
        return f"default (risk_aversion={DEFAULT_SWEEP_GAMMA:g})"
    return "given"


def frontier(
    book: Book | str | Path,
    decisions: DecisionsInput,
    constraint_set: ConstraintSet | str | Path,
    parameter: str = "volatility",
    values: Iterable[float] = (),
    *,
    state: str | BlackSwanState | None = None,
    risk_aversion: float | None = DEFAULT_SWEEP_GAMMA,
    cache: ProgramCache | None = None,
) -> pd.DataFrame:
    """Ex-ante volatility against tracking error to the proposal as one limit loosens
    (or ``γ`` falls): a :func:`sweep` ordered from the tightest setting to the loosest.

    Along it, tracking error falls and risk rises: each step allows what the last
    allowed and more, and the gate spends the room on following the proposal. Sweep a
    risk limit (``"volatility"``) or ``"gamma"`` for a risk/tracking frontier; a gross
    cap traces gross against tracking, while ex-ante volatility may rise or fall with it
    (tightening gross cuts hedges as well as bets). ``γ`` and its ``gamma_source`` are
    as in :func:`sweep`: 1 unless ``risk_aversion`` says otherwise.
    """
    swept = sweep(
        book,
        decisions,
        constraint_set,
        parameter,
        values,
        state=state,
        risk_aversion=risk_aversion,
        cache=cache,
    )
    loosest_last = swept["value"].sort_values(ascending=swept.attrs["parameter"] != GAMMA)
    out = swept.loc[loosest_last.index].reset_index(drop=True)
    out.attrs.update(swept.attrs)
    return out


def _applied(
    book: Book,
    decisions: pd.DataFrame,
    base: ConstraintSet,
    key: str,
    values: Sequence[float],
    state: str | BlackSwanState | None,
) -> list[float]:
    """Each configured value as the run applies it: the set tightened by the state, then
    the right-hand side of the limit its family builds (drawdown scaling included); the
    tightened value where that family builds no single row of that name."""
    if key == GAMMA:
        return [np.nan] * len(values)
    resolved = resolve_state(state, base)
    family = next((f for f in FAMILIES if f.key == key.split(".")[0]), None)
    data = prepare(book, decisions, tightened(base, resolved)).data
    out = []
    for value in values:
        cs = tightened(base.replace(**{key: value}), resolved)
        rows = [] if family is None else family.limits(cs, data)
        rhs = [limit.rhs for limit in rows if limit.name == key and limit.rhs.size == 1]
        out.append(float(rhs[0][0]) if rhs else _dotted(cs.model_dump(), key))
    return out


def _dotted(raw: Mapping[str, Any], key: str) -> float:
    """The value at a dotted key of a set's dump (NaN where unset)."""
    node: Any = raw
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return float(node) if isinstance(node, int | float) else float("nan")


def _inputs(book: Book | str | Path, decisions: DecisionsInput) -> tuple[Book, pd.DataFrame]:
    """The book (loaded from its directory if a path) and the decisions as a table (a
    table is passed on as it is: the gate checks it)."""
    if isinstance(book, str | Path):
        book = load_book(book)
    if not isinstance(decisions, pd.DataFrame):
        decisions = load_decisions(decisions)
    return book, decisions


# -- plots ---------------------------------------------------------------------------------------

PALETTE = {
    "before": "#9aa5b1",
    "proposed": "#f0b429",
    "after": "#2680c2",
    "OK": "#3ebd93",
    "SCALED_DOWN": "#f0b429",
    "CAPPED": "#e66a6a",
    "REJECTED": "#7b8794",
}


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of its own, outside pyplot: no backend chosen, no figure left open."""
    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def _finish(fig: Figure, save: str | Path | None) -> Figure:
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, dpi=110)
    return fig


def _bars(ax: Axes, frame: pd.DataFrame, *, horizontal: bool, stacked: bool = False) -> None:
    """One bar per row and column of ``frame``, grouped by row (or stacked), with a legend."""
    positions = np.arange(len(frame))
    width = 0.8 if stacked else 0.8 / max(len(frame.columns), 1)
    base = np.zeros(len(frame))
    for i, column in enumerate(frame.columns):
        heights = frame[column].to_numpy(dtype=float)
        offset = positions if stacked else positions - 0.4 + (i + 0.5) * width
        color = PALETTE.get(str(column))
        if horizontal:
            ax.barh(offset, heights, height=width, left=base, label=str(column), color=color)
        else:
            ax.bar(offset, heights, width=width, bottom=base, label=str(column), color=color)
        if stacked:
            base = base + heights
    labels = [str(i) for i in frame.index]
    if horizontal:
        ax.set_yticks(positions, labels=labels)
    else:
        ax.set_xticks(positions, labels=labels)
    ax.legend()


def _exposure_bars(frame: pd.DataFrame, title: str, save: str | Path | None) -> Figure:
    """Before / proposed / after exposures as horizontal bars, the axis in percent of NAV."""
    fig, ax = _figure(8, max(3.0, 0.45 * len(frame) + 1.5))
    _bars(ax, frame, horizontal=True)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("exposure (% of NAV)")
    ax.set_title(title)
    return _finish(fig, save)


def plot_sector_exposures(
    result: RebalanceResult, book: Book, *, save: str | Path | None = None
) -> Figure:
    """Net exposure by sector before the run, as proposed and after the gate."""
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
    title = f"Sector exposures ({result.run.constraint_set}, {result.run.state})"
    return _exposure_bars(frame, title, save)


def plot_factor_exposures(
    result: RebalanceResult, book: Book, *, save: str | Path | None = None
) -> Figure:
    """Each factor's exposure before the run, as proposed and after the gate
    (:func:`factor_exposures`)."""
    frame = factor_exposures(result, book).sort_values("after")
    title = f"Factor exposures ({result.run.constraint_set}, {result.run.state})"
    return _exposure_bars(frame, title, save)


def plot_label_counts(
    results: Mapping[str, RebalanceResult], *, save: str | Path | None = None
) -> Figure:
    """Decisions by label, one group of bars per run."""
    frame = pd.DataFrame({name: r.label_counts() for name, r in results.items()}).T[
        list(LABEL_ORDER)
    ]
    fig, ax = _figure(8, 4)
    _bars(ax, frame, horizontal=False)
    ax.set_ylabel("decisions")
    ax.set_title("Decisions by label")
    return _finish(fig, save)


def plot_frontier(
    swept: pd.DataFrame,
    *,
    x: str = "volatility",
    y: str = "tracking_error",
    save: str | Path | None = None,
) -> Figure:
    """The risk/tracking frontier of a :func:`sweep` or :func:`frontier`, each point
    labelled by the value applied; both axes in percent."""
    parameter = swept.attrs.get("parameter", "the limit")
    fig, ax = _figure(7, 4.5)
    ax.plot(swept[x], swept[y], marker="o", color=PALETTE["after"])
    labels = swept["applied"].fillna(swept["value"]) if "applied" in swept else swept["value"]
    for label, px, py in zip(labels, swept[x], swept[y], strict=True):
        text = f"γ {label:.3g}" if parameter == GAMMA else f"{label:.1%}"
        ax.annotate(text, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(f"{x} (ex-ante, annualized)" if x == "volatility" else f"{x} (% of NAV)")
    ax.set_ylabel(f"{y} (distance to the proposal)")
    ax.set_title(f"Frontier over {parameter} (points: the value applied)")
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
    fig, ax = _figure(7, 4)
    _bars(ax, frame, horizontal=False, stacked=True)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("sum of |proposed − final| weight (% of NAV)")
    ax.set_title("Overrides by strategy")
    return _finish(fig, save)
