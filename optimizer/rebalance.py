"""``rebalance``: one book's proposed decisions through the risk gate.

validate → assemble the program's numbers → hard box and policy blocks from every
constraint family → solve (solver chain, cached program per structure) → round lots →
diff (labels, attribution, reasons, priority) → optionally store, in one transaction.
``rebalance_summary`` runs the same gate up to the labels and returns the run record
without writing the tables.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii as encode_json_string
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from riskopt.constraints import FAMILIES
from riskopt.constraints.base import (
    NO_LIMIT,
    HardBound,
    Limit,
    ProgramData,
    box_duals_by_bound,
)
from riskopt.constraints.config import SOLVERS, ConstraintSet, StateSOP
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.states import (
    STATES,
    BlackSwanState,
    ResolvedState,
    resolve_state,
    tightened,
    with_envelope,
)
from riskopt.data.book import Book
from riskopt.data.contracts import check_decision_columns
from riskopt.data.errors import BookLoadError, ValidationError
from riskopt.data.loaders import load_book
from riskopt.optimizer.debate import DebateResult, compute_features, run_debate
from riskopt.optimizer.diff import (
    LABEL_ORDER,
    OK,
    REJECTED,
    Attribution,
    Cause,
    attribute,
    attribution_json,
    details_json,
    execution_priority,
    json_numbers,
    label_trades,
    percent_texts,
    reasons,
    shared_json,
)
from riskopt.optimizer.inputs import PreparedInputs, prepare
from riskopt.optimizer.lots import (
    EPS_LOTS,
    SOLVER_NOISE,
    closing_bounds,
    pair_lot_bounds,
    round_to_lots,
    split_to_sleeves,
)
from riskopt.optimizer.program import (
    ACCEPTED_TOLERANCE,
    DEFAULT_CACHE,
    GateProgram,
    ProgramCache,
    Solved,
    SolverFailed,
    Structure,
    Values,
)
from riskopt.optimizer.program import OPTIMAL as SOLVER_OPTIMAL
from riskopt.optimizer.result import (
    DEGRADED,
    FALLBACK,
    OPTIMAL,
    RELAXED,
    TARGET_COLUMNS,
    BookSummary,
    RebalanceResult,
    RunInfo,
    exposures,
    string_column,
    string_take,
    text_array,
)

log = logging.getLogger("riskopt")

BREACH_TOL = 1e-6
"""A policy row counts as breached when its residual exceeds this (weight units)."""
RISKLESS = 1e-12
"""A proposal whose variance is below this share of its squared size has no risk to
scale the risk term by (a volatility under 1e-6)."""
DUAL_TOL = 1e-7


def rebalance(
    book: Book | str | Path,
    decisions: pd.DataFrame,
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
        target_weight`` and optional ``confidence`` ∈ (0, 1]. Bad rows are ``REJECTED``
        with a reason; the rest proceed.
    constraint_set
        A :class:`ConstraintSet`, a TOML path, or the name of a shipped set.
    state
        The black-swan monitor's state (``"NORMAL"``, ``"ELEVATED"``, ``"EMERGENCY"`` or a
        :class:`BlackSwanState` with ``as_of`` and overrides). Missing or stale: the set's
        ``states.default_state`` (``ELEVATED`` in the shipped sets); the run says so.
    risk_aversion
        Portfolio risk aversion ``γ`` ≥ 0 (raised to the state's floor). ``None``: the
        risk debate sets ``γ`` and the per-name ``γ_i`` (:mod:`riskopt.optimizer.debate`). At 0 the gate is a pure projection: a
        proposal that satisfies every limit passes unchanged.
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
    gated = _gate(
        book,
        decisions,
        constraint_set,
        state=state,
        risk_aversion=risk_aversion,
        name_risk_aversion=name_risk_aversion,
        run_id=run_id,
        cache=cache,
        solvers=solvers,
        strict=strict,
        now=now,
        store=store,
    )
    return gated if isinstance(gated, RebalanceResult) else gated.result(store)


def rebalance_summary(
    book: Book | str | Path,
    decisions: pd.DataFrame,
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
    gated = _gate(
        book,
        decisions,
        constraint_set,
        state=state,
        risk_aversion=risk_aversion,
        name_risk_aversion=name_risk_aversion,
        run_id=run_id,
        cache=cache,
        solvers=solvers,
        strict=strict,
        now=now,
        store=None,
    )
    return BookSummary.of(gated) if isinstance(gated, RebalanceResult) else gated.summary()


def _gate(
    book: Book | str | Path,
    decisions: pd.DataFrame,
    constraint_set: ConstraintSet | str | Path,
    *,
    state: str | BlackSwanState | None,
    risk_aversion: float | None,
    name_risk_aversion: float | Mapping[str, float] | np.ndarray | None,
    run_id: str | None,
    store: str | None,
    cache: ProgramCache | None,
    solvers: list[str | Any] | None,
    strict: bool,
    now: dt.datetime | None,
) -> RebalanceResult | _Gated:
    """The gate up to its labels: a book that cannot be loaded comes back as its
    ``DEGRADED`` result (stored if ``store``), any other as :class:`_Gated`."""
    t_start = time.perf_counter()
    user_gamma = None if risk_aversion is None else _check_gamma(risk_aversion)
    solvers = _check_solvers(solvers)
    if isinstance(book, str | Path):
        try:
            book = load_book(book)
        except (BookLoadError, ValidationError) as err:
            return degraded_result(
                decisions,
                f"portfolio state could not be loaded: {_one_line(err)}",
                run_id=run_id,
                store=store,
            )
    if not isinstance(book, Book):
        raise ValidationError(
            "book", [f"expected a Book or a book directory, got {type(book).__name__}"]
        )

    alerts: list[str] = []
    degraded = False
    caller: ConstraintSet | None = None
    try:
        base = caller = (
            constraint_set
            if isinstance(constraint_set, ConstraintSet)
            else ConstraintSet.load(constraint_set)
        )
        resolved = resolve_state(state, base, now=now)
        cs = _envelope(
            book,
            decisions,
            base,
            tightened(base, resolved),
            resolved,
            risk_aversion=user_gamma,
            name_risk_aversion=name_risk_aversion,
            cache=cache,
            solvers=solvers,
            alerts=alerts,
        )
        prepared = prepare(book, decisions, cs)
    except ConfigError as err:
        if strict:
            raise
        alert = (
            f"inconsistent constraint set ({err.one_line()}): using conservative.toml under "
            "the current state, with the set's own hard limits"
        )
        log.error(alert)
        alerts.append(alert)
        degraded = True
        base = _conservative_for(book, caller)
        resolved = resolve_state(state, base, now=now)
        cs = tightened(base, resolved)
        prepared = prepare(book, decisions, cs)
    alerts.extend(resolved.alerts)
    data = prepared.data
    debate: DebateResult | None = None
    if user_gamma is None:
        debate = run_debate(
            compute_features(book, data, cs, resolved.state),
            cs.debate,
            floor=resolved.sop.risk_aversion_floor,
        )
        gamma = debate.gamma
    else:
        gamma = max(user_gamma, resolved.sop.risk_aversion_floor)
    if name_risk_aversion is None and debate is not None:
        gamma_i = debate.gamma_i.to_numpy(dtype=float)
    else:
        gamma_i = _name_gamma(name_risk_aversion, data)

    limits: list[Limit] = []
    bounds: list[HardBound] = []
    for family in FAMILIES:
        limits.extend(family.limits(cs, data))
        bounds.extend(family.bounds(cs, data))
    lo, hi = _hard_box(data, bounds)
    w_lo, w_hi = _pair_box(data, bounds)
    box = _Box(lo, hi, w_lo, w_hi)
    c = _tracking_weights(data, cs)
    risk_scale = _risk_scale(data, c, gamma_i)
    kappa = _cost_weights(data, cs)
    rho = [
        cs.preference_penalty if limit.preference else cs.tier_penalty(limit.tier)
        for limit in limits
    ]
    t_prepared = time.perf_counter()

    chain: list[dict[str, str]] = []
    solved: Solved | None = None
    program_built = False
    if data.n:
        structure = Structure.of(data, limits, costs=cs.objective.costs)
        program, program_built = (cache if cache is not None else ProgramCache(1)).fetch(structure)
        values = Values.of(
            data,
            limits,
            c=c,
            lo=lo,
            hi=hi,
            w_lo=w_lo,
            w_hi=w_hi,
            gamma=gamma * risk_scale,
            gamma_i=gamma_i,
            kappa=kappa,
            rho=rho,
        )
        solved, chain = _solve_chain(
            program, solvers or list(cs.solver.chain), values, max_iters=cs.solver.max_iters
        )
    if solved is not None:
        solved = _exact_if_proposal_optimal(
            solved, data, limits, box, gamma=gamma, kappa=kappa, costs=cs.objective.costs
        )
    t_solved = time.perf_counter()

    if solved is not None:
        h_star = np.clip(solved.h, lo, hi)
        attribution = attribute(
            data,
            solved.h,
            solved.w,
            c=c,
            gamma=gamma,
            risk_scale=risk_scale,
            gamma_i=gamma_i,
            kappa=kappa,
            costs=cs.objective.costs,
            limits=limits,
            duals=solved.duals,
            bounds=bounds,
            lo=lo,
            hi=hi,
            box_upper_dual=solved.box_upper_dual,
            box_lower_dual=solved.box_lower_dual,
            pair_duals=(solved.pair_upper_dual, solved.pair_lower_dual),
        )
        w_star = np.clip(solved.w, w_lo, w_hi)
    else:
        if data.n:
            log.error("every solver failed (%s): de-risk-only fallback", chain)
        h_star = _derisk_fallback(data, limits, lo, hi)
        w_star = _pairs_from_tickers(data, h_star, c)
        attribution = _fallback_attribution(data, h_star)

    lots = _round_lots(prepared, box, h_star, w_star, limits)
    h_final, w_final, target_shares = lots.h, lots.w, lots.shares

    breaches = _breaches(limits, h_star, w_star)
    status = FALLBACK if solved is None and data.n else (RELAXED if breaches else OPTIMAL)
    breaches += _rounding_breaches(limits, (h_star, w_star), (h_final, w_final))
    if degraded:
        status = DEGRADED
    run_id = run_id or uuid.uuid4().hex[:16]
    created = dt.datetime.now(dt.UTC)
    before = exposures(data.h0, data.loadings, data.factor_cov, data.specific_var)
    after = exposures(h_final, data.loadings, data.factor_cov, data.specific_var)

    labelled = _label_pairs(data, cs, attribution, w_final, fallback=solved is None)
    run = RunInfo(
        run_id=run_id,
        as_of=book.as_of,
        created_at=created,
        status=status,
        constraint_set=cs.name,
        solver=solved.solver if solved is not None else None,
        solver_chain=chain,
        gamma=gamma,
        breaches=breaches,
        exposures_before=before,
        exposures_after=after,
        timings={
            "prepare": t_prepared - t_start,
            "solve": t_solved - t_prepared,
            "solver": solved.solve_seconds if solved is not None else 0.0,
        },
        warnings=list(prepared.warnings),
        counts=_decision_counts(prepared.decisions, labelled.pairs),
        program_built=program_built,
        state=resolved.state,
        state_source=resolved.source,
        alerts=alerts,
        debate=[] if debate is None else debate.records(),
        risk_model=book.risk_model_record(),
    )
    return _Gated(
        prepared=prepared,
        run=run,
        debate=debate,
        attribution=attribution,
        labelled=labelled,
        limits=limits,
        bounds=bounds,
        solved=solved,
        h_star=h_star,
        h_final=h_final,
        w_final=w_final,
        target_shares=target_shares,
        pair_shares=lots.pair_shares,
        started=t_start,
        solved_at=t_solved,
    )


@dataclasses.dataclass
class _Gated:
    """A book through the gate: solved, rounded and labelled, its run record written but
    for the time of what comes next (:meth:`result` writes the tables, :meth:`summary`
    does not)."""

    prepared: PreparedInputs
    run: RunInfo
    debate: DebateResult | None
    attribution: Attribution
    labelled: _Labelled
    limits: list[Limit]
    bounds: list[HardBound]
    solved: Solved | None
    h_star: np.ndarray
    h_final: np.ndarray
    w_final: np.ndarray
    target_shares: np.ndarray
    pair_shares: np.ndarray
    started: float
    solved_at: float

    def _finished(self) -> None:
        now = time.perf_counter()
        self.run.timings["diff"] = now - self.solved_at
        self.run.timings["total"] = now - self.started

    def summary(self) -> BookSummary:
        self._finished()
        names = self.prepared.data.n + self.prepared.unpriced_holdings["ticker"].nunique()
        return BookSummary(run=self.run, names=int(names))

    def result(self, store: str | None) -> RebalanceResult:
        data = self.prepared.data
        tables = _diff_tables(
            self.prepared,
            self.labelled,
            self.run,
            attribution=self.attribution,
            h_final=self.h_final,
            w_final=self.w_final,
            target_shares=self.target_shares,
            pair_shares=self.pair_shares,
            h_solved=self.h_star,
        )
        solved = self.solved
        binding = (
            _binding(self.limits, self.bounds, solved, data)
            if solved is not None
            else _empty_binding()
        )
        self._finished()
        result = RebalanceResult(
            run=self.run,
            targets=tables["targets"],
            sleeve_targets=tables["sleeves"],
            actions=tables["actions"],
            binding=binding,
            attribution=self.attribution.frame(data.tickers),
            debate=self.debate,
        )
        if store is not None:
            from riskopt.optimizer.store import store_result

            store_result(result, store)
        return result


# -- states ---------------------------------------------------------------------------------

CALMER = {"ELEVATED": "NORMAL", "EMERGENCY": "ELEVATED"}


def _envelope(
    book: Book,
    decisions: pd.DataFrame,
    base: ConstraintSet,
    cs: ConstraintSet,
    resolved: ResolvedState,
    *,
    risk_aversion: float | None,
    name_risk_aversion: float | Mapping[str, float] | np.ndarray | None,
    cache: ProgramCache | None,
    solvers: list[str | Any] | None,
    alerts: list[str],
) -> ConstraintSet:
    """Cap a stricter state's exposures at the calmer state's outcome on the same inputs.

    ELEVATED is capped by NORMAL's outcome and EMERGENCY by ELEVATED's (which is itself
    capped by NORMAL's), so gross, |net|, every |weight| and the ex-ante volatility never
    increase from one state to the next wherever the stricter state can reach them; where
    it cannot (de-risk-only cannot add the hedge that lowered the calmer state's net), the
    residual is reported as a breach of ``state.envelope.*``.
    """
    calmer = CALMER.get(resolved.state)
    if calmer is None or not base.states.never_exceed_calmer:
        return cs
    if resolved.sop == base.states.sop(calmer):
        return cs  # the same procedure gives the same outcome: nothing to cap
    outcome = rebalance(
        book,
        decisions,
        base,
        state=calmer,
        risk_aversion=risk_aversion,
        name_risk_aversion=name_risk_aversion,
        cache=cache,
        solvers=solvers,
        strict=True,
    )
    if outcome.status not in (OPTIMAL, RELAXED):
        alerts.append(f"the {calmer} run ended {outcome.status}: no calmer-state envelope applied")
        return cs
    # The solver's continuous weights (before lots), plus the breach tolerance, so that an
    # envelope which merely coincides with the stricter state's own solution stays slack.
    solved = outcome.targets.dropna(subset=["solved_weight"]).set_index("ticker")["solved_weight"]
    h = solved.to_numpy(dtype=float)
    model = book.risk_model
    envelope = exposures(
        h,
        None if model is None else model.loadings.loc[solved.index].to_numpy(dtype=float),
        None if model is None else model.factor_cov.to_numpy(dtype=float),
        None if model is None else model.specific_var.loc[solved.index].to_numpy(dtype=float),
    )
    envelope = {k: v + BREACH_TOL for k, v in envelope.items()}
    envelope["net"] = abs(float(h.sum())) + BREACH_TOL
    per_name = dict(zip(solved.index, np.abs(h) + BREACH_TOL, strict=True))
    return with_envelope(cs, calmer, envelope, per_name)


# -- inputs to the program ---------------------------------------------------------------


@functools.cache
def _installed_solvers() -> frozenset[str]:
    """cvxpy's list of installed solvers (it probes imports: asked once per process)."""
    import cvxpy as cp

    return frozenset(cp.installed_solvers())


def _check_solvers(solvers: list[str | Any] | None) -> list[str | Any] | None:
    """``solvers`` with each name in upper case (``"clarabel"`` is ``"CLARABEL"``); an
    unknown name is a ``ValidationError``, never a silent ``FALLBACK``."""
    if solvers is None:
        return None
    if isinstance(solvers, str) or not isinstance(solvers, list | tuple):
        raise ValidationError("solvers", [f"expected a list of solvers, got {solvers!r}"])
    named = [s.upper() if isinstance(s, str) else s for s in solvers]
    unknown = [
        repr(s)
        for s in named
        if (s not in SOLVERS if isinstance(s, str) else not callable(getattr(s, "name", None)))
    ]
    if unknown:
        raise ValidationError(
            "solvers",
            [
                f"unknown solver {', '.join(unknown)}: expected {', '.join(SOLVERS)} "
                "(in any case) or a cvxpy solver instance"
            ],
        )
    return named


VIA_CVXPY = {"CLARABEL_CVXPY": ("CLARABEL", "cvxpy")}
"""Chain names that run a solver on cvxpy's compile of the program: Clarabel there
rescues books whose direct solve ends inaccurate (benchmarks/README.md, "Solver chain")."""


def _route(solver: str | Any) -> tuple[str | Any, str]:
    """The solver a chain entry runs and the path it takes (``direct`` or ``cvxpy``)."""
    if isinstance(solver, str) and solver in VIA_CVXPY:
        return VIA_CVXPY[solver]
    return solver, "direct"


def _solve_chain(
    program: GateProgram, solvers: list[str | Any], values: Values, *, max_iters: int
) -> tuple[Solved | None, list[dict[str, str]]]:
    """The first accurate answer along the chain of ``solvers``, and the chain taken.

    An answer is accurate when it meets the tolerance its solver was asked for (status
    ``optimal``) and keeps the hard box to 1e-6. One short of that is recorded as
    inaccurate and the next solver tried, so a run never reports ``OPTIMAL`` on it; with
    no accurate answer the caller takes the de-risk-only fallback (``FALLBACK``).
    """
    chain: list[dict[str, str]] = []
    for solver in solvers:
        name = solver if isinstance(solver, str) else str(solver.name())
        target, via = _route(solver)
        if isinstance(target, str) and target != "CLARABEL" and target not in _installed_solvers():
            chain.append({"solver": name, "outcome": "not installed"})
            continue
        try:
            candidate = program.solve(target, max_iters=max_iters, values=values, via=via)
        except (SolverFailed, ValueError, ArithmeticError) as err:
            chain.append({"solver": name, "outcome": f"failed: {err}"})
            log.warning("solver %s failed: %s", name, err)
            continue
        problem = _accuracy_problem(candidate, _Box(values.lo, values.hi, values.w_lo, values.w_hi))
        if problem:
            chain.append({"solver": name, "outcome": f"inaccurate: {problem}"})
            log.warning("solver %s inaccurate: %s", name, problem)
            continue
        chain.append({"solver": name, "outcome": candidate.status})
        return candidate, chain
    return None, chain


def _check_gamma(value: float) -> float:
    try:
        gamma = float(value)
    except (TypeError, ValueError):
        raise ValidationError("risk_aversion", [f"not a number: {value!r}"]) from None
    if not np.isfinite(gamma) or gamma < 0:
        raise ValidationError("risk_aversion", [f"must be a finite number >= 0, got {value!r}"])
    return gamma


def _name_gamma(
    value: float | Mapping[str, float] | np.ndarray | None, data: ProgramData
) -> np.ndarray:
    if value is None:
        return np.ones(data.n)
    if isinstance(value, Mapping):
        arr = data.by_name(value, 1.0)
    elif np.isscalar(value):
        arr = np.full(data.n, float(value))  # type: ignore[arg-type]
    else:
        arr = np.asarray(value, dtype=float)
        if arr.shape != (data.n,):
            raise ValidationError(
                "name_risk_aversion", [f"expected {data.n} values, got shape {arr.shape}"]
            )
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValidationError("name_risk_aversion", ["values must be finite and >= 0"])
    return arr


def _hard_box(data: ProgramData, bounds: list[HardBound]) -> tuple[np.ndarray, np.ndarray]:
    """Intersection of every hard box; each contains h0, so the result does too."""
    lo = np.full(data.n, -np.inf)
    hi = np.full(data.n, np.inf)
    for b in bounds:
        lo = np.maximum(lo, b.lo)
        hi = np.minimum(hi, b.hi)
    # Unbounded sides get a finite, harmless bound (1000% of NAV) for the solver.
    lo = np.minimum(np.maximum(lo, -10.0), data.h0)
    hi = np.maximum(np.minimum(hi, 10.0), data.h0)
    return lo, hi


def _pair_box(data: ProgramData, bounds: list[HardBound]) -> tuple[np.ndarray, np.ndarray]:
    """Intersection of every per-pair box (each contains ``w0``), finite for the solver."""
    lo = np.full(data.p, -NO_LIMIT)
    hi = np.full(data.p, NO_LIMIT)
    for b in bounds:
        if b.pair_lo is not None and b.pair_hi is not None:
            lo = np.maximum(lo, b.pair_lo)
            hi = np.minimum(hi, b.pair_hi)
    return np.minimum(lo, data.w0), np.maximum(hi, data.w0)


def _risk_scale(data: ProgramData, c: np.ndarray, gamma_i: np.ndarray) -> float:
    """``T / V``: the proposal's tracking size ``Σ c w̃²`` over its risk at ``h̃``.

    Scaling the risk term by it gives ``γ`` one meaning whatever the book's size or number
    of names: along the proposal's direction, tracking and risk trade one for one, so with
    no limit binding (and equal specific risks, no factors, ``c = 1``) the gate returns
    ``h̃ / (1 + γ)``. A proposal with (almost) no risk has nothing to scale: 0.
    """
    if data.specific_var is None:
        return 0.0
    h = data.h_tilde
    variance = float(np.sum(gamma_i * data.specific_var * h * h))
    if data.loadings is not None and data.factor_cov is not None:
        f = data.loadings.T @ h
        variance += float(f @ data.factor_cov @ f)
    tracking = float(np.sum(c * data.w_tilde * data.w_tilde))
    return tracking / variance if variance > RISKLESS * tracking else 0.0


def _tracking_weights(data: ProgramData, cs: ConstraintSet) -> np.ndarray:
    conf = np.maximum(data.confidence, cs.objective.confidence_floor)
    return np.where(data.has_decision, conf, cs.objective.hold_weight)


def _cost_weights(data: ProgramData, cs: ConstraintSet) -> np.ndarray:
    if not cs.objective.costs:
        return np.zeros(data.n)
    return (0.5 * data.spread_bps + cs.objective.commission_bps) * 1e-4


class _Box(NamedTuple):
    """The hard limits as boxes: per ticker (``lo``, ``hi``) and per pair."""

    lo: np.ndarray
    hi: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray

    def holds(self, h: np.ndarray, w: np.ndarray) -> bool:
        """Whether ``h`` and ``w`` lie in the boxes, to the last bit."""
        return bool(
            np.all(self.lo <= h)
            and np.all(h <= self.hi)
            and np.all(self.w_lo <= w)
            and np.all(w <= self.w_hi)
        )


def _box_violation(solved: Solved, box: _Box) -> float:
    if not (np.isfinite(solved.w).all() and np.isfinite(solved.h).all()):
        return float("inf")
    return float(
        max(
            np.max(np.maximum(solved.h - box.hi, box.lo - solved.h), initial=0.0),
            np.max(np.maximum(solved.w - box.w_hi, box.w_lo - solved.w), initial=0.0),
        )
    )


def _accuracy_problem(solved: Solved, box: _Box) -> str | None:
    if not (np.isfinite(solved.w).all() and np.isfinite(solved.h).all()):
        return "non-finite solution"
    violation = _box_violation(solved, box)
    if violation > 1e-6:
        return f"hard box violated by {violation:.2e}"
    if solved.status != SOLVER_OPTIMAL:
        shortfall = (
            ""
            if solved.residual is None
            else f" (residual {solved.residual:.1e}, above {ACCEPTED_TOLERANCE:g})"
        )
        return f"status {solved.status}{shortfall}"
    return None


def _exact_if_proposal_optimal(
    solved: Solved,
    data: ProgramData,
    limits: list[Limit],
    box: _Box,
    *,
    gamma: float,
    kappa: np.ndarray,
    costs: bool,
) -> Solved:
    """The proposal itself, exactly, where it is known to be optimal; else ``solved``.

    With no risk aversion (γ = 0) and no trading cost on the proposed trades, the
    objective is the tracking term alone, whose minimum (zero) is the proposal. If the
    proposal also meets the hard box and every policy row (to the last bit, no
    tolerance), it is the solution, with zero slacks and zero multipliers. An
    interior-point solver only comes within its tolerance of it (about 1e-7 of NAV), which
    would let a compliant proposal move by a lot after rounding; this returns it unchanged.
    """
    w, h = data.w_tilde, data.h_tilde
    if gamma != 0.0 or (costs and np.any((kappa > 0) & (h != data.h0))):
        return solved
    if not box.holds(h, w):
        return solved
    if not all(np.all(limit.lhs(h, w) <= limit.rhs) for limit in limits):
        return solved
    return dataclasses.replace(
        solved,
        w=w.copy(),
        h=h.copy(),
        slacks=[np.zeros_like(s) for s in solved.slacks],
        duals=[np.zeros_like(d) for d in solved.duals],
        box_upper_dual=np.zeros_like(solved.box_upper_dual),
        box_lower_dual=np.zeros_like(solved.box_lower_dual),
        pair_upper_dual=np.zeros_like(solved.pair_upper_dual),
        pair_lower_dual=np.zeros_like(solved.pair_lower_dual),
        objective=0.0,
    )


def _breaches(limits: list[Limit], h: np.ndarray, w: np.ndarray) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for limit in limits:
        if limit.preference:
            continue
        resid = limit.residual(h, w)
        rows = np.flatnonzero(resid > BREACH_TOL)
        if not len(rows):
            continue
        lhs = limit.lhs(h, w)
        sign = -1.0 if limit.sense == "min" else 1.0
        for r in rows:
            out.append(
                {
                    "constraint": limit.name,
                    "description": limit.description,
                    "label": limit.labels[r],
                    "tier": limit.tier,
                    "value": float(sign * lhs[r]),
                    "limit": float(sign * limit.rhs[r]),
                    "breach": float(resid[r]),
                }
            )
    out.sort(key=lambda b: (b["tier"], -b["breach"], b["constraint"], b["label"]))
    return out


def _binding(
    limits: list[Limit], bounds: list[HardBound], solved: Solved, data: ProgramData
) -> pd.DataFrame:
    """Policy rows and hard bounds with a multiplier above :data:`DUAL_TOL`, largest
    first (built from arrays: one frame, not one per limit)."""
    names, kinds, tiers, labels, duals, slacks = [], [], [], [], [], []
    for limit, lam, slack in zip(limits, solved.duals, solved.slacks, strict=True):
        rows = np.flatnonzero(lam > DUAL_TOL)
        if len(rows):
            names.append(np.full(len(rows), limit.name, dtype=object))
            kinds.append(np.full(len(rows), "policy", dtype=object))
            tiers.append(np.full(len(rows), limit.tier, dtype=float))
            labels.append(np.asarray(limit.labels, dtype=object)[rows])
            duals.append(lam[rows])
            slacks.append(slack[rows])
    hard = False
    for b, (upper, lower) in zip(
        bounds,
        box_duals_by_bound(bounds, solved.box_upper_dual, solved.box_lower_dual),
        strict=True,
    ):
        dual = upper + lower
        rows = np.flatnonzero(dual > DUAL_TOL)
        if len(rows):
            hard = True
            names.append(np.full(len(rows), b.name, dtype=object))
            kinds.append(np.full(len(rows), "hard", dtype=object))
            tiers.append(np.full(len(rows), np.nan))
            labels.append(np.asarray(data.tickers[rows], dtype=object))
            duals.append(dual[rows])
            slacks.append(np.zeros(len(rows)))
    if not names:
        return _empty_binding()
    name, label, dual = np.concatenate(names), np.concatenate(labels), np.concatenate(duals)
    order = np.lexsort((label.astype(str), name.astype(str), -dual))  # dual first, largest
    tier = np.concatenate(tiers)[order]
    return pd.DataFrame(
        {
            "constraint": name[order],
            "kind": np.concatenate(kinds)[order],
            "tier": tier if hard else tier.astype(np.int64),  # NaN only for hard bounds
            "label": label[order],
            "dual": dual[order],
            "slack": np.concatenate(slacks)[order],
        }
    )


def _empty_binding() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(dtype=t)
            for c, t in [
                ("constraint", object),
                ("kind", object),
                ("tier", float),
                ("label", object),
                ("dual", float),
                ("slack", float),
            ]
        }
    )


# -- fallback ------------------------------------------------------------------------------


def _derisk_fallback(
    data: ProgramData, limits: list[Limit], lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Keep every position, cut those above their per-name cap as far as the box allows.

    Only moves toward zero, never flips a sign, never opens a name: always within the
    hard box, which contains the segment from ``h0`` toward zero up to the trade limit.
    """
    cap = np.full(data.n, np.inf)
    for limit in limits:
        if limit.A is None and limit.transform == "abs" and limit.on == "h":
            cap = np.minimum(cap, limit.rhs)
    target = np.sign(data.h0) * np.minimum(np.abs(data.h0), cap)
    return np.clip(target, lo, hi)


def _pairs_from_tickers(data: ProgramData, h: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The fallback's pairs: each sleeve of a name cut in the name's proportion (the
    fallback only moves names toward zero, so every pair moves toward zero too)."""
    ratio = np.divide(h, data.h0, out=np.zeros(data.n), where=data.h0 != 0)
    return data.w0 * np.clip(ratio, 0.0, 1.0)[data.pair_ticker]


class _Lots(NamedTuple):
    """Targets in whole lots: per ticker and per (strategy, ticker) pair."""

    h: np.ndarray
    w: np.ndarray
    shares: np.ndarray
    pair_shares: np.ndarray


def _round_lots(
    prepared: PreparedInputs, box: _Box, h: np.ndarray, w: np.ndarray, limits: list[Limit]
) -> _Lots:
    """Round each ticker's trade to whole lots (never beyond a cap the solve kept), then
    split it among its sleeves in whole lots that keep every pair in its box."""
    data = prepared.data
    to_shares = data.nav / data.price
    pt = data.pair_ticker
    pair_current = (
        prepared.pair_shares if prepared.pair_shares is not None else data.w0 * to_shares[pt]
    )
    pair_bounds = pair_lot_bounds(
        pair_current, box.w_lo, box.w_hi, to_shares[pt], data.lot_size[pt]
    )
    summed = (
        np.bincount(pt, weights=pair_bounds[0], minlength=data.n),
        np.bincount(pt, weights=pair_bounds[1], minlength=data.n),
    )
    rounding = functools.partial(
        round_to_lots,
        current=prepared.current_shares,
        lo=box.lo,
        hi=box.hi,
        price=data.price,
        lot_size=data.lot_size,
        nav=data.nav,
        lot_bounds=summed,
    )
    shares, h_final = rounding(h)
    # Solver noise may round a name a hair above what the solve left it; where that would
    # break a limit the solve kept, those names round toward zero instead.
    grown = np.abs(h_final) > np.abs(h) + 1e-15
    if grown.any() and _worsened(limits, h, h_final, w):
        shares, h_final = rounding(h, strict=grown)
        shares = _lots_back_under(limits, (h, w), shares, prepared, box, summed)
        h_final = shares / to_shares
    trade = (shares - prepared.current_shares) / data.lot_size
    solved_trade = (w * to_shares[pt] - pair_current) / data.lot_size[pt]
    eps = np.clip(SOLVER_NOISE * to_shares[pt] / data.lot_size[pt], EPS_LOTS, 0.5)
    toward_zero = np.where(w >= 0, np.floor(solved_trade + eps), np.ceil(solved_trade - eps))
    closing = closing_bounds(pair_bounds, pair_current, box.w_lo, box.w_hi, data.lot_size[pt])
    k = split_to_sleeves(trade, solved_trade, toward_zero, pair_bounds, pt, closing)
    pair_shares = pair_current + k * data.lot_size[pt]
    # Whole shares stay whole (no float noise for a consumer that truncates), a pair that
    # closes is exactly zero, and the ticker is its sleeves' sum.
    whole = np.abs(pair_shares - np.round(pair_shares)) < 1e-6
    pair_shares = np.where(whole, np.round(pair_shares), pair_shares)
    pair_shares = np.where(np.abs(pair_shares) < 1e-9, 0.0, pair_shares)
    shares = np.bincount(pt, weights=pair_shares, minlength=data.n)
    return _Lots(shares / to_shares, pair_shares / to_shares[pt], shares, pair_shares)


def _lots_back_under(
    limits: list[Limit],
    solved: tuple[np.ndarray, np.ndarray],
    shares: np.ndarray,
    prepared: PreparedInputs,
    box: _Box,
    summed: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Where a hard limit held a name a fraction of a lot above its solved size (sold the
    most the trade limit allows), take whole lots off other names of the same row (gross,
    long, short, a group's gross) until the row is back where the solve left it."""
    data = prepared.data
    h, w = solved
    to_shares, lot, current = data.nav / data.price, data.lot_size, prepared.current_shares
    step = -np.sign(shares) * lot
    k_new = (shares + step - current) / lot
    k_lo = np.maximum(np.ceil((box.lo * to_shares - current) / lot - EPS_LOTS), summed[0])
    k_hi = np.minimum(np.floor((box.hi * to_shares - current) / lot + EPS_LOTS), summed[1])
    can = (
        (np.abs(shares) >= lot)
        & (k_new >= np.minimum(k_lo, 0.0))
        & (k_new <= np.maximum(k_hi, 0.0))
    )
    side = {"abs": can, "pos": can & (shares > 0), "neg": can & (shares < 0)}
    shares = shares.copy()
    for limit in limits:
        if limit.on != "h" or limit.A is None or limit.transform not in side:
            continue
        excess = limit.residual(shares / to_shares, w) - limit.residual(h, w)
        for r in np.flatnonzero(excess > 1e-12):
            row = limit.A.getrow(r)
            free = side[limit.transform][row.indices]
            names, size = row.indices[free], (row.data * data.lot_weight[row.indices])[free]
            order = np.argsort(-size, kind="stable")
            taken = np.cumsum(size[order]) - size[order] < excess[r]
            chosen = names[order[taken]]
            shares[chosen] += step[chosen]
            for mask in side.values():
                mask[chosen] = False
    return shares


def _worsened(limits: list[Limit], h: np.ndarray, rounded: np.ndarray, w: np.ndarray) -> bool:
    """Whether rounding ``h`` takes any ticker-level policy row further past its limit."""
    return any(
        np.any(limit.residual(rounded, w) > limit.residual(h, w) + 1e-12)
        for limit in limits
        if limit.on != "w"  # ticker weights, or the trade h − h0
    )


def _rounding_breaches(
    limits: list[Limit],
    solved: tuple[np.ndarray, np.ndarray],
    rounded: tuple[np.ndarray, np.ndarray],
) -> list[dict[str, Any]]:
    """Policy rows that the rounding to lots breaks beyond what the solve left them."""
    before = {(b["constraint"], b["label"]): b["breach"] for b in _breaches(limits, *solved)}
    out = []
    for b in _breaches(limits, *rounded):
        if b["breach"] > before.get((b["constraint"], b["label"]), 0.0) + BREACH_TOL:
            out.append(b | {"cause": "lots"})
    return out


def _fallback_attribution(data: ProgramData, h: np.ndarray) -> Attribution:
    deviation = h - data.h_tilde
    cause = Cause(
        "fallback.derisk_only", "de-risk-only fallback (no solver succeeded)", "portfolio"
    )
    return Attribution((cause,), deviation[:, None].copy(), deviation, {})


# -- the diff tables -------------------------------------------------------------------------


class _Labelled(NamedTuple):
    """Each pair's label, with what the names' labels are read against."""

    pairs: np.ndarray
    tol: np.ndarray
    """Each name's tolerance (weight), lots included."""
    name_scope: np.ndarray
    """Whether each name's dominant cause is a per-name limit (CAPPED, not SCALED_DOWN)."""


def _label_pairs(
    data: ProgramData,
    cs: ConstraintSet,
    attribution: Attribution,
    w_final: np.ndarray,
    *,
    fallback: bool,
) -> _Labelled:
    """Label every pair (:func:`label_trades`); in the fallback a decided pair moved off
    its proposal is REJECTED."""
    tol_t = cs.labels.weight_tol + cs.labels.lot_tol * data.lot_weight
    dom = attribution.dominant() if data.n else np.zeros(0, dtype=int)
    name_scope = np.array([c.scope == "name" for c in attribution.causes], dtype=bool)
    name_scope_t = name_scope[dom]
    pt = data.pair_ticker
    proposed_trade = data.w_tilde - data.w0
    final_trade = w_final - data.w0
    pair_labels = label_trades(proposed_trade, final_trade, tol_t[pt], name_scope_t[pt])
    if fallback:
        pair_labels = np.where(
            (np.abs(final_trade - proposed_trade) > tol_t[pt]) & data.has_decision,
            REJECTED,
            pair_labels,
        )
    return _Labelled(pair_labels, tol_t, name_scope_t)


def _decision_counts(decisions: pd.DataFrame, pair_labels: np.ndarray) -> dict[str, int]:
    """Decisions by label, as :meth:`RebalanceResult.label_counts` reads them from the
    actions table: a valid decision has its pair's label, a row rejected before the solve
    is REJECTED (counted only where it has a decision id, as in the table)."""
    pair = decisions["pair"].to_numpy()
    rejected = pair < 0
    labels = pair_labels[pair[~rejected]]
    unsolved = int(np.count_nonzero(rejected & decisions["decision_id"].notna().to_numpy()))
    return {
        str(label): int(np.count_nonzero(labels == label)) + (unsolved if label == REJECTED else 0)
        for label in LABEL_ORDER
    }


def _diff_tables(
    prepared: PreparedInputs,
    labelled: _Labelled,
    run: RunInfo,
    *,
    attribution: Attribution,
    h_final: np.ndarray,
    w_final: np.ndarray,
    target_shares: np.ndarray,
    pair_shares: np.ndarray,
    h_solved: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    data = prepared.data
    current_shares = prepared.current_shares
    pair_labels, tol_t, name_scope_t = labelled
    pt = data.pair_ticker
    final_trade = w_final - data.w0
    # Tickers' weights as text, then pairs' (a pair alone on its ticker reads the same).
    h_tilde = data.h_tilde
    p_text, f_text, c_text = (percent_texts(v) for v in (h_tilde, h_final, data.h0))

    def on_pairs(ticker_values: np.ndarray, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        return ticker_values[pt], _take(texts, pt)

    pair_texts = (
        percent_texts(data.w_tilde, like=on_pairs(h_tilde, p_text)),
        percent_texts(w_final, like=on_pairs(h_final, f_text)),
        percent_texts(data.w0, like=on_pairs(data.h0, c_text)),
    )
    sentences: dict[int, str] = {}  # each name explained once, for its pairs and itself
    pair_reasons = reasons(pair_labels, attribution, pair_texts, data.has_decision, pt, sentences)

    # Tickers.
    ticker_labels = label_trades(h_tilde - data.h0, h_final - data.h0, tol_t, name_scope_t)
    ticker_reasons = _ticker_reasons(
        data,
        attribution,
        ticker_labels,
        (p_text, f_text, c_text),
        h_final,
        w_final,
        pair_labels,
        pair_reasons,
        sentences,
    )
    conf = np.zeros(data.n)
    np.maximum.at(conf, pt, np.where(data.has_decision, data.confidence, 0.0))
    # Under EMERGENCY the largest de-risking trades, by stand-alone risk removed, go first.
    risk_removed = (
        (np.abs(data.h0) - np.abs(h_final)) * data.volatility if run.state == "EMERGENCY" else None
    )
    priority = execution_priority(
        data.tickers, current_shares, target_shares, data.adv_shares, conf, risk_removed
    )
    # In execution order (the priorities are the ranks 1..N); carried names go last.
    first = np.argsort(priority)
    names = text_array(data.tickers)
    targets = pd.DataFrame(
        {
            "ticker": string_take(names, first),
            "current_position": current_shares[first],
            "target_position": target_shares[first],
            "delta_position": (target_shares - current_shares)[first],
            "current_weight": data.h0[first],
            "target_weight": h_final[first],
            "proposed_weight": h_tilde[first],
            "solved_weight": None if h_solved is None else h_solved[first],
            "priority": priority[first],
            "action_type": string_column(np.asarray(ticker_labels)[first]),
            "risk_reasoning_summary": string_column(ticker_reasons[first]),
        }
    )
    unpriced = prepared.unpriced_holdings
    if len(unpriced):
        carried = unpriced.groupby("ticker", as_index=False)["quantity"].sum()
        extra = pd.DataFrame(
            {
                "ticker": carried["ticker"].astype(str),
                "current_position": carried["quantity"],
                "target_position": carried["quantity"],
                "delta_position": 0.0,
                "current_weight": np.nan,
                "target_weight": np.nan,
                "proposed_weight": np.nan,
                "solved_weight": np.nan,
                "priority": np.arange(len(targets) + 1, len(targets) + 1 + len(carried)),
                "action_type": OK,
                "risk_reasoning_summary": "carried unchanged: no valid price",
            }
        )
        targets = pd.concat([targets, extra], ignore_index=True)

    sleeves = pd.DataFrame(
        {
            "strategy_id": string_column(data.pair_strategy.astype(str)),
            "ticker": string_take(names, pt),
            "current_weight": data.w0,
            "proposed_weight": data.w_tilde,
            "target_weight": w_final,
            "current_position": (
                prepared.pair_shares
                if prepared.pair_shares is not None
                else data.w0 * data.nav / data.price[pt]
            ),
            "target_position": pair_shares,
            "has_decision": data.has_decision,
            "action_type": string_column(pair_labels),
        }
    )

    # Actions: one per decision, plus one per pair the gate changed without a decision.
    d = prepared.decisions
    common = shared_json(
        {
            "gamma": run.gamma,
            "state": run.state,
            "exposures_before": run.exposures_before,
            "exposures_after": run.exposures_after,
        }
    )
    pair_of_row = d["pair"].to_numpy()
    rejected = pair_of_row < 0  # rejected before the solve: no pair
    changed = np.flatnonzero(~data.has_decision & (np.abs(final_trade) > tol_t[pt]))
    acted = np.concatenate([pair_of_row[~rejected].astype(int), changed])
    explained = attribution_json(attribution, np.unique(pt[acted[pair_labels[acted] != OK]]))
    decision_ids = d["decision_id"].to_numpy(dtype=object)[~rejected].tolist()
    columns = _pair_actions(
        data,
        acted,
        decision_ids + [None] * len(changed),
        pair_labels,
        pair_reasons,
        w_final,
        common,
        explained,
        costs=attribution.has_costs,
    )
    # Rows rejected before the solve go back to their place (in increasing order, each
    # lands at its own index).
    records = d.loc[rejected].to_dict("records") if rejected.any() else []
    for k, rec in zip(np.flatnonzero(rejected).tolist(), records, strict=True):
        reject = rec["reject_reason"]
        row = _rejected(rec, {"reason": f"REJECTED: {reject}", "sanity_reject": reject}, common)
        for name, column in columns.items():
            column.insert(k, row[name])
    action_id = [f"{run.run_id}-{k:05d}" for k in range(len(columns["ticker"]))]
    actions = pd.DataFrame(
        {"action_id": string_column(action_id), "run_id": run.run_id, "timestamp": run.created_at}
        | {k: string_column(v) if _ACTION_COLUMNS[k] is str else v for k, v in columns.items()}
    )
    return {"targets": targets, "sleeves": sleeves, "actions": actions}


def _ticker_reasons(
    data: ProgramData,
    attribution: Attribution,
    labels: np.ndarray,
    texts: tuple[list[str], list[str], list[str]],
    h_final: np.ndarray,
    w_final: np.ndarray,
    pair_labels: np.ndarray,
    pair_reasons: list[str],
    sentences: dict[int, str],
) -> np.ndarray:
    """Each name's reason (:func:`reasons`, a decision being any of its pairs'). A name
    held by one pair that reads as it does (label, decision, the three weights) has that
    pair's reason, word for word; the others' are written."""
    pt = data.pair_ticker
    decided = np.asarray(data.M @ data.has_decision.astype(float)) > 0
    pair_of = np.zeros(data.n, dtype=np.intp)
    pair_of[pt] = np.arange(len(pt))  # a name's pair, where it has one only
    same = (
        (np.bincount(pt, minlength=data.n) == 1)
        & (labels == pair_labels[pair_of])
        & (decided == data.has_decision[pair_of])
        & (data.h_tilde == data.w_tilde[pair_of])
        & (h_final == w_final[pair_of])
        & (data.h0 == data.w0[pair_of])
    )
    out = np.empty(data.n, dtype=object)
    out[same] = np.array(pair_reasons, dtype=object)[pair_of[same]]
    written = np.flatnonzero(~same)
    out[written] = reasons(
        labels[written],
        attribution,
        (_take(texts[0], written), _take(texts[1], written), _take(texts[2], written)),
        decided[written],
        written,
        sentences,
    )
    return out


def _take(texts: list[str], at: np.ndarray) -> list[str]:
    """``texts`` at the indices ``at``."""
    return np.array(texts, dtype=object)[at].tolist()


_ACTION_COLUMNS: dict[str, type] = {
    "ticker": str,
    "decision_id": str,
    "strategy_id": str,
    "action_type": str,
    "proposed_weight": float,
    "final_weight": float,
    "current_weight": float,
    "reason": str,
    "details_json": str,
}
"""The actions table's columns after ``action_id`` (text too), in order, each with its
kind: text columns are built by :func:`string_column`."""


def _rejected(rec: Mapping[Any, Any], details: dict[str, Any], shared: str = "") -> dict[str, Any]:
    """The action row of a decision rejected before the solve."""
    values = (
        rec["ticker"],
        rec["decision_id"],
        rec["strategy_id"],
        REJECTED,
        float(rec["target_weight"]),
        np.nan,
        np.nan,
        details["reason"],
        details_json(details, shared),
    )
    return dict(zip(_ACTION_COLUMNS, values, strict=True))


def _pair_actions(
    data: ProgramData,
    pairs: np.ndarray,
    decision_ids: list[Any],
    labels: np.ndarray,
    texts: list[str],
    w_final: np.ndarray,
    common: str,
    explained: dict[int, str],
    *,
    costs: bool,
) -> dict[str, list[Any]]:
    """The action rows of ``pairs``, column by column. Each ``details_json`` is what
    ``json.dumps(details, sort_keys=True)`` gives for the keys ``attribution`` (the
    ticker's, encoded once by :func:`attribution_json`), ``confidence``, ``cost_weight``
    (with costs), ``current_weight``, ``final_weight``, ``proposed_weight`` and
    ``reason``, followed by the run's ``common`` keys."""
    tickers = data.pair_ticker[pairs]
    label = labels[pairs].astype(str).tolist()
    reason = [texts[j] for j in pairs.tolist()]
    current = data.w0[pairs].tolist()
    proposed = data.w_tilde[pairs].tolist()
    final = w_final[pairs].tolist()
    decided = data.has_decision[pairs]
    confidence = np.full(len(pairs), "null", dtype=object)  # no decision: JSON null
    confidence[decided] = json_numbers(data.confidence[pairs][decided].tolist())
    cost = ', "cost_weight": true' if costs else ""
    details = [
        f'{{"attribution": {"[]" if lab == OK else explained[i]}, "confidence": '
        f"{conf}{cost}, "
        f'"current_weight": {cur}, "final_weight": {fin}, '
        f'"proposed_weight": {pro}, "reason": {encode_json_string(text)}, '
        f"{common}}}"
        for i, lab, conf, cur, fin, pro, text in zip(
            tickers.tolist(),
            label,
            confidence.tolist(),
            json_numbers(current),
            json_numbers(final),
            json_numbers(proposed),
            reason,
            strict=True,
        )
    ]
    columns = (
        data.tickers[tickers].astype(str).tolist(),
        decision_ids,
        data.pair_strategy[pairs].astype(str).tolist(),
        label,
        proposed,
        final,
        current,
        reason,
        details,
    )
    return dict(zip(_ACTION_COLUMNS, columns, strict=True))


# -- degraded runs ---------------------------------------------------------------------------


def _one_line(err: Exception) -> str:
    return err.one_line() if isinstance(err, ValidationError | ConfigError) else str(err)


def _conservative_for(book: Book, caller: ConstraintSet | None = None) -> ConstraintSet:
    """The conservative set, stripped of what this book cannot support (logged), and
    intersected with the ``caller``'s hard limits, so that a fallback never loosens them:
    its restricted names (those the book has), the tighter trade limit and liquidity
    gates, its states' no-new-positions and de-risk-only, the stricter default state and
    the shorter age after which a state is stale."""
    cs = ConstraintSet.load("conservative")
    if book.risk_model is None:
        log.warning(
            "conservative fallback: the book has no risk model, the volatility cap is not applied"
        )
        cs = cs.replace(**{"risk.max_volatility": None})
    if caller is None:
        return cs
    names = set(book.market.index.astype(str))
    close = (set(cs.restricted.close) | set(caller.restricted.close)) & names
    reduce_only = (set(cs.restricted.reduce_only) | set(caller.restricted.reduce_only)) & names
    changes: dict[str, Any] = {
        "restricted.close": sorted(close),
        "restricted.reduce_only": sorted(reduce_only - close),
        "states.default_state": max(
            cs.states.default_state, caller.states.default_state, key=STATES.index
        ),
        "states.max_age_hours": min(cs.states.max_age_hours, caller.states.max_age_hours),
    }
    hard_limits = (
        ("trading.max_trade_pct_adv", min),
        ("liquidity.max_spread_bps", min),
        ("liquidity.max_tick_to_price", min),
        ("liquidity.min_price", max),
    )
    for key, pick in hard_limits:
        changes[key] = _tighter(pick, _setting(cs, key), _setting(caller, key))
    for state in STATES:
        own = caller.states.sop(state)
        hard = StateSOP(no_new_positions=own.no_new_positions, derisk_only=own.derisk_only)
        changes[f"states.{state}"] = cs.states.sop(state).at_least(hard).model_dump()
    return cs.replace(**changes)


def _setting(cs: ConstraintSet, dotted: str) -> Any:
    """The value of ``cs`` at a dotted key (``"trading.max_trade_pct_adv"``)."""
    node: Any = cs
    for key in dotted.split("."):
        node = getattr(node, key)
    return node


def _tighter(
    pick: Callable[[float, float], float], a: float | None, b: float | None
) -> float | None:
    """The tighter of two limits by ``pick`` (``min`` for a cap, ``max`` for a floor);
    ``None`` is no limit."""
    return b if a is None else a if b is None else pick(a, b)


def degraded_result(
    decisions: pd.DataFrame,
    reason: str,
    *,
    run_id: str | None = None,
    store: str | None = None,
    as_of: dt.date | None = None,
) -> RebalanceResult:
    """The run when the portfolio state is unavailable: no trade at all, every decision
    ``REJECTED`` with the reason. Without positions no trade can be sized, so holding
    (taking no new risk) is the only safe action."""
    log.error(reason)
    d = check_decision_columns(decisions)
    run_id = run_id or uuid.uuid4().hex[:16]
    created = dt.datetime.now(dt.UTC)
    rows = [
        _rejected(rec, {"reason": f"REJECTED: {reason}; no new risk is taken", "state": None})
        for rec in d.to_dict("records")
    ]
    actions = pd.DataFrame(rows, columns=list(_ACTION_COLUMNS))
    actions.insert(0, "action_id", [f"{run_id}-{k:05d}" for k in range(len(actions))])
    actions.insert(1, "run_id", run_id)
    actions.insert(2, "timestamp", created)
    run = RunInfo(
        run_id=run_id,
        as_of=as_of or created.date(),
        created_at=created,
        status=DEGRADED,
        constraint_set="-",
        solver=None,
        solver_chain=[],
        gamma=0.0,
        state="UNKNOWN",
        state_source="unresolved",
        warnings=[reason],
        alerts=[reason],
        program_built=False,
    )
    targets = pd.DataFrame(columns=list(TARGET_COLUMNS))
    result = RebalanceResult(
        run=run,
        targets=targets,
        sleeve_targets=pd.DataFrame(),
        actions=actions,
        binding=_empty_binding(),
        attribution=pd.DataFrame(),
    )
    run.counts = {str(k): int(v) for k, v in result.label_counts().items()}
    if store is not None:
        from riskopt.optimizer.store import store_result

        store_result(result, store)
    return result
