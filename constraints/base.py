"""The constraint protocol: what every constraint family states, and nothing more.

A family turns a constraint set and the numbers of one rebalance (:class:`ProgramData`)
into two kinds of pieces:

* :class:`HardBound` — physical limits on each name's post-trade weight ``h_i``
  (trade %ADV, gates, no-new-positions, de-risk-only). Each is a box that contains the
  current weight ``h0``, so their intersection is never empty and the program is always
  feasible. Hard limits are never relaxed.
* :class:`LinearLimit` — policy rows ``A · T(h) ≤ b`` with ``T`` one of identity,
  ``|·|``, ``(·)⁺``, ``(·)⁻`` applied elementwise. Each block has a priority tier; the
  program adds a non-negative slack per row, penalized by the tier's weight, so a limit
  that cannot be reached gives way (lowest tier first) instead of making the program
  infeasible.

The same description gives the cvxpy expression (built once, values as Parameters), the
numeric residual of any weight vector, and the subgradient used for KKT attribution.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from riskopt.constraints.transforms import (
    Operand,
    Transform,
    apply_transform,
    operand,
    shifted,
)

Scope = Literal["name", "portfolio"]

NO_LIMIT = 10.0
"""Right-hand side used for a row that is present in the structure but has no limit
(1000% of NAV): keeps the compiled structure fixed while the value changes."""


@dataclass(frozen=True)
class ProgramData:
    """The numbers of one rebalance, aligned on the program's ``N`` names and ``P`` pairs.

    Weights are signed fractions of NAV. A pair is one (strategy sleeve, ticker); ``M``
    sums pairs into tickers (``h = M w``).
    """

    tickers: np.ndarray
    nav: float
    price: np.ndarray
    adv_shares: np.ndarray
    spread_bps: np.ndarray
    volatility: np.ndarray
    lot_size: np.ndarray
    tick_size: np.ndarray
    sector: np.ndarray
    country: np.ndarray
    cluster: np.ndarray
    h0: np.ndarray
    pair_strategy: np.ndarray
    pair_ticker: np.ndarray
    """Index into ``tickers`` of each pair."""
    w0: np.ndarray
    w_tilde: np.ndarray
    confidence: np.ndarray
    has_decision: np.ndarray
    M: sp.csr_matrix
    loadings: np.ndarray | None = None
    factor_cov: np.ndarray | None = None
    specific_var: np.ndarray | None = None
    factors: tuple[str, ...] = ()
    drawdown: float | None = None
    """Current drawdown of the book's NAV (``None`` without a NAV history)."""
    strategy_drawdown: dict[str, float] = field(default_factory=dict)
    """Current drawdown of each strategy's own NAV path, where given."""
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    """The market's further columns (beyond the contract's), on the program's names: a
    family that reads a column of its own finds it here, with no change to this class."""

    @property
    def n(self) -> int:
        return len(self.tickers)

    @property
    def p(self) -> int:
        return len(self.pair_ticker)

    @property
    def h_tilde(self) -> np.ndarray:
        """Proposed ticker weights."""
        return np.asarray(self.M @ self.w_tilde)

    @functools.cached_property
    def ticker_index(self) -> pd.Index:
        """The program's names as text, one Index for every lookup by name."""
        return pd.Index(self.tickers.astype(str))

    @functools.cached_property
    def strategy_codes(self) -> tuple[list[str], np.ndarray]:
        """The book's strategies as text, sorted, and each pair's index into them: what a
        family over sleeves reads, found once per program rather than once per family."""
        codes, names = pd.factorize(self.pair_strategy.astype(str), sort=True)
        return [str(name) for name in names], codes

    def strategy_mask(self, named: Collection[str]) -> np.ndarray:
        """Which pairs belong to a strategy in ``named`` (a mask over the pairs)."""
        names, codes = self.strategy_codes
        wanted = set(named)
        return np.array([name in wanted for name in names], dtype=bool)[codes]

    @property
    def lot_weight(self) -> np.ndarray:
        """Weight of one lot of each name."""
        return self.lot_size * self.price / self.nav

    def by_name(self, values: Mapping[str, float], default: float | np.ndarray) -> np.ndarray:
        """``values[ticker]`` for each name that has one, ``default`` (a number, or one per
        name) for the others: one lookup for all names, as floats."""
        out = np.array(np.broadcast_to(np.asarray(default, dtype=float), (self.n,)))
        if values:
            at = pd.Index(list(values)).get_indexer(self.ticker_index)
            given = np.array(list(values.values()), dtype=float)
            out[at >= 0] = given[at[at >= 0]]
        return out

    def column(self, name: str) -> np.ndarray:
        """The market's further column ``name`` on the program's names; a ``KeyError``
        naming what the market has where it is absent."""
        if name not in self.columns:
            have = ", ".join(sorted(self.columns)) or "none"
            raise KeyError(f"the market has no column {name!r} (further columns: {have})")
        return self.columns[name]

    def named(self, names: Collection[str]) -> np.ndarray:
        """Which names are in ``names`` (a mask over the program's names)."""
        return np.asarray(self.ticker_index.isin(list(names)))


@dataclass(frozen=True)
class LinearLimit:
    """A block of policy rows ``A · T(h) ≤ rhs`` sharing one tier.

    ``A`` is ``None`` for elementwise rows (one per name, ``m = N``), else a sparse
    ``m × N`` matrix, non-negative unless ``transform == "id"`` (convexity).
    """

    name: str
    """The limit's TOML key, e.g. ``"exposure.gross.max"``."""
    family: str
    transform: Transform
    rhs: np.ndarray
    labels: tuple[str, ...]
    """One label per row: the ticker, the group or the portfolio."""
    tier: int
    scope: Scope
    description: str
    A: sp.csr_matrix | None = None
    sense: Literal["max", "min"] = "max"
    """``"min"`` rows are stored negated (``-x ≤ -min``); reports show them un-negated."""
    on: Operand = "h"
    """Rows over ticker weights ``h`` (N columns), sleeve-pair weights ``w`` (P columns),
    the trade ``h − h0`` (N columns) or the pair trade ``w − w0`` (P columns)."""
    preference: bool = False
    """A preference of the gate, not a limit of the policy: penalised below every tier
    (any limit overrides it, risk aversion does not) and never reported as a breach."""
    held: np.ndarray | None = None
    """The held weights a trade is measured from: ``ProgramData.h0`` for the trade,
    ``ProgramData.w0`` for the pair trade."""

    def __post_init__(self) -> None:
        m = len(self.rhs)
        if len(self.labels) != m:
            raise ValueError(f"{self.name}: {len(self.labels)} labels for {m} rows")
        if shifted(self.on) and self.held is None:
            raise ValueError(f"{self.name}: rows over a trade need the held weights")
        if self.A is not None:
            if self.A.shape[0] != m:
                raise ValueError(f"{self.name}: A has {self.A.shape[0]} rows, rhs {m}")
            if self.transform != "id" and self.A.nnz and self.A.data.min() < 0:
                raise ValueError(
                    f"{self.name}: A must be non-negative for transform {self.transform}"
                )

    @property
    def m(self) -> int:
        return len(self.rhs)

    def lhs(self, h: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """The rows' left-hand side at ticker weights ``h`` (and pair weights ``w``)."""
        try:
            v = operand(self.on, h, w, self.held)
        except ValueError as err:
            raise ValueError(f"{self.name}: {err}") from None
        x = apply_transform(self.transform, v)
        return x if self.A is None else np.asarray(self.A @ x)

    def residual(self, h: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """How far the weights break each row (0 where it holds)."""
        return np.maximum(self.lhs(h, w) - self.rhs, 0.0)

    def structure_key(self) -> tuple[object, ...]:
        """What fixes the compiled program: the rows' shape and ``A``'s values, not ``rhs``."""
        if self.A is None:
            a_key = "elementwise"
        else:
            a = self.A.tocsr()
            digest = hashlib.blake2b(digest_size=16)
            for arr in (a.indptr, a.indices, a.data):
                digest.update(np.ascontiguousarray(arr).tobytes())
            a_key = f"{a.shape}:{digest.hexdigest()}"
        return (self.name, self.transform, self.on, self.m, a_key)


@dataclass(frozen=True)
class VolatilityCap:
    """``sqrt(hᵀ(B F Bᵀ + diag d)h) ≤ rhs``: the one second-order cone of the program.

    Its own kind of limit, not a block of linear rows: one row, read by the back-ends as
    a cone and by the attribution through its gradient. It carries the fields a
    :class:`LinearLimit` shows to tables, reasons and storage (``transform`` is
    ``"vol"``, ``A`` is ``None``), so that those read either alike.
    """

    name: str
    family: str
    rhs: np.ndarray
    labels: tuple[str, ...]
    tier: int
    scope: Scope
    description: str
    loadings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    factor_cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    specific_var: np.ndarray = field(default_factory=lambda: np.zeros(0))
    transform: Literal["vol"] = "vol"
    A: None = None
    sense: Literal["max"] = "max"
    on: Literal["h"] = "h"
    preference: bool = False

    def __post_init__(self) -> None:
        if len(self.rhs) != 1 or len(self.labels) != 1:
            raise ValueError(f"{self.name}: a volatility cap is one row")

    @property
    def m(self) -> int:
        return 1

    def lhs(self, h: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """The ex-ante volatility of ticker weights ``h`` (one row)."""
        f = self.loadings.T @ h
        return np.array(
            [np.sqrt(max(f @ self.factor_cov @ f + (self.specific_var * h * h).sum(), 0.0))]
        )

    def residual(self, h: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """How far ``h`` breaks the cap (0 where it holds)."""
        return np.maximum(self.lhs(h, w) - self.rhs, 0.0)

    def gradient(self, h: np.ndarray) -> np.ndarray:
        """``Σh / vol(h)`` (zero at ``h = 0``)."""
        vol = float(self.lhs(h)[0])
        if vol <= 0:
            return np.zeros_like(h)
        return (
            self.loadings @ (self.factor_cov @ (self.loadings.T @ h)) + self.specific_var * h
        ) / vol

    def structure_key(self) -> tuple[object, ...]:
        """What fixes the compiled program: the same key a one-row elementwise block of
        its name has (the risk model is keyed by the structure itself)."""
        return (self.name, self.transform, self.on, self.m, "elementwise")


IMPACT_POWER = 1.5
"""The power of the market-impact cost in the trade: the impact per unit traded grows
with the square root of the trade's share of ADV, so its cost with the 3/2 power."""


@dataclass(frozen=True)
class CostBudget:
    """Expected trading-cost budgets ``Σ_j A_rj (κ_j |x_j| + λ_j |x_j|^{3/2}) ≤ rhs_r``.

    ``x`` is the trade (``h − h0``, the book's) or the pair trade (``w − w0``, a sleeve's);
    ``κ`` the cost per unit traded (half spread plus commission) and ``λ`` the impact
    coefficient, both per column. The back-ends read ``|x|`` from the operand's epigraph
    column and ``|x|^{3/2}`` from a power cone per column; the attribution reads
    :meth:`slope`. It carries the fields a :class:`LinearLimit` shows to tables, reasons
    and storage.
    """

    name: str
    family: str
    rhs: np.ndarray
    labels: tuple[str, ...]
    tier: int
    scope: Scope
    description: str
    A: sp.csr_matrix
    """Which columns each row sums (non-negative)."""
    linear: np.ndarray
    impact: np.ndarray
    on: Operand
    held: np.ndarray
    transform: Literal["cost"] = "cost"
    sense: Literal["max"] = "max"
    preference: bool = False

    def __post_init__(self) -> None:
        if self.A.shape != (len(self.rhs), len(self.linear)) or len(self.labels) != len(self.rhs):
            raise ValueError(f"{self.name}: A, rhs, labels and coefficients disagree in size")
        if not shifted(self.on):
            raise ValueError(f"{self.name}: a cost budget reads a trade, not {self.on!r}")
        if (self.A.data < 0).any() or (self.linear < 0).any() or (self.impact < 0).any():
            raise ValueError(f"{self.name}: a cost budget's coefficients must be non-negative")

    @property
    def m(self) -> int:
        return len(self.rhs)

    def cost(self, x: np.ndarray) -> np.ndarray:
        """Each column's expected cost at trade ``x``."""
        size = np.abs(x)
        return self.linear * size + self.impact * size**IMPACT_POWER

    def lhs(self, h: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """Each row's expected cost at ``h`` (and ``w``)."""
        return np.asarray(self.A @ self.cost(operand(self.on, h, w, self.held)))

    def residual(self, h: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """How far the weights break each budget (0 where it holds)."""
        return np.maximum(self.lhs(h, w) - self.rhs, 0.0)

    def slope(self, x: np.ndarray) -> np.ndarray:
        """Each column's cost derivative away from ``x = 0``, where its subgradient is
        ``[−κ, κ]`` (the impact's is zero there)."""
        size = np.abs(x)
        return np.sign(x) * (self.linear + IMPACT_POWER * self.impact * np.sqrt(size))

    def stacked(self) -> sp.csr_matrix:
        """``[A·diag(κ), A·diag(λ)]``: the rows on ``|x|`` and on ``|x|^{3/2}``."""
        return sp.hstack(
            [self.A @ sp.diags(self.linear), self.A @ sp.diags(self.impact)], format="csr"
        )

    def structure_key(self) -> tuple[object, ...]:
        """What fixes the compiled program: the rows and their coefficients."""
        a = self.stacked()
        digest = hashlib.blake2b(digest_size=16)
        for arr in (a.indptr, a.indices, a.data):
            digest.update(np.ascontiguousarray(arr).tobytes())
        return (self.name, self.transform, self.on, self.m, f"{a.shape}:{digest.hexdigest()}")


Limit = LinearLimit | VolatilityCap | CostBudget
"""Any policy limit of the program: linear rows, the volatility cone, or cost budgets."""


@dataclass(frozen=True)
class HardBound:
    """A physical box ``lo ≤ h ≤ hi`` that contains the current weights ``h0``.

    A bound that holds per (strategy, ticker) pair also carries its pair box
    ``pair_lo ≤ w ≤ pair_hi`` (containing ``w0``); its ticker box is then the sum of its
    pairs' boxes, which it implies (use :meth:`on_pairs` to build one).
    """

    name: str
    description: str
    lo: np.ndarray
    hi: np.ndarray
    detail: dict[str, np.ndarray] = field(default_factory=dict)
    pair_lo: np.ndarray | None = None
    pair_hi: np.ndarray | None = None

    @classmethod
    def on_pairs(
        cls, name: str, description: str, data: ProgramData, lo: np.ndarray, hi: np.ndarray
    ) -> HardBound:
        """A per-pair box; a ticker held by one pair alone carries it as its ticker box
        (the program then needs no row for that pair, and no row is written twice)."""
        lo = np.minimum(np.asarray(lo, dtype=float), data.w0)
        hi = np.maximum(np.asarray(hi, dtype=float), data.w0)
        sole = np.diff(data.M.indptr) == 1
        return cls(
            name,
            description,
            lo=np.where(sole, np.asarray(data.M @ lo), -np.inf),
            hi=np.where(sole, np.asarray(data.M @ hi), np.inf),
            pair_lo=lo,
            pair_hi=hi,
        )


def toward_zero_box(w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box of weights between zero and ``w0``: a position may only shrink."""
    return np.minimum(0.0, w0), np.maximum(0.0, w0)


def pair_hull(w0: np.ndarray, w_tilde: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[min(0, w0, w̃), max(0, w0, w̃)]``: toward the proposal and no further, or toward
    zero; never a sign or a size nobody proposed."""
    lo = np.minimum(np.minimum(0.0, w0), w_tilde)
    hi = np.maximum(np.maximum(0.0, w0), w_tilde)
    return lo, hi


def box_duals_by_bound(
    bounds: list[HardBound], upper_dual: np.ndarray, lower_dual: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split the duals of the combined box ``lo ≤ h ≤ hi`` among the hard bounds.

    Each name's upper (lower) dual goes to the bound whose ``hi`` (``lo``) is the binding
    one: the tightest, the first on a tie. Returns ``(upper, lower)`` per bound.
    """
    if not bounds:
        return []
    up_owner = np.argmin(np.vstack([b.hi for b in bounds]), axis=0)
    low_owner = np.argmax(np.vstack([b.lo for b in bounds]), axis=0)
    return [
        (np.where(up_owner == j, upper_dual, 0.0), np.where(low_owner == j, lower_dual, 0.0))
        for j in range(len(bounds))
    ]


def pair_duals_by_bound(
    bounds: list[HardBound], upper_dual: np.ndarray, lower_dual: np.ndarray, *, pairs: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split the duals of the pair box ``pair_lo ≤ w ≤ pair_hi`` among the per-pair bounds
    (the tightest owns each side); bounds without a pair box get zeros, and so does every
    bound where the solve reported no pair duals (empty arrays)."""
    zeros = np.zeros(pairs)
    if len(upper_dual) != pairs:
        upper_dual, lower_dual = zeros, zeros
    out = [(zeros, zeros) for _ in bounds]
    paired = [(j, b.pair_lo, b.pair_hi) for j, b in enumerate(bounds) if b.pair_lo is not None]
    if not paired:
        return out
    up_owner = np.argmin(np.vstack([np.asarray(hi) for *_, hi in paired]), axis=0)
    low_owner = np.argmax(np.vstack([np.asarray(lo) for _, lo, _ in paired]), axis=0)
    for k, (j, _, _) in enumerate(paired):
        out[j] = (
            np.where(up_owner == k, upper_dual, 0.0),
            np.where(low_owner == k, lower_dual, 0.0),
        )
    return out
