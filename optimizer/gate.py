"""The gate as named stages, each taking and returning plain values.

load inputs → resolve policy and state (with the calmer-state envelope) → prepare →
choose risk aversion → assemble → solve (chain and fallback) → lots → label and
attribute → run record → tables or summary → store.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from riskopt.constraints.base import Limit
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.states import (
    BlackSwanState,
    ResolvedState,
    resolve_state,
    tightened,
    with_envelope,
)
from riskopt.data.book import Book
from riskopt.data.contracts import DecisionsInput
from riskopt.data.errors import BookLoadError, ValidationError
from riskopt.data.loaders import book_date, load_book
from riskopt.optimizer.assemble import (
    Assembled,
    NameGamma,
    RiskAversion,
    assemble,
    choose_risk_aversion,
)
from riskopt.optimizer.diff import Attribution, Cause, attribute
from riskopt.optimizer.fallback import conservative_for, degraded_result, one_line
from riskopt.optimizer.inputs import PreparedInputs, prepare
from riskopt.optimizer.lots import Lots, round_lots
from riskopt.optimizer.minimum import apply_minimums
from riskopt.optimizer.program import ProgramCache
from riskopt.optimizer.result import (
    DEGRADED,
    FALLBACK,
    OPTIMAL,
    RELAXED,
    BookSummary,
    RebalanceResult,
    RunInfo,
    exposures,
)
from riskopt.optimizer.solve import Solution, solve
from riskopt.optimizer.tables import (
    Labelled,
    binding_table,
    decision_counts,
    diff_tables,
    empty_binding,
    label_pairs,
    priority_of,
)

log = logging.getLogger("riskopt")

BREACH_TOL = 1e-6
"""A policy row counts as breached when its residual exceeds this (weight units)."""
CALMER = {"ELEVATED": "NORMAL", "EMERGENCY": "ELEVATED"}


@dataclass(frozen=True)
class Options:
    """How a run is made, beyond its book, decisions and set (see ``rebalance``)."""

    state: str | BlackSwanState | None
    risk_aversion: float | None
    """Checked (finite, ≥ 0), or ``None`` for the debate's."""
    name_risk_aversion: NameGamma
    solvers: list[str | Any] | None
    """Checked names, or ``None`` for the set's chain."""
    cache: ProgramCache | None
    strict: bool
    now: dt.datetime | None


@dataclass(frozen=True)
class Policy:
    """The set in force, the state it is tightened by, the inputs prepared under it,
    whether the run fell back to the conservative set, and the alerts so far."""

    cs: ConstraintSet
    resolved: ResolvedState
    prepared: PreparedInputs
    degraded: bool
    alerts: list[str]


class Verdict(NamedTuple):
    """Each name's attribution, each pair's label, the breaches left and the status."""

    attribution: Attribution
    labelled: Labelled
    breaches: list[dict[str, Any]]
    status: str


def gate(
    book: Book | str | Path,
    decisions: DecisionsInput,
    constraint_set: ConstraintSet | str | Path,
    options: Options,
    *,
    run_id: str | None,
    store: str | None,
) -> RebalanceResult | Gated:
    """The gate up to its labels: a book that cannot be loaded comes back as its
    ``DEGRADED`` result (stored if ``store``), any other as :class:`Gated`."""
    t_start = time.perf_counter()
    loaded = load_inputs(book, decisions, run_id=run_id, store=store)
    if isinstance(loaded, RebalanceResult):
        return loaded
    policy = resolve_policy(loaded, decisions, constraint_set, options)
    data = policy.prepared.data
    aversion = choose_risk_aversion(
        loaded,
        data,
        policy.cs,
        policy.resolved,
        options.risk_aversion,
        options.name_risk_aversion,
    )
    assembled = assemble(data, policy.cs, aversion)
    t_prepared = time.perf_counter()
    # One cache for the solve and the minimum sizes' re-solves: those change values only.
    cache = options.cache if options.cache is not None else ProgramCache(1)
    solution = solve(assembled, solvers=options.solvers, cache=cache)
    lots = round_lots(policy.prepared, assembled.box, solution.h, solution.w, assembled.limits)
    minimum = apply_minimums(
        policy.prepared, assembled, solution, lots, solvers=options.solvers, cache=cache
    )
    assembled, solution, lots = minimum.assembled, minimum.solution, minimum.lots
    policy.alerts.extend(minimum.alerts)
    t_solved = time.perf_counter()
    verdict = label_and_attribute(assembled, solution, lots, degraded=policy.degraded)
    run = run_record(loaded, policy, assembled, solution, lots, verdict, run_id=run_id)
    run.timings.update(
        {
            "prepare": t_prepared - t_start,
            "solve": t_solved - t_prepared,
            "solver": solution.solved.solve_seconds if solution.solved is not None else 0.0,
        }
    )
    return Gated(
        policy.prepared, run, assembled, solution, lots, verdict, t_start, t_solved, minimum.notes
    )


def load_inputs(
    book: Book | str | Path, decisions: DecisionsInput, *, run_id: str | None, store: str | None
) -> Book | RebalanceResult:
    """The book (read from its directory if a path), or the ``DEGRADED`` result of a
    book that cannot be loaded."""
    if isinstance(book, str | Path):
        path = book
        try:
            book = load_book(path)
        except (BookLoadError, ValidationError) as err:
            return degraded_result(
                decisions,
                f"portfolio state could not be loaded: {one_line(err)}",
                run_id=run_id,
                store=store,
                as_of=book_date(path),
            )
    if not isinstance(book, Book):
        raise ValidationError(
            "book", [f"expected a Book or a book directory, got {type(book).__name__}"]
        )
    return book


def resolve_policy(
    book: Book,
    decisions: DecisionsInput,
    constraint_set: ConstraintSet | str | Path,
    options: Options,
) -> Policy:
    """Load the set, resolve the state, tighten and cap the set by the calmer state's
    outcome, and prepare the inputs; a set that does not fit the book gives the
    conservative set (``DEGRADED``), or a ``ConfigError`` when ``strict``."""
    alerts: list[str] = []
    caller: ConstraintSet | None = None
    try:
        base = caller = (
            constraint_set
            if isinstance(constraint_set, ConstraintSet)
            else ConstraintSet.load(constraint_set)
        )
        resolved = resolve_state(options.state, base, now=options.now)
        cs = envelope(book, decisions, base, tightened(base, resolved), resolved, options, alerts)
        prepared = prepare(book, decisions, cs)
        degraded = False
    except ConfigError as err:
        if options.strict:
            raise
        alert = (
            f"inconsistent constraint set ({err.one_line()}): using conservative.toml under "
            "the current state, with the set's own hard limits"
        )
        log.error(alert)
        alerts.append(alert)
        degraded = True
        base = conservative_for(book, caller)
        resolved = resolve_state(options.state, base, now=options.now)
        cs = tightened(base, resolved)
        prepared = prepare(book, decisions, cs)
    alerts.extend(resolved.alerts)
    return Policy(cs, resolved, prepared, degraded, alerts)


def envelope(
    book: Book,
    decisions: DecisionsInput,
    base: ConstraintSet,
    cs: ConstraintSet,
    resolved: ResolvedState,
    options: Options,
    alerts: list[str],
) -> ConstraintSet:
    """Cap a stricter state's exposures at the calmer state's optimum on the same inputs.

    ELEVATED is capped by NORMAL's outcome and EMERGENCY by ELEVATED's (which is itself
    capped by NORMAL's), so gross, |net|, every |weight| and the ex-ante volatility never
    increase from one state to the next wherever the stricter state can reach them; where
    it cannot, the residual is reported as a breach of ``state.envelope.*``.
    """
    calmer = CALMER.get(resolved.state)
    if calmer is None or not base.states.never_exceed_calmer:
        return cs
    if resolved.sop == base.states.sop(calmer):
        return cs  # the same procedure gives the same outcome: nothing to cap
    optimum = calmer_optimum(book, decisions, base, calmer, options)
    if optimum is None:
        alerts.append(f"the {calmer} run ended {FALLBACK}: no calmer-state envelope applied")
        return cs
    tickers, h = optimum
    # The solver's continuous weights (before lots), plus the breach tolerance, so that an
    # envelope which merely coincides with the stricter state's own solution stays slack.
    model = book.risk_model
    caps = exposures(
        h,
        None if model is None else model.loadings.loc[tickers].to_numpy(dtype=float),
        None if model is None else model.factor_cov.to_numpy(dtype=float),
        None if model is None else model.specific_var.loc[tickers].to_numpy(dtype=float),
    )
    caps = {k: v + BREACH_TOL for k, v in caps.items()}
    caps["net"] = abs(float(h.sum())) + BREACH_TOL
    per_name = dict(zip(tickers, np.abs(h) + BREACH_TOL, strict=True))
    return with_envelope(cs, calmer, caps, per_name)


def calmer_optimum(
    book: Book, decisions: DecisionsInput, base: ConstraintSet, calmer: str, options: Options
) -> tuple[pd.Index, np.ndarray] | None:
    """The calmer state's solved weights per ticker (policy → prepare → assemble → solve;
    no tables), or ``None`` where it ends in the de-risk fallback."""
    calm = replace(options, state=calmer, strict=True, now=None)
    policy = resolve_policy(book, decisions, base, calm)
    data = policy.prepared.data
    aversion = choose_risk_aversion(
        book, data, policy.cs, policy.resolved, calm.risk_aversion, calm.name_risk_aversion
    )
    assembled = assemble(data, policy.cs, aversion)
    cache = calm.cache if calm.cache is not None else ProgramCache(1)
    solution = solve(assembled, solvers=calm.solvers, cache=cache)
    if solution.solved is None and data.n:
        return None
    lots = round_lots(policy.prepared, assembled.box, solution.h, solution.w, assembled.limits)
    # The calmer run's answer after its minimum sizes, as that run would give it.
    minimum = apply_minimums(
        policy.prepared, assembled, solution, lots, solvers=calm.solvers, cache=cache
    )
    solution, lots = minimum.solution, minimum.lots
    # In the calmer run's execution order, the order its exposures were always summed in.
    first = np.argsort(priority_of(policy.prepared, lots, policy.resolved.state))
    return pd.Index(data.tickers[first].astype(str)), solution.h[first]


def label_and_attribute(
    assembled: Assembled, solution: Solution, lots: Lots, *, degraded: bool
) -> Verdict:
    """Split each name's deviation by cause, label every pair, list the breaches left
    (by the solve, then by the lots) and set the run's status."""
    a, solved = assembled, solution.solved
    attribution = (
        _attribution(a, solution) if solved is not None else _fallback_attribution(a, solution.h)
    )
    breaches = _breaches(a.limits, solution.h, solution.w)
    status = FALLBACK if solved is None and a.data.n else (RELAXED if breaches else OPTIMAL)
    breaches = _with_rounding(breaches, _breaches(a.limits, lots.h, lots.w))
    if degraded:
        status = DEGRADED
    labelled = label_pairs(a.data, a.cs, attribution, lots.w, fallback=solved is None)
    return Verdict(attribution, labelled, breaches, status)


def _attribution(a: Assembled, solution: Solution) -> Attribution:
    """KKT attribution of the solver's answer."""
    solved = solution.solved
    assert solved is not None
    return attribute(
        a.data,
        solved.h,
        solved.w,
        c=a.c,
        gamma=a.aversion.gamma,
        risk_scale=a.risk_scale,
        gamma_i=a.aversion.gamma_i,
        kappa=a.kappa,
        costs=a.costs,
        impact=a.impact if a.has_impact else None,
        limits=a.limits,
        duals=solved.duals,
        bounds=a.bounds,
        lo=a.box.lo,
        hi=a.box.hi,
        box_upper_dual=solved.box_upper_dual,
        box_lower_dual=solved.box_lower_dual,
        pair_duals=(solved.pair_upper_dual, solved.pair_lower_dual),
    )


def _fallback_attribution(a: Assembled, h: np.ndarray) -> Attribution:
    """The fallback's attribution: the whole deviation to the de-risk-only cause."""
    deviation = h - a.data.h_tilde
    cause = Cause(
        "fallback.derisk_only", "de-risk-only fallback (no solver succeeded)", "portfolio"
    )
    return Attribution((cause,), deviation[:, None].copy(), deviation, {})


def _breaches(limits: list[Limit], h: np.ndarray, w: np.ndarray) -> list[dict[str, Any]]:
    """Hard-tier and soft policy rows left above their limit by more than BREACH_TOL."""
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


def _with_rounding(
    solved: list[dict[str, Any]], rounded: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The solve's breaches, each once: a row rounding to lots took further past its limit
    reads its final figures with ``by_lots``, what rounding added; a row only rounding
    broke has ``cause = "lots"``."""
    out = {(b["constraint"], b["label"]): b for b in solved}
    for b in rounded:
        key = (b["constraint"], b["label"])
        before = out.get(key)
        if before is None:
            out[key] = b | {"cause": "lots"}
        elif b["breach"] > before["breach"] + BREACH_TOL:
            out[key] = b | {"by_lots": b["breach"] - before["breach"]}
    return sorted(
        out.values(), key=lambda b: (b["tier"], -b["breach"], b["constraint"], b["label"])
    )


def run_record(
    book: Book,
    policy: Policy,
    assembled: Assembled,
    solution: Solution,
    lots: Lots,
    verdict: Verdict,
    *,
    run_id: str | None,
) -> RunInfo:
    """The run record: status, solver path, risk aversion, breaches, exposures, counts
    (timings are added by the caller)."""
    data, solved, debate = assembled.data, solution.solved, assembled.aversion.debate
    return RunInfo(
        run_id=run_id or uuid.uuid4().hex[:16],
        as_of=book.as_of,
        created_at=dt.datetime.now(dt.UTC),
        status=verdict.status,
        constraint_set=policy.cs.name,
        solver=solved.solver if solved is not None else None,
        solver_chain=solution.chain,
        gamma=assembled.aversion.gamma,
        breaches=verdict.breaches,
        exposures_before=exposures(data.h0, data.loadings, data.factor_cov, data.specific_var),
        exposures_after=exposures(lots.h, data.loadings, data.factor_cov, data.specific_var),
        timings={},
        warnings=list(policy.prepared.warnings),
        counts=decision_counts(policy.prepared.decisions, verdict.labelled.pairs),
        program_built=solution.program_built,
        state=policy.resolved.state,
        state_source=policy.resolved.source,
        alerts=policy.alerts,
        debate=[] if debate is None else debate.records(),
        risk_model=book.risk_model_record(),
    )


@dataclass
class Gated:
    """A book through the gate: solved, rounded and labelled, its run record written but
    for the time of what comes next (:meth:`result` writes the tables, :meth:`summary`
    does not)."""

    prepared: PreparedInputs
    run: RunInfo
    assembled: Assembled
    solution: Solution
    lots: Lots
    verdict: Verdict
    started: float
    solved_at: float
    notes: dict[int, str] = field(default_factory=dict)
    """Per name index, what the minimum sizes did to it (:mod:`riskopt.optimizer.minimum`)."""

    def _finished(self) -> None:
        """Close the run's timings: what came after the solve, and the total."""
        now = time.perf_counter()
        self.run.timings["diff"] = now - self.solved_at
        self.run.timings["total"] = now - self.started

    def summary(self) -> BookSummary:
        """The run record alone, with the number of target rows it would have."""
        self._finished()
        names = self.prepared.data.n + self.prepared.unpriced_holdings["ticker"].nunique()
        return BookSummary(run=self.run, names=int(names))

    def result(self, store: str | None) -> RebalanceResult:
        """The full result, tables and all, stored if ``store``."""
        result = build_tables(self)
        self._finished()
        if store is not None:
            store_result(result, store)
        return result


def build_tables(gated: Gated) -> RebalanceResult:
    """The tables stage: targets, sleeves, actions, binding rows and attribution."""
    prepared, a, solved = gated.prepared, gated.assembled, gated.solution.solved
    verdict = gated.verdict
    tables = diff_tables(
        prepared,
        verdict.labelled,
        gated.run,
        attribution=verdict.attribution,
        lots=gated.lots,
        h_solved=gated.solution.h,
        notes=gated.notes,
    )
    binding = (
        binding_table(a.limits, a.bounds, solved, a.data) if solved is not None else empty_binding()
    )
    return RebalanceResult(
        run=gated.run,
        targets=tables["targets"],
        sleeve_targets=tables["sleeves"],
        actions=tables["actions"],
        binding=binding,
        attribution=verdict.attribution.frame(a.data.tickers),
        debate=a.aversion.debate,
    )


def store_result(result: RebalanceResult, store: str) -> None:
    """The store stage: the run, its actions and targets in one transaction."""
    from riskopt.optimizer.store import store_result as write

    write(result, store)


__all__ = ["Gated", "Options", "Policy", "RiskAversion", "Verdict", "gate"]
