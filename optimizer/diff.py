"""The diff: labels, KKT attribution, reasons in plain words, and execution priority.

Attribution. At the optimum, stationarity in the pair weights gives, for every pair ``p``
of ticker ``i`` (no sleeve-level limits),

    2 c_p (w_p − w̃_p) = −g_i,   g_i = ∇risk_i + ∇cost_i + Σ_c λ_c a_{c,i} + (μ⁺_i − μ⁻_i)

so the ticker's deviation ``D_i = h_i − h̃_i = −g_i · H_i`` with ``H_i = Σ_p 1/(2 c_p)``
splits exactly into the contributions ``−H_i · λ_c a_{c,i}`` of each binding limit, the
risk-aversion term and costs. Where a limit's left-hand side has a kink at the solution
(a position driven to exactly zero under ``|h|``, or no trade under the cost ``|Δh|``) its
subgradient is set-valued; it is read off the KKT residual, shared among the kinked
terms in proportion to their multipliers. What no term explains (solver tolerance) is
reported as ``numerical``. Contributions always add up to the deviation.

Labels, per decision (strategy, ticker) with proposed trade ``d̃`` and final trade ``d``:
``OK`` when ``|d − d̃| ≤ tol``; ``REJECTED`` for a sanity reject or no trade toward the
proposal; otherwise ``CAPPED`` when the largest cause is the name's own limit (per-name
cap, trade %ADV, gate) and ``SCALED_DOWN`` when it is a portfolio limit or risk aversion.
``tol = labels.weight_tol + labels.lot_tol · (weight of one lot)``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from riskopt.constraints.base import (
    IMPACT_POWER,
    CostBudget,
    HardBound,
    Limit,
    LinearLimit,
    ProgramData,
    VolatilityCap,
    box_duals_by_bound,
    pair_duals_by_bound,
)
from riskopt.constraints.transforms import operand, reads_pairs, rule, transform_slope

KINK_EPS = 1e-5
"""Positions (and trades) this close to zero, in NAV, count as sitting on the kink."""
OK, SCALED_DOWN, CAPPED, REJECTED = "OK", "SCALED_DOWN", "CAPPED", "REJECTED"
LABEL_ORDER = (OK, SCALED_DOWN, CAPPED, REJECTED)
RISK_AVERSION = "risk_aversion"
COSTS = "costs"
NUMERICAL = "numerical"


@dataclass(frozen=True)
class Cause:
    """One column of the attribution: a limit, the risk term, costs or numerics."""

    name: str
    description: str
    scope: str
    tier: int | None = None
    value_label: str = ""
    """How a reason names the limit value (e.g. ``"max trade"``); empty shows the key."""
    note: str = ""
    """What a reason shows in parentheses instead of the key (risk aversion: its γ)."""


@dataclass(frozen=True)
class Attribution:
    """Per-ticker contributions to the deviation ``h − h̃`` (N × causes), adding up exactly."""

    causes: tuple[Cause, ...]
    contributions: np.ndarray
    deviation: np.ndarray
    limit_value: dict[str, np.ndarray]
    """Per cause, the limit value that applies to each name (for reasons)."""
    group: dict[str, np.ndarray] = field(default_factory=dict)
    """Per group-level cause, the group (sector, factor, sleeve...) that binds each name."""
    pair_contributions: np.ndarray | None = None
    """Per (strategy, ticker) pair, the same causes' parts of its own deviation ``w − w̃``
    (P × causes, adding up exactly): a cause on the name splits among its sleeves as the
    tracking weights do, a sleeve's own cause (its budget, its box) stays with it."""
    pair_deviation: np.ndarray | None = None
    pair_rows: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = field(
        default_factory=lambda: ({}, {})
    )
    """Per cause over sleeves' rows, each pair's own limit value and row (its sleeve's
    budget, not the one that pushes its name hardest)."""

    def for_pairs(self, pair_ticker: np.ndarray) -> Attribution | None:
        """The attribution of each pair's own move, or ``None`` where it was not made."""
        if self.pair_contributions is None or self.pair_deviation is None:
            return None
        values, groups = self.pair_rows
        return Attribution(
            self.causes,
            self.pair_contributions,
            self.pair_deviation,
            {k: np.asarray(v)[pair_ticker] for k, v in self.limit_value.items()} | values,
            {k: np.asarray(v, dtype=object)[pair_ticker] for k, v in self.group.items()} | groups,
        )

    def frame(self, tickers: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            self.contributions,
            index=pd.Index(tickers, name="ticker"),
            columns=[c.name for c in self.causes],
        )

    def dominant(self) -> np.ndarray:
        """Index of the cause that pushed each name most in the direction it moved."""
        push = self.contributions * np.sign(self.deviation)[:, None]
        return np.argmax(push, axis=1)

    @functools.cached_property
    def has_costs(self) -> bool:
        return any(c.name == COSTS for c in self.causes)

    @functools.cached_property
    def pushes(self) -> np.ndarray:
        """Each cause's share of what pushed each name the way it moved: the positive
        :attr:`shares`, scaled to add up to one. Where no cause pushed back they are the
        shares; where one did, a share of the net move can read 5,000% (two limits
        pushing hard against each other for a small move), a push at most 100%."""
        push = np.maximum(self.shares, 0.0)
        total = push.sum(axis=1, keepdims=True)
        return np.divide(push, total, out=np.zeros_like(push), where=total > 0)

    @functools.cached_property
    def shares(self) -> np.ndarray:
        """Each cause's share of each name's deviation (0 where a name did not move)."""
        dev = self.deviation[:, None]
        return np.divide(
            self.contributions,
            dev,
            out=np.zeros_like(self.contributions),
            where=dev != 0,
        )


def attribute(
    data: ProgramData,
    h: np.ndarray,
    w: np.ndarray,
    *,
    c: np.ndarray,
    gamma: float,
    gamma_i: np.ndarray,
    kappa: np.ndarray,
    costs: bool,
    limits: list[Limit],
    impact: np.ndarray | None = None,
    duals: list[np.ndarray],
    bounds: list[HardBound],
    lo: np.ndarray,
    hi: np.ndarray,
    box_upper_dual: np.ndarray,
    box_lower_dual: np.ndarray,
    pair_duals: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0)),
    risk_scale: float = 1.0,
) -> Attribution:
    """Split each name's deviation from its proposal among the KKT terms: every binding
    limit and hard bound (per ticker and per pair), risk aversion (``γ`` times the
    run's ``risk_scale``) and costs; what is left is the solver's tolerance."""
    terms = _Terms(data, c)
    terms.add_bounds(bounds, (box_upper_dual, box_lower_dual), pair_duals)
    for limit, lam in zip(limits, duals, strict=True):
        if isinstance(limit, VolatilityCap):
            terms.add_cone(limit, lam, h)
        elif isinstance(limit, CostBudget):
            terms.add_cost_budget(limit, lam, h, w)
        else:
            terms.add_limit(limit, lam, h, w)
    terms.add_risk(h, gamma, gamma_i, risk_scale)
    if costs:
        terms.add_costs(h, kappa, impact)
    return terms.settle(h - data.h_tilde, w - data.w_tilde)


class _Terms:
    """The KKT terms of one attribution as they are added: per cause, its force on each
    name's gradient and the room its subgradient leaves at a kink."""

    def __init__(self, data: ProgramData, c: np.ndarray) -> None:
        self.data = data
        self.n = data.n
        self.H = np.asarray(data.M @ (1.0 / (2.0 * c)))
        self.inv2c = 1.0 / (2.0 * c)
        self.causes: list[Cause] = []
        self.forces: list[np.ndarray] = []
        self.kink_cap: list[np.ndarray] = []
        self.spans: list[tuple[float, float]] = []
        self.pair_parts: list[np.ndarray | None] = []
        self.pair_kinks: list[tuple[np.ndarray, tuple[float, float]] | None] = []
        self.pair_group: dict[str, np.ndarray] = {}
        self.pair_limit_value: dict[str, np.ndarray] = {}
        self.limit_value: dict[str, np.ndarray] = {}
        self.group: dict[str, np.ndarray] = {}

    def add(
        self,
        cause: Cause,
        force: np.ndarray,
        cap: np.ndarray | None = None,
        span: tuple[float, float] = (-1.0, 1.0),
        pair: np.ndarray | None = None,
        pair_cap: np.ndarray | None = None,
    ) -> None:
        """One cause: its ticker-equivalent ``force`` (with ``pair``, its force on each
        pair, already in ``force`` through :meth:`on_tickers`, and ``pair_cap`` its room
        at each pair's kink)."""
        self.pair_parts.append(pair)
        self.pair_kinks.append(None if pair_cap is None else (pair_cap, span))
        self.causes.append(cause)
        self.forces.append(force)
        self.kink_cap.append(np.zeros(self.n) if cap is None else cap)
        self.spans.append(span)

    def on_tickers(self, pair_force: np.ndarray) -> np.ndarray:
        """Pair forces as ticker-equivalent forces: ``Σ_p f_p / (2c_p) / H_i``."""
        return np.asarray(self.data.M @ (pair_force * self.inv2c)) / self.H

    def add_bounds(
        self,
        bounds: list[HardBound],
        box_duals: tuple[np.ndarray, np.ndarray],
        pair_duals: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """The hard box: the dual of ``h ≤ hi`` (resp. ``≥ lo``) goes to the family whose
        bound binds, and a pair's multiplier reaches its ticker through :meth:`on_tickers`."""
        by_pair = pair_duals_by_bound(bounds, *pair_duals, pairs=self.data.p)
        for b, (upper, lower), (pair_upper, pair_lower) in zip(
            bounds, box_duals_by_bound(bounds, *box_duals), by_pair, strict=True
        ):
            trade_cap = "max_trade_weight" in b.detail
            cause = Cause(
                b.name, b.description, "name", value_label="max trade" if trade_cap else ""
            )
            on_pair = pair_upper - pair_lower
            paired = on_pair if on_pair.any() else None
            self.add(cause, upper - lower + self.on_tickers(on_pair), pair=paired)
            if trade_cap:
                self.limit_value[b.name] = b.detail["max_trade_weight"]

    def add_cone(self, limit: VolatilityCap, lam: np.ndarray, h: np.ndarray) -> None:
        """The volatility cap: its multiplier times the cone's gradient."""
        cause = Cause(limit.name, limit.description, limit.scope, limit.tier)
        self.add(cause, lam[0] * limit.gradient(h))
        self.limit_value[limit.name] = np.full(self.n, limit.rhs[0])

    def add_limit(self, limit: LinearLimit, lam: np.ndarray, h: np.ndarray, w: np.ndarray) -> None:
        """A block of linear rows: ``Aᵀλ`` times the transform's slope at the operand, and
        at a kink the room its subgradient (the table's span) leaves."""
        cause = Cause(limit.name, limit.description, limit.scope, limit.tier)
        span = rule(limit.transform).span
        if not lam.any():  # most rows of most limits do not bind: nothing to attribute
            self.add(cause, np.zeros(self.n), None, span)
            self._limit_values(limit, None)
            return
        slope, kink = transform_slope(
            limit.transform, operand(limit.on, h, w, limit.held), KINK_EPS
        )
        nonneg = limit.A is not None and (
            limit.transform != "id" or not limit.A.nnz or limit.A.data.min() >= 0
        )
        pushes = None
        if limit.A is None:
            weight, weight_abs = lam, lam
        else:
            A, rows, push, weight, weight_abs = _limit_weights(limit.A, lam, nonneg)
            pushes = (A, rows, push)
        force = weight * slope
        cap = np.where(kink, weight_abs, 0.0)
        pair = pair_cap = None
        if reads_pairs(limit.on):
            pair, pair_cap = force, cap
            force, cap = self.on_tickers(force), self.on_tickers(cap)
        self.add(cause, force, cap, span, pair=pair, pair_cap=pair_cap)
        self._limit_values(limit, pushes)

    def _limit_values(
        self,
        limit: LinearLimit | CostBudget,
        pushes: tuple[sp.csr_matrix, np.ndarray, np.ndarray] | None,
    ) -> None:
        """The limit value that applies to each name and, for rows over groups, the row
        (sector, factor, sleeve) that pushes each name hardest (none where nothing binds)."""
        sign = -1.0 if limit.sense == "min" else 1.0
        if limit.A is None:
            self.limit_value[limit.name] = sign * limit.rhs
            return
        if pushes is None:
            self.group[limit.name] = np.full(self.n, None, dtype=object)
            self.limit_value[limit.name] = np.full(self.n, np.nan)
            return
        A, rows, push = pushes
        if reads_pairs(limit.on):
            owner, top = _ticker_argmax(A, rows, push, self.data)
            own, own_top = _argmax_by_column(rows, A.indices, push, self.data.p)
            labels = np.asarray(limit.labels, dtype=object)[own].copy()
            labels[own_top <= 0] = None
            self.pair_group[limit.name] = labels  # each sleeve's own row
            self.pair_limit_value[limit.name] = np.where(own_top > 0, sign * limit.rhs[own], np.nan)
        else:
            owner, top = _argmax_by_column(rows, A.indices, push, self.n)
        has = top > 0
        owners = np.asarray(limit.labels, dtype=object)[owner].copy()
        owners[~has] = None
        self.group[limit.name] = owners
        self.limit_value[limit.name] = np.where(has, sign * limit.rhs[owner], np.nan)

    def add_risk(self, h: np.ndarray, gamma: float, gamma_i: np.ndarray, risk_scale: float) -> None:
        """Risk aversion: the gradient of ``γ · risk_scale`` times the factor and specific
        variance."""
        data = self.data
        risk = np.zeros(self.n)
        scaled = gamma * risk_scale
        if scaled > 0 and data.loadings is not None and data.factor_cov is not None:
            f = data.loadings.T @ h
            risk = 2.0 * scaled * (data.loadings @ (data.factor_cov @ f))
        if data.specific_var is not None:
            risk = risk + 2.0 * scaled * gamma_i * data.specific_var * h
        self.add(Cause(RISK_AVERSION, "risk aversion", "portfolio", note=f"γ = {gamma:.3g}"), risk)

    def add_costs(self, h: np.ndarray, kappa: np.ndarray, impact: np.ndarray | None) -> None:
        """Trading costs ``κ·|h − h0| + λ·|h − h0|^{3/2}``: kinked where a name does not
        trade (the impact's slope is zero there)."""
        trade = h - self.data.h0
        kinked = np.abs(trade) <= KINK_EPS
        # At a kink the room is the slope's size at the solved trade, impact included: a
        # trade within KINK_EPS of zero still has an impact slope 1.5 λ √|t| that on an
        # illiquid name outweighs κ, and left out it was blamed on the solver.
        size = kappa.copy()
        if impact is not None:
            size = size + IMPACT_POWER * impact * np.sqrt(np.abs(trade))
        self.add(
            Cause(COSTS, "trading cost", "portfolio"),
            np.where(kinked, 0.0, size * np.sign(trade)),
            np.where(kinked, size, 0.0),
        )

    def add_cost_budget(
        self, limit: CostBudget, lam: np.ndarray, h: np.ndarray, w: np.ndarray
    ) -> None:
        """A cost budget: ``Aᵀλ`` times each column's cost slope, and at a kink (a column
        that does not trade) the room ``Aᵀλ · κ`` of its subgradient."""
        cause = Cause(limit.name, limit.description, limit.scope, limit.tier)
        if not lam.any():
            self.add(cause, np.zeros(self.n))
            self._limit_values(limit, None)
            return
        x = operand(limit.on, h, w, limit.held)
        A, rows, push, weight, _ = _limit_weights(limit.A, lam, True)
        kink = np.abs(x) <= KINK_EPS
        force = np.where(kink, 0.0, weight * limit.slope(x))
        # the room at a kink is the slope's size at the solved trade, impact included
        size = limit.linear + IMPACT_POWER * limit.impact * np.sqrt(np.abs(x))
        cap = np.where(kink, weight * size, 0.0)
        pair = pair_cap = None
        if reads_pairs(limit.on):
            pair, pair_cap = force, cap
            force, cap = self.on_tickers(force), self.on_tickers(cap)
        self.add(cause, force, cap, pair=pair, pair_cap=pair_cap)
        self._limit_values(limit, (A, rows, push))

    def settle(
        self, deviation: np.ndarray, pair_deviation: np.ndarray | None = None
    ) -> Attribution:
        """The attribution: the KKT residual filled from the kinked terms whose
        subdifferential admits its sign, in proportion to their admissible room (at most
        all of it); what is left is the solver's tolerance."""
        H, n = self.H, self.n
        g = -deviation / H
        F = F0 = np.column_stack(self.forces)
        caps = np.column_stack(self.kink_cap)
        lo_fracs, hi_fracs = np.array(self.spans, dtype=float).reshape(-1, 2).T
        residual = g - F.sum(axis=1)
        room = np.where(residual[:, None] > 0, hi_fracs * caps, -lo_fracs * caps)
        total_room = room.sum(axis=1)
        fraction = np.divide(np.abs(residual), total_room, out=np.zeros(n), where=total_room > 0)
        F = F + np.sign(residual)[:, None] * room * np.minimum(fraction, 1.0)[:, None]
        leftover = g - F.sum(axis=1)
        causes = (*self.causes, Cause(NUMERICAL, "solver tolerance", "portfolio"))
        F = np.column_stack([F, leftover])
        contributions = -F * H[:, None]
        pairs = None
        if pair_deviation is not None:
            pairs = self._on_pairs(F0, caps, contributions, pair_deviation)
            pairs = np.column_stack([pairs, pair_deviation - pairs.sum(axis=1)])
            sole = np.bincount(self.data.pair_ticker, minlength=n)[self.data.pair_ticker] == 1
            pairs[sole] = contributions[self.data.pair_ticker[sole]]  # its name's, exactly
        return Attribution(
            causes,
            contributions,
            deviation,
            self.limit_value,
            self.group,
            pairs,
            pair_deviation,
            (self.pair_limit_value, self.pair_group),
        )

    def _on_pairs(
        self, F0: np.ndarray, caps: np.ndarray, contributions: np.ndarray, deviation: np.ndarray
    ) -> np.ndarray:
        """Each cause's part of each pair's deviation (the solver-tolerance column aside):
        ``−(force on the name + force on the pair) / 2c_p``, then the kinks' fill solved
        per pair (:meth:`_pair_fills`)."""
        pt, inv2c = self.data.pair_ticker, self.inv2c
        force = F0[pt].copy()
        for k, pair in enumerate(self.pair_parts):
            if pair is not None:
                force[:, k] += pair - self.on_tickers(pair)[pt]
        left = -deviation / inv2c - force.sum(axis=1)  # force still owed at each pair
        force += self._pair_fills(left, F0, caps, contributions)
        return -force * inv2c[:, None]

    def _pair_fills(
        self, left: np.ndarray, F0: np.ndarray, caps: np.ndarray, contributions: np.ndarray
    ) -> np.ndarray:
        """The kinks' forces at each pair. A kink on the name acts on all its sleeves
        alike: where a sleeve has no kink of its own, the name's fill is what that sleeve
        still owes; else it is what :meth:`settle` gave the name. A sleeve's own kinks
        (its budget where it sits at zero) take what is left at the pair, within their
        room; the rest is the solver's tolerance."""
        pt, n = self.data.pair_ticker, self.n
        ticker_k = np.array([pair is None for pair in self.pair_parts])
        fills = np.zeros((len(pt), len(self.pair_parts)))
        pair_room = self._rooms_at_pairs(left)
        free = pair_room.sum(axis=1) <= KINK_EPS * np.abs(left)  # no kink of their own
        settled = (-contributions[:, :-1] / self.H[:, None] - F0)[:, ticker_k].sum(axis=1)
        owed = np.bincount(pt[free], weights=left[free], minlength=n)
        count = np.bincount(pt[free], minlength=n)
        phi = np.where(count > 0, owed / np.maximum(count, 1), settled)
        caps = caps[:, ticker_k]
        lo, hi = np.array(self.spans, dtype=float).reshape(-1, 2)[ticker_k].T
        room = np.where(phi[:, None] > 0, hi * caps, -lo * caps)
        total = room.sum(axis=1)
        share = np.minimum(np.divide(np.abs(phi), total, out=np.zeros(n), where=total > 0), 1)
        name_fill = np.sign(phi)[:, None] * room * share[:, None]
        fills[:, ticker_k] = name_fill[pt]
        rest = left - name_fill.sum(axis=1)[pt]
        pair_room = self._rooms_at_pairs(rest)
        total = pair_room.sum(axis=1)
        frac = np.minimum(np.divide(np.abs(rest), total, out=np.zeros(len(pt)), where=total > 0), 1)
        fills[:, ~ticker_k] = np.sign(rest)[:, None] * pair_room[:, ~ticker_k] * frac[:, None]
        return fills

    def _rooms_at_pairs(self, left: np.ndarray) -> np.ndarray:
        """Each cause's room at each pair's own kink, the way ``left`` asks (P × causes;
        zero for causes on the name)."""
        out = np.zeros((len(left), len(self.pair_kinks)))
        for k, kink in enumerate(self.pair_kinks):
            if kink is not None:
                cap, (lo, hi) = kink
                out[:, k] = np.where(left > 0, hi * cap, -lo * cap)
        return out


def _limit_weights(
    a: sp.csr_matrix, lam: np.ndarray, nonneg: bool
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``aᵀλ`` and ``|a|ᵀλ`` (``|a| = a`` where ``nonneg``), and each stored entry of
    ``|a|`` with its row and its push ``λ_row·|a|``: the matrix the entries are of (``a``,
    or scipy's ``|a|``, which sums duplicate entries first), rows, pushes, and the two
    products, each as scipy computes it to the last bit, without building ``aᵀ``."""
    a = a if isinstance(a, sp.csr_matrix) else sp.csr_matrix(a)
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    lam_rows = lam[rows]
    weight = _column_sums(a, a.data * lam_rows)
    if nonneg:
        return a, rows, lam_rows * a.data, weight, weight
    if a.has_canonical_format:  # no duplicates: |a|'s entries are a's, made positive
        magnitude = np.abs(a.data)
    else:
        a = abs(a.copy())  # scipy's abs sums the duplicates of the matrix it is given
        rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
        lam_rows = lam[rows]
        magnitude = a.data
    return a, rows, lam_rows * magnitude, weight, _column_sums(a, magnitude * lam_rows)


def _column_sums(a: sp.csr_matrix, entries: np.ndarray) -> np.ndarray:
    """Per column of ``a``, the sum of ``entries`` (one per stored entry of ``a``) in
    storage order. With ``entries = a.data · λ[row]`` this is ``aᵀλ`` as scipy computes
    it, to the last bit."""
    return np.bincount(a.indices, weights=entries, minlength=a.shape[1])


def _column_argmax(matrix: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Row of the largest entry of each column (the first on a tie) and that entry (0 for
    an empty column): scipy's ``argmax(axis=0)`` in one sort instead of a loop."""
    coo = sp.coo_matrix(matrix)
    return _argmax_by_column(coo.row, coo.col, coo.data, coo.shape[1])


def _ticker_argmax(
    a: sp.csr_matrix, row: np.ndarray, push: np.ndarray, data: ProgramData
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_column_argmax` of ``P·Mᵀ``, ``P`` being ``a`` holding ``push`` (row ``row``
    of each entry): each pair's push is its ticker's. Only where a row holds two pairs
    of one ticker (several sleeves in one row) does the product sum them; then it is
    formed. (The product drops pushes of zero, so a ticker whose largest push is zero
    may get another row; its row is not read then.)"""
    ticker = data.pair_ticker[a.indices]
    key = np.sort(row.astype(np.int64) * max(data.n, 1) + ticker)
    if len(key) > 1 and (key[1:] == key[:-1]).any():
        return _column_argmax(sp.csr_matrix((push, a.indices, a.indptr), a.shape) @ data.M.T)
    return _argmax_by_column(row, ticker, push, data.n)


def _argmax_by_column(
    row: np.ndarray, col: np.ndarray, data: np.ndarray, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_column_argmax` of the sparse matrix with these (row, col, value) entries
    (no two at one place): each column's largest value, then the first row holding it."""
    top = np.full(n_cols, -np.inf)
    np.maximum.at(top, col, data)
    empty = top == -np.inf
    top[empty] = 0.0
    at_top = data == top[col]
    owner = np.full(n_cols, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(owner, col[at_top], row[at_top].astype(np.int64))
    owner[empty] = 0
    # A column whose stored entries are all below zero still has its max at an implicit 0.
    return owner, np.maximum(top, 0.0)


def label_trades(
    proposed_trade: np.ndarray,
    final_trade: np.ndarray,
    tol: np.ndarray,
    name_scope: np.ndarray,
) -> np.ndarray:
    """The four labels, vectorized (sanity rejects are applied by the caller)."""
    ok = np.abs(final_trade - proposed_trade) <= tol
    toward = final_trade * np.sign(proposed_trade)
    no_move = (np.abs(proposed_trade) > tol) & (toward <= tol)
    return np.where(ok, OK, np.where(no_move, REJECTED, np.where(name_scope, CAPPED, SCALED_DOWN)))


def percent_texts(
    values: np.ndarray, like: tuple[np.ndarray, list[str]] | None = None
) -> list[str]:
    """Each value, a fraction of NAV, as a percentage to two decimals (``f"{100x:.2f}%"``,
    which rounds as ``round(·, 2)`` does); a value such as -1e-13 reads "0.00%", never
    "-0.00%".

    Each text is written once per distinct number of hundredths of a percent, ``k =
    rint(10⁴x)``: ``f"{k/100:.2f}%"`` is ``f"{100x:.2f}%"`` wherever ``10⁴x`` is not within
    rounding error of a half (nor too large, nor not finite); those few are written from
    the value itself. A book's weights take a few hundred distinct ``k``, so formatting
    10,000 names costs what a few hundred did.

    ``like`` is ``(values, texts)`` already written, aligned with ``values``: where a
    value is the same, its text is taken instead of written again (a pair alone on its
    ticker has the ticker's weights)."""
    values = np.asarray(values, dtype=float)
    if like is None:
        todo = np.arange(len(values))
        texts = [""] * len(values)
    else:
        seen, seen_texts = like
        todo = np.flatnonzero(values != seen)
        texts = seen_texts[:]
    with np.errstate(over="ignore"):  # too large to tell: written one by one
        scaled = 100.0 * values[todo]
        whole, clear = _nearest_whole(100.0 * scaled)
    k, at = np.unique(whole[clear].astype(np.int64), return_inverse=True)
    written = np.array([f"{x:.2f}%" for x in (k / 100.0).tolist()], dtype=object)[at]
    for i, text in zip(todo[clear].tolist(), written.tolist(), strict=True):
        texts[i] = text
    for i, x in zip(todo[~clear].tolist(), scaled[~clear].tolist(), strict=True):
        text = f"{x:.2f}%"
        texts[i] = "0.00%" if text == "-0.00%" else text
    return texts


def reasons(
    labels: np.ndarray,
    attribution: Attribution,
    texts: tuple[list[str], list[str], list[str]],
    has_proposal: np.ndarray,
    rows: np.ndarray,
    sentences: dict[int, str] | None = None,
    whole: list[str] | None = None,
) -> list[str]:
    """One plain-words sentence per row (``rows`` index the attribution's names): the
    label, the cause that pushed the name furthest the way it moved with the value that
    bound, then every other cause with at least 5% of that push (:attr:`Attribution.pushes`,
    largest first), then the move.

    ``texts`` are each row's proposed, final and current weight as
    :func:`percent_texts`. ``sentences`` holds each name's explanation once written;
    pass the same dict to the calls for pairs and for tickers of one run so that a name
    is explained once. ``whole`` (per row, or empty) says, for a sleeve that shares its
    name with others, how the name as a whole moved."""
    rows = np.asarray(rows, dtype=int)
    labels_l = [str(x) for x in np.asarray(labels).tolist()]
    p_pct, f_pct, c_pct = texts
    moves = [
        f"held {c} → proposed {p} → final {f}" if has else f"held {c} → final {f} (no decision)"
        for p, f, c, has in zip(
            p_pct, f_pct, c_pct, np.asarray(has_proposal, dtype=bool).tolist(), strict=True
        )
    ]
    out = [
        f"OK: {move}" if label == OK else "" for label, move in zip(labels_l, moves, strict=True)
    ]
    todo = [k for k, label in enumerate(labels_l) if label != OK]
    if not todo:
        return out
    sentence = {} if sentences is None else sentences
    names = np.array(sorted({int(rows[k]) for k in todo} - sentence.keys()), dtype=int)
    sentence.update(_explanations(attribution, names))
    for k in todo:
        label = labels_l[k]
        lead = label if label != REJECTED else "REJECTED, no trade toward the proposal,"
        scope = whole[k] if whole is not None else ""
        said = sentence[int(rows[k])]
        joint = " by " if not said.startswith(HELD_BETWEEN) else " " if lead[-1] == "," else ", "
        out[k] = f"{lead}{joint}{said}: {moves[k]}{scope}"
    return out


def _explanations(attribution: Attribution, names: np.ndarray) -> dict[int, str]:
    """Each name's explanation: its main cause, then the other causes with ≥ 5% of the
    push, largest first."""
    dom = attribution.dominant()[names]
    shares = attribution.pushes[names]
    # The other causes with ≥ 5% of the push, largest first, as one flat list cut per name.
    order = np.argsort(-shares, axis=1)
    other = np.take_along_axis(shares >= 0.05, order, axis=1) & (order != dom[:, None])
    row, rank = np.nonzero(other)
    cause_of = order[row, rank]
    descriptions = [c.description for c in attribution.causes]
    other_texts = [
        f"{descriptions[j]} ({x:.0%} of the push)"
        for j, x in zip(cause_of.tolist(), shares[row, cause_of].tolist(), strict=True)
    ]
    ends = np.cumsum(other.sum(axis=1)).tolist()
    main = _main_causes(attribution, names, dom)
    main = _held_between(attribution, names, dom, main)
    starts = [0, *ends][: len(ends)]
    return {
        i: m + (f" with {', '.join(other_texts[a:b])}" if b > a else "")
        for i, m, a, b in zip(names.tolist(), main.tolist(), starts, ends, strict=True)
    }


HELD_BETWEEN = "held between"
"""How a reason names two causes that pull against each other (:func:`_held_between`)."""
OPPOSED = 3.0
"""Where a name's causes add up to more than this many times its move, the two largest
pulling each way, each larger than the move, read as one: "held between" them."""


def _held_between(
    attribution: Attribution, names: np.ndarray, dom: np.ndarray, main: np.ndarray
) -> np.ndarray:
    """``main`` with, for each name whose main cause is met by one pushing back harder
    than the name moved (their sizes together above :data:`OPPOSED` times the move),
    both in one phrase: two limits that pull a name thousands of times its move each way
    say what held it, not which pulled harder."""
    shares = attribution.shares[names]  # > 0 pushes the way the name moved, < 0 back
    against = np.argmin(shares, axis=1)
    rows = np.arange(len(names))
    flagged = (
        (np.abs(shares).sum(axis=1) > OPPOSED)
        & (shares[rows, against] < -1.0)
        & (shares[rows, dom] > 1.0)
    )
    if not flagged.any():
        return main
    at = np.flatnonzero(flagged)
    opposite = _main_causes(attribution, names[at], against[at])
    contributions = attribution.contributions[names[at]]
    pull = np.minimum(
        np.abs(contributions[np.arange(len(at)), dom[at]]),
        np.abs(contributions[np.arange(len(at)), against[at]]),
    )
    out = main.copy()
    out[at] = [
        f"{HELD_BETWEEN} {m} and {o} (they pull ±{p} of NAV against each other)"
        for m, o, p in zip(main[at], opposite, percent_texts(pull), strict=True)
    ]
    return out


def _main_causes(attribution: Attribution, names: np.ndarray, dom: np.ndarray) -> np.ndarray:
    """The main cause's words for each name, written cause by cause for the names it
    dominates: its description, the group that binds and the value that bound."""
    main = np.empty(len(names), dtype=object)
    dominant = [(d, np.flatnonzero(dom == d)) for d in np.unique(dom).tolist()]
    # Every name's limit value, written by one call for all causes.
    limits = np.full(len(names), np.nan)
    for d, at_rows in dominant:
        value = attribution.limit_value.get(attribution.causes[d].name)
        if value is not None:
            limits[at_rows] = np.asarray(value, dtype=float)[names[at_rows]]
    texts = np.full(len(names), "", dtype=object)
    finite = np.flatnonzero(np.isfinite(limits))
    texts[finite] = percent_texts(limits[finite])
    for d, at_rows in dominant:
        mine = names[at_rows]
        cause = attribution.causes[d]
        shown = texts[at_rows].tolist()
        where = attribution.group.get(cause.name)
        groups = [None] * len(mine) if where is None else np.asarray(where, dtype=object)[mine]
        description, key, value_label = (
            cause.description,
            cause.note or cause.name,
            cause.value_label,
        )
        main[at_rows] = [
            f"{description}{'' if g is None else f' {g}'} ({value_label} {s} of NAV)"
            if value_label and s
            else f"{description}{'' if g is None else f' {g}'} ({key}{f' {s}' if s else ''})"
            for g, s in zip(groups, shown, strict=True)
        ]
    return main


def attribution_details(
    attribution: Attribution, i: int, *, min_share: float = 0.01
) -> list[dict[str, Any]]:
    """The causes of name ``i``'s deviation, largest share first, for ``details_json``."""
    shares = attribution.shares[i]
    order = np.argsort(-np.abs(shares))
    out = []
    for j in order[np.abs(shares[order]) >= min_share]:
        cause = attribution.causes[int(j)]
        entry: dict[str, Any] = {
            "constraint": cause.name,
            "description": cause.description,
            "scope": cause.scope,
            "share": round(float(shares[j]), 6),
            "contribution": float(attribution.contributions[i, j]),
        }
        if cause.tier is not None:
            entry["tier"] = cause.tier
        value = attribution.limit_value.get(cause.name)
        if value is not None and np.isfinite(value[i]):
            entry["limit"] = float(value[i])
        where = attribution.group.get(cause.name)
        if where is not None and where[i] is not None:
            entry["group"] = str(where[i])
        out.append(entry)
    return out


def attribution_json(
    attribution: Attribution, names: np.ndarray, *, min_share: float = 0.01
) -> dict[int, str]:
    """``json.dumps(attribution_details(attribution, i), sort_keys=True)`` for each name,
    byte for byte, built for all names at once: every (name, cause) entry shown is one
    concatenation of pieces (each cause's text encoded once, the numbers of a whole
    column written by one ``json.dumps``)."""
    names = np.asarray(names, dtype=int)
    if not len(names):
        return {}
    causes = attribution.causes
    head = [f'{{"constraint": {json.dumps(c.name)}, "contribution": ' for c in causes]
    describe = [f', "description": {json.dumps(c.description)}' for c in causes]
    scope = [f', "scope": {json.dumps(c.scope)}, "share": ' for c in causes]
    tail = [("}" if c.tier is None else f', "tier": {int(c.tier)}}}') for c in causes]
    shares = attribution.shares[names]
    magnitude = np.abs(shares)
    order = np.argsort(-magnitude, axis=1)
    shown = np.take_along_axis(magnitude, order, axis=1) >= min_share
    # The entries shown, name by name and largest share first within a name.
    row, rank = np.nonzero(shown)
    cause = order[row, rank]
    name = names[row]
    contribution = json_numbers(attribution.contributions[name, cause].tolist())
    share = json_numbers(rounded(shares[row, cause], 6))
    group = np.full(len(cause), "", dtype=object)
    limit = np.full(len(cause), "", dtype=object)
    for j in np.unique(cause).tolist():
        at = np.flatnonzero(cause == j)
        where = attribution.group.get(causes[j].name)
        if where is not None:  # labels are text, or None for no group
            code, labels = pd.factorize(np.asarray(where, dtype=object)[name[at]])
            quoted = [f', "group": {json.dumps(str(label))}' for label in labels]
            group[at] = np.array([*quoted, ""], dtype=object)[code]  # code -1: None
        value = attribution.limit_value.get(causes[j].name)
        if value is not None:
            values = np.asarray(value, dtype=float)[name[at]]
            finite = np.isfinite(values)
            # A limit is one number for many names: each distinct one (to the bit) once.
            bits, where_in = np.unique(values[finite].view(np.int64), return_inverse=True)
            texts = json_numbers(bits.view(np.float64).tolist())
            quoted_limits = np.array([f', "limit": {t}' for t in texts], dtype=object)
            limit[at[finite]] = quoted_limits[where_in]
    entries = [  # one f-string per entry: seven +s would build six strings on the way
        f"{head[j]}{c}{describe[j]}{g}{lim}{scope[j]}{sh}{tail[j]}"
        for j, c, g, lim, sh in zip(
            cause.tolist(), contribution, group.tolist(), limit.tolist(), share, strict=True
        )
    ]
    ends = np.cumsum(shown.sum(axis=1)).tolist()
    starts = [0, *ends[:-1]]
    return {
        i: "[" + ", ".join(entries[a:b]) + "]"
        for i, a, b in zip(names.tolist(), starts, ends, strict=True)
    }


def rounded(values: np.ndarray, digits: int) -> list[float]:
    """``[round(x, digits) for x in values]``, vectorized. ``rint(x·10ᵈ) / 10ᵈ`` is the
    double nearest to ``k·10⁻ᵈ``, which is what ``round`` returns, wherever ``k`` is the
    same: that is, unless ``x·10ᵈ`` lies within rounding error of a half (or is not
    finite, or too large to tell); those few values are rounded by ``round`` itself."""
    values = np.asarray(values, dtype=float)
    scale = 10.0**digits
    with np.errstate(over="ignore"):  # too large to tell: rounded by round below
        whole, clear = _nearest_whole(values * scale)
    out = whole / scale
    for k in np.flatnonzero(~clear).tolist():
        out[k] = round(float(values[k]), digits)
    return out.tolist()


def _nearest_whole(scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rint(scaled)``, and where that whole number is certain: ``scaled`` is not within
    rounding error (1e-6) of a half, is finite and below 2³¹ in size. Elsewhere the
    unscaled value has to be rounded or formatted by Python itself."""
    with np.errstate(invalid="ignore"):  # inf − inf: not clear
        whole = np.rint(scaled)
        clear = (np.abs(np.abs(scaled - whole) - 0.5) > 1e-6) & (np.abs(scaled) < 2.0**31)
    return whole, clear


def json_numbers(values: list[float]) -> list[str]:
    """Each float as ``json.dumps`` writes it (``NaN`` and ``Infinity`` included), all
    written by one ``json.dumps`` call."""
    if not values:
        return []
    return json.dumps(values)[1:-1].split(", ")


def json_numbers_like(values: np.ndarray, *like: tuple[np.ndarray, list[str]]) -> list[str]:
    """:func:`json_numbers` of ``values``, taking the text of a number already written
    where it is the same to the bit: each of ``like`` is ``(numbers, texts)`` aligned with
    ``values`` (a pair without a decision proposes its current weight)."""
    values = np.ascontiguousarray(values, dtype=float)
    out = np.empty(len(values), dtype=object)
    todo = np.ones(len(values), dtype=bool)
    for seen, texts in like:
        same = todo & (
            values.view(np.int64) == np.ascontiguousarray(seen, dtype=float).view(np.int64)
        )
        out[same] = np.asarray(texts, dtype=object)[same]
        todo &= ~same
    out[todo] = json_numbers(values[todo].tolist())
    return out.tolist()


def execution_priority(
    tickers: np.ndarray,
    current_shares: np.ndarray,
    target_shares: np.ndarray,
    adv_shares: np.ndarray,
    confidence: np.ndarray,
    risk_removed: np.ndarray | None = None,
) -> np.ndarray:
    """Priority 1 = first: de-risking trades, then urgency (days of ADV), then confidence.

    With ``risk_removed`` (EMERGENCY), de-risking trades are ordered by the risk they
    remove, largest first. Names with no trade come last.
    """
    delta = target_shares - current_shares
    trades = np.abs(delta) > 0
    derisk = np.abs(target_shares) < np.abs(current_shares)
    urgency = np.divide(
        np.abs(delta), adv_shares, out=np.full(len(delta), np.inf), where=adv_shares > 0
    )
    urgency = np.where(trades, urgency, 0.0)
    first = -risk_removed if risk_removed is not None else np.zeros(len(delta))
    order = np.lexsort(
        (tickers.astype(str), -confidence, -urgency, np.where(derisk, first, 0.0), ~derisk, ~trades)
    )
    priority = np.empty(len(delta), dtype=int)
    priority[order] = np.arange(1, len(delta) + 1)
    return priority


def details_json(payload: dict[str, Any]) -> str:
    """``payload`` as JSON, keys sorted: one action's ``details_json``."""
    return json.dumps(payload, sort_keys=True, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
