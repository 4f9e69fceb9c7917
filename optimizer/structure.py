"""What one solve of the gate's program is made of, whichever back-end solves it.

:class:`Structure` is what a compiled program depends on (sizes, ``M``'s pattern, the
``A`` matrices, the risk model); :class:`Values` is every other number of one solve;
:class:`Solved` is a back-end's raw answer, before lots and the diff.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import NO_LIMIT, CostBudget, Limit, ProgramData, Transform
from riskopt.data.errors import RiskoptError

OPTIMAL, OPTIMAL_INACCURATE = "optimal", "optimal_inaccurate"
"""Statuses of an accepted solve (cvxpy's names for them)."""


class SolverFailed(RiskoptError, RuntimeError):
    """A solver gave no usable answer (its status, or its own error): try the next one."""


OBJECTIVE_SCALE = 1e4
"""The objective is multiplied by this (weights read as percent), so its value is of order
one and the solver's absolute tolerances mean the same as relative ones; duals are divided
back before anyone reads them."""


def _digest(*arrays: np.ndarray) -> str:
    """One SHA-256 over the arrays' shapes, dtypes and bytes, read in place (no copy):
    SHA-256 runs in the CPU's SHA extensions where it has them."""
    d = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        d.update(f"{a.shape}{a.dtype.str}".encode())
        d.update(a.reshape(-1).data.cast("B") if a.size else b"")
    return d.hexdigest()


@dataclass(frozen=True)
class Structure:
    """What a compiled program depends on; everything else is a Parameter value."""

    key: tuple[object, ...]
    n: int
    p: int
    k: int
    M: sp.csr_matrix
    loadings: np.ndarray | None
    chol: np.ndarray | None
    specific: np.ndarray | None
    blocks: tuple[tuple[str, Transform, str, int, sp.csr_matrix | None], ...]
    """Per limit: name, transform, operand, rows and ``A`` (a cost budget's is
    :meth:`CostBudget.stacked`: its rows on ``|x|``, then on ``|x|^{3/2}``)."""
    costs: bool
    impact: bool = False
    """Whether the objective charges the market impact ``λ |h − h0|^{3/2}``."""

    @functools.cached_property
    def shared_pairs(self) -> np.ndarray:
        """Pairs that share their ticker with another: only these need rows of their own
        for the pair box (a sole pair's box is its ticker's)."""
        per_ticker = np.diff(self.M.indptr)
        ticker = np.empty(self.p, dtype=np.intp)
        ticker[self.M.indices] = np.repeat(np.arange(self.n), per_ticker)
        return np.flatnonzero(per_ticker[ticker] > 1)

    @classmethod
    def of(
        cls, data: ProgramData, limits: list[Limit], *, costs: bool, impact: bool = False
    ) -> Structure:
        has_risk = data.loadings is not None and data.factor_cov is not None
        chol = None
        if has_risk:
            assert data.factor_cov is not None
            chol = _factor_root(data.factor_cov)
        m = data.M.tocsr()
        key = (
            data.n,
            data.p,
            _digest(m.indptr, m.indices),
            None if not has_risk else _digest(data.loadings, data.factor_cov, data.specific_var),  # type: ignore[arg-type]
            tuple(limit.structure_key() for limit in limits),
            costs,
            impact,
        )
        return cls(
            key=key,
            n=data.n,
            p=data.p,
            k=0 if data.loadings is None else data.loadings.shape[1],
            M=m,
            loadings=data.loadings if has_risk else None,
            chol=chol,
            specific=data.specific_var if has_risk else None,
            blocks=tuple(
                (lim.name, lim.transform, lim.on, lim.m, _block_matrix(lim)) for lim in limits
            ),
            costs=costs,
            impact=impact,
        )


def _block_matrix(limit: Limit) -> sp.csr_matrix | None:
    """The ``A`` a back-end reads for ``limit``."""
    return limit.stacked() if isinstance(limit, CostBudget) else limit.A


def _factor_root(cov: np.ndarray) -> np.ndarray:
    """``L`` with ``L Lᵀ = F`` for a PSD ``F`` (eigen-root: tolerates singular ``F``)."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))


@dataclass
class Solved:
    """Raw numbers of one solve, before lots and the diff."""

    status: str
    solver: str
    w: np.ndarray
    h: np.ndarray
    slacks: list[np.ndarray]
    duals: list[np.ndarray]
    box_upper_dual: np.ndarray
    box_lower_dual: np.ndarray
    objective: float
    solve_seconds: float
    setup_seconds: float
    iterations: int | None
    pair_upper_dual: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Multipliers of ``w ≤ w_hi`` per pair (zero where a pair's box is its ticker's)."""
    pair_lower_dual: np.ndarray = field(default_factory=lambda: np.zeros(0))
    residual: float | None = None
    """The solver's own measure of how far the answer is from optimal (Clarabel's: the
    largest of its primal residual, dual residual and gap, :func:`_residual`)."""


@dataclass
class Values:
    """Every number of one solve that is not part of the :class:`Structure`."""

    c: np.ndarray
    w_tilde: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray
    """The pair box (every pair; only pairs that share their ticker get rows)."""
    gamma: float
    specific_weight: np.ndarray
    """``γ γ_i d_i``: each name's weight on its specific variance."""
    h0: np.ndarray
    w0: np.ndarray
    """The held pair weights, which rows over the pair trade ``w − w0`` read."""
    kappa: np.ndarray
    impact: np.ndarray
    """``λ``: each name's market-impact coefficient in the objective (zero without)."""
    rhs: list[np.ndarray]
    rho: list[float]

    @classmethod
    def of(
        cls,
        data: ProgramData,
        limits: list[Limit],
        *,
        c: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        gamma: float,
        gamma_i: np.ndarray,
        kappa: np.ndarray,
        rho: list[float],
        w_lo: np.ndarray | None = None,
        w_hi: np.ndarray | None = None,
        impact: np.ndarray | None = None,
    ) -> Values:
        """The values of one book's solve (the limits' right-hand sides, the objective's
        weights, the hard box)."""
        specific = np.zeros(data.n) if data.specific_var is None else data.specific_var
        return cls(
            c=np.asarray(c, dtype=float),
            w_tilde=np.asarray(data.w_tilde, dtype=float),
            lo=np.asarray(lo, dtype=float),
            hi=np.asarray(hi, dtype=float),
            w_lo=np.full(data.p, -NO_LIMIT) if w_lo is None else np.asarray(w_lo, dtype=float),
            w_hi=np.full(data.p, NO_LIMIT) if w_hi is None else np.asarray(w_hi, dtype=float),
            gamma=float(gamma),
            specific_weight=float(gamma) * np.asarray(gamma_i, dtype=float) * specific,
            h0=np.asarray(data.h0, dtype=float),
            w0=np.asarray(data.w0, dtype=float),
            kappa=np.asarray(kappa, dtype=float),
            impact=np.zeros(data.n) if impact is None else np.asarray(impact, dtype=float),
            rhs=[np.asarray(limit.rhs, dtype=float) for limit in limits],
            rho=[float(r) for r in rho],
        )
