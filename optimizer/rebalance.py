"""``rebalance``: one book's proposed decisions through the risk gate.

validate → assemble the program's numbers → hard box and policy blocks from every
constraint family → solve (solver chain, cached program per structure) → round lots →
diff (labels, attribution, reasons, priority) → optionally store, in one transaction.
``rebalance_summary`` runs the same gate up to the labels and returns the run record
without writing the tables. The stages are in :mod:`riskopt.optimizer.gate`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.states import BlackSwanState
from riskopt.data.book import Book
from riskopt.data.contracts import DecisionsInput
from riskopt.optimizer.assemble import check_gamma
from riskopt.optimizer.assemble import cost_weights as _cost_weights
from riskopt.optimizer.assemble import hard_box as _hard_box
from riskopt.optimizer.assemble import pair_box as _pair_box
from riskopt.optimizer.assemble import tracking_weights as _tracking_weights
from riskopt.optimizer.fallback import degraded_result
from riskopt.optimizer.gate import Options, gate
from riskopt.optimizer.program import DEFAULT_CACHE, ProgramCache
from riskopt.optimizer.result import BookSummary, RebalanceResult
from riskopt.optimizer.solve import check_solvers
from riskopt.optimizer.tables import ticker_reasons as _ticker_reasons

__all__ = [
    "_cost_weights",
    "_hard_box",
    "_pair_box",
    "_ticker_reasons",
    "_tracking_weights",
    "degraded_result",
    "rebalance",
    "rebalance_summary",
]


def rebalance(
    book: Book | str | Path,
    decisions: DecisionsInput,
    constraint_set: ConstraintSet | str | Path = "default",
    *,
    state: str | BlackSwanState | None = None,
    risk_aversion: float | None = None,
    name_risk_aversion: float | Mapping[str, float] | np.ndarray | None = None,
    run_id: str | None = None,
    store: str | None = None,
    cache: ProgramCache | None = DEFAULT_CACHE,
    solvers: list[str | Any] | None = None,
    strict: bool = False,
    now: dt.datetime | None = None,
) -> RebalanceResult:
    """Run the risk gate on ``book`` for ``decisions`` under ``constraint_set``.

    Parameters
    ----------
    book
        The portfolio state and market snapshot (:class:`data.Book`), or a book
        directory. A directory that cannot be loaded (missing file, unreadable table,
        NAV ≤ 0) gives a ``DEGRADED`` run: no new risk, every decision ``REJECTED``.
    decisions
        One row per proposed decision: ``decision_id, ticker, strategy_id,
        target_weight`` and optional ``confidence`` ∈ (0, 1]; or a CSV/Parquet path of
        them; or one strategy's target weights as a ``pd.Series`` indexed by ticker
        (strategy ``"default"``, see :func:`riskopt.load_decisions`). Bad rows are
        ``REJECTED`` with a reason; the rest proceed.
    constraint_set
        A :class:`ConstraintSet`, a TOML path, or the name of a shipped set.
    state
        The black-swan monitor's state (``"NORMAL"``, ``"ELEVATED"``, ``"EMERGENCY"`` or a
        :class:`BlackSwanState` with ``as_of`` and overrides). Missing or stale: the set's
        ``states.default_state`` (``ELEVATED`` in the shipped sets); the run says so.
    risk_aversion
        Portfolio risk aversion ``γ`` ≥ 0 (raised to the state's floor). ``None``: the
        risk debate sets ``γ`` and the per-name ``γ_i``
        (:mod:`riskopt.optimizer.debate`). At 0 the gate is a pure projection: a proposal that satisfies every limit passes unchanged.
    name_risk_aversion
        Per-name multipliers ``γ_i`` of the specific-risk term (scalar, ``{ticker:
        value}`` or an array aligned with the program's names); default 1.
    run_id
        Identifier of the run; a retry with the same id is not stored twice.
    store
        SQLAlchemy URL (e.g. ``"sqlite:///riskopt.sqlite"``): write the run, its
        actions and targets in one transaction.
    cache
        Compiled-program cache (``None`` builds a fresh program).
    solvers
        Overrides the constraint set's solver chain (names in any case, or cvxpy solver
        instances); an unknown name is a :class:`ValidationError`.
    strict
        Raise :class:`ConfigError` for a constraint set that does not fit the book,
        instead of the production behaviour: alert, fall back to ``conservative.toml``
        intersected with the set's own hard limits and tightened by the current state,
        status ``DEGRADED``.
    now
        The run's clock, for the staleness of ``state`` (default: the current time).
    """
    options = _options(state, risk_aversion, name_risk_aversion, solvers, cache, strict, now)
    gated = gate(book, decisions, constraint_set, options, run_id=run_id, store=store)
    return gated if isinstance(gated, RebalanceResult) else gated.result(store)


def rebalance_summary(
    book: Book | str | Path,
    decisions: DecisionsInput,
    constraint_set: ConstraintSet | str | Path = "default",
    *,
    state: str | BlackSwanState | None = None,
    risk_aversion: float | None = None,
    name_risk_aversion: float | Mapping[str, float] | np.ndarray | None = None,
    run_id: str | None = None,
    cache: ProgramCache | None = DEFAULT_CACHE,
    solvers: list[str | Any] | None = None,
    strict: bool = False,
    now: dt.datetime | None = None,
) -> BookSummary:
    """:func:`rebalance`'s run record alone (status, label counts, exposures, breaches,
    warnings, timings), for a sweep that reads no table: the same solve and labels, the
    same record as ``BookSummary.of(rebalance(...))`` but for its timings, without writing
    the tables, reasons and attribution that nobody would read (about a quarter of a
    300-name book's time). Nothing is stored; the parameters are :func:`rebalance`'s.
    This is what :func:`~riskopt.optimizer.batch.rebalance_many` runs for a book with
    ``keep="summaries"`` and no store."""
    options = _options(state, risk_aversion, name_risk_aversion, solvers, cache, strict, now)
    gated = gate(book, decisions, constraint_set, options, run_id=run_id, store=None)
    return BookSummary.of(gated) if isinstance(gated, RebalanceResult) else gated.summary()


def _options(
    state: str | BlackSwanState | None,
    risk_aversion: float | None,
    name_risk_aversion: float | Mapping[str, float] | np.ndarray | None,
    solvers: list[str | Any] | None,
    cache: ProgramCache | None,
    strict: bool,
    now: dt.datetime | None,
) -> Options:
    """The run's options, with ``risk_aversion`` and ``solvers`` checked."""
    return Options(
        state=state,
        risk_aversion=None if risk_aversion is None else check_gamma(risk_aversion),
        name_risk_aversion=name_risk_aversion,
        solvers=check_solvers(solvers),
        cache=cache,
        strict=strict,
        now=now,
    )
