"""The gate's convex program: assembled directly for Clarabel, or written in cvxpy.

minimize   Σ_p c_p (w_p − w̃_p)²  +  γ ‖Lᵀ f‖²  +  Σ_i γ d_i γ_i h_i²  +  Σ_i κ_i |h_i − h0_i|
           + Σ_blocks ρ_tier · Σ s
subject to h = M w,  f = Bᵀ h,  lo ≤ h ≤ hi   (hard box: every hard family at once)
           A · T(h) ≤ b + s,  s ≥ 0          (each policy block, elastic by tier)

:class:`ClarabelProgram` writes Clarabel's conic data (``P, q, A, b`` and the cones)
straight from the blocks with scipy.sparse: the default path, with no modelling-layer
compile at all. :class:`CvxpyProgram` states the same program in cvxpy, every changing
number a ``cvxpy.Parameter``; it serves the other solvers of the chain (SCS, OSQP, a
solver instance) and is the reference the tests hold the direct assembly to.
:class:`GateProgram` holds both for one :class:`Structure` (sizes, ``M``'s pattern, the
``A`` matrices, the risk model), and :class:`ProgramCache` keeps a few of them, so the
cvxpy twin's compile is paid once per structure.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import clarabel
import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import NO_LIMIT, LinearLimit, ProgramData, Transform
from riskopt.data.errors import RiskoptError

if TYPE_CHECKING:
    import cvxpy as cp

CACHE_SIZE = 16
OPTIMAL, OPTIMAL_INACCURATE = "optimal", "optimal_inaccurate"
"""Statuses of an accepted solve (cvxpy's names for them)."""


class SolverFailed(RiskoptError, RuntimeError):
    """A solver gave no usable answer (its status, or its own error): try the next one."""


OBJECTIVE_SCALE = 1e4
"""The objective is multiplied by this (weights read as percent), so its value is of order
one and the solver's absolute tolerances mean the same as relative ones; duals are divided
back before anyone reads them."""

SLACK_COST = 0.1
"""The objective coefficient of every slack column Clarabel sees. A tier's penalty ρ is
10 to 10⁴ in the shipped sets, times :data:`OBJECTIVE_SCALE`: with each slack in units
of weight its cost dwarfed the rest of ``q``, Clarabel's starting point sat some 10¹²
away from the optimum, and its first ten iterations did little but shed that scale. The
direct assembly writes each slack as ``s = u·s'`` with ``u = SLACK_COST / (scale·ρ)``, in
its block's rows and in ``s' ≥ 0`` alike: an exact change of variable, which leaves the
rows' multipliers as they are; the slacks are multiplied back by ``u``. On the
benchmark's books with every family on (and :data:`TOLERANCE` 1e-11 against 1e-10
before), Clarabel's iterations went from 35 to 20 at N = 2,000, 43 to 21 at 5,000 and 55
to 23 at 10,000 (its time at 10,000 from 5.7 to 2.5 s), and from 615 to 533 over 24
solves of 300-name books. The weights agree with the old program's to 1e-9 at N ≥
2,000, and on the 300-name books lie closer to a 1e-12-tolerance solve (median error
1.8e-9 against 6.2e-8). At 1e-10, a coefficient of 1 took 28 iterations at N = 2,000;
0.01 took 18 there but 561 against 517 on the 300-name books, and left the weights 2e-8
off at 10,000."""

CHAIN_TOLERANCE = 1e-9
"""The accuracy the solver chain asks of every solver (SCS and OSQP are run to it): an
answer of Clarabel's that stops short of its own, tighter tolerances but meets this is
as good as what the next solver would give, so it is the chain's answer, not SCS's."""
ACCEPTED_TOLERANCE = 1e-10
"""What an answer that stops short of :data:`TOLERANCE` (Clarabel's ``AlmostSolved``)
must still meet, by Clarabel's own measures (:func:`_meets`), to count as optimal: the
tolerance the gate ran at before. An answer short of it is solved again with iterative
refinement; one short of it still is solved as the gate solved it before (slacks in
weight, this tolerance, refinement where that falls short), so that every book the
former program solved is solved as well. Of 300 random 12- to 40-name books of the
property tests, 15 needed the second solve and 3 the former program; none of 120
solves of 300-name benchmark books in three states needed either. Where no attempt meets
it, the answer is the attempt with the smallest residual (:func:`_residual`), marked
``OPTIMAL_INACCURATE``, which the gate does not accept: of 1,650 such random books, 47
needed a retry and none ended there."""

TOLERANCE = 1e-11
"""Clarabel's gap and feasibility tolerances (absolute and relative). With the slacks
rescaled (:data:`SLACK_COST`), 1e-10 left multipliers of up to 1e-3 on per-name rows
that sit exactly at their limit and bind by nothing (an ELEVATED envelope on names the
risk aversion already holds there), which the explanations then named as a cause. On 16
check books (four shipped sets, three states at 300 names and NORMAL at 2,000), compared
with a 1e-12 solve of the unscaled program: 11 names explained otherwise and no binding
row too many at 1e-11, against 38 names and 590 rows for the unscaled program at 1e-10,
in 493 iterations against 593."""


def _digest(*arrays: np.ndarray) -> str:
    """One SHA-256 over the arrays' shapes, dtypes and bytes, read in place (no copy).
    SHA-256 runs in the CPU's SHA extensions where it has them: 2.8 ms for a 10,000 × 50
    risk model here, where BLAKE2b over a copy took 5.5 ms."""
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
    costs: bool

    @functools.cached_property
    def shared_pairs(self) -> np.ndarray:
        """Pairs that share their ticker with another: only these need rows of their own
        for the pair box (a sole pair's box is its ticker's)."""
        per_ticker = np.diff(self.M.indptr)
        ticker = np.empty(self.p, dtype=np.intp)
        ticker[self.M.indices] = np.repeat(np.arange(self.n), per_ticker)
        return np.flatnonzero(per_ticker[ticker] > 1)

    @classmethod
    def of(cls, data: ProgramData, limits: list[LinearLimit], *, costs: bool) -> Structure:
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
            blocks=tuple((lim.name, lim.transform, lim.on, lim.m, lim.A) for lim in limits),
            costs=costs,
        )


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
    kappa: np.ndarray
    rhs: list[np.ndarray]
    rho: list[float]

    @classmethod
    def of(
        cls,
        data: ProgramData,
        limits: list[LinearLimit],
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
            kappa=np.asarray(kappa, dtype=float),
            rhs=[np.asarray(limit.rhs, dtype=float) for limit in limits],
            rho=[float(r) for r in rho],
        )


class CvxpyProgram:
    """The gate as a cvxpy problem: the reference formulation, and the path for every
    solver but Clarabel (OSQP, SCS, a solver instance). Built on first use."""

    def __init__(self, structure: Structure) -> None:
        import cvxpy as cp  # only this path needs the modelling layer

        self.structure = s = structure
        self.w = cp.Variable(s.p, name="w")
        self.h = cp.Variable(s.n, name="h")
        # Tracking: Σ c (w − w̃)² written as ‖√c ∘ w − √c ∘ w̃‖² (DPP).
        self.sqrt_c = cp.Parameter(s.p, nonneg=True, name="sqrt_c")
        self.sqrt_c_w_tilde = cp.Parameter(s.p, name="sqrt_c_w_tilde")
        self.lo = cp.Parameter(s.n, name="lo")
        self.hi = cp.Parameter(s.n, name="hi")
        objective = cp.sum_squares(cp.multiply(self.sqrt_c, self.w) - self.sqrt_c_w_tilde)
        constraints: list[cp.Constraint] = [self.h == s.M @ self.w]
        self.box_upper = self.h <= self.hi
        self.box_lower = self.h >= self.lo
        constraints += [self.box_upper, self.box_lower]
        shared = s.shared_pairs
        self.w_hi = cp.Parameter(len(shared), name="w_hi")
        self.w_lo = cp.Parameter(len(shared), name="w_lo")
        self.pair_upper: cp.Constraint | None = None
        self.pair_lower: cp.Constraint | None = None
        if len(shared):
            self.pair_upper = self.w[shared] <= self.w_hi
            self.pair_lower = self.w[shared] >= self.w_lo
            constraints += [self.pair_upper, self.pair_lower]

        self.gamma = cp.Parameter(nonneg=True, name="gamma", value=0.0)
        self.sqrt_specific = cp.Parameter(s.n, nonneg=True, name="sqrt_gamma_i_d")
        objective = objective + cp.sum_squares(cp.multiply(self.sqrt_specific, self.h))
        if s.loadings is not None and s.chol is not None:
            self.f = cp.Variable(s.k, name="f")
            constraints.append(self.f == s.loadings.T @ self.h)
            objective = objective + self.gamma * cp.sum_squares(s.chol.T @ self.f)
        self.h0 = cp.Parameter(s.n, name="h0")
        self.kappa = cp.Parameter(s.n, nonneg=True, name="kappa")
        if s.costs:
            # |h − h0| through an explicit trade-size variable keeps the program DPP.
            trade = cp.Variable(s.n, nonneg=True, name="trade_size")
            constraints += [trade >= self.h - self.h0, trade >= self.h0 - self.h]
            objective = objective + self.kappa @ trade

        aux: dict[tuple[str, str], cp.Variable] = {}

        def transformed(transform: Transform, on: str) -> cp.Expression:
            base = self.h if on == "h" else self.w
            if transform == "id":
                return base
            if transform == "vol":
                raise ValueError("the volatility cone is built by its block")
            key = (transform, on)
            if key not in aux:
                size = s.n if on == "h" else s.p
                var = cp.Variable(size, name=f"{on}_{transform}", nonneg=transform != "abs")
                aux[key] = var
                if transform == "abs":
                    constraints.extend([var >= base, var >= -base])
                elif transform == "pos":
                    constraints.append(var >= base)
                else:
                    constraints.append(var >= -base)
            return aux[key]

        self.rhs: list[cp.Parameter] = []
        self.rho: list[cp.Parameter] = []
        self.slack: list[cp.Variable] = []
        self.rows: list[cp.Constraint] = []
        for name, transform, on, m, a in s.blocks:
            rhs = cp.Parameter(m, name=f"rhs[{name}]")
            rho = cp.Parameter(nonneg=True, name=f"rho[{name}]")
            slack = cp.Variable(m, nonneg=True, name=f"s[{name}]")
            row: cp.Constraint
            if transform == "vol":
                row = self._volatility_cone(rhs, slack, constraints)
            else:
                x = transformed(transform, on)
                lhs = x if a is None else a @ x
                row = lhs <= rhs + slack
            constraints.append(row)
            objective = objective + rho * cp.sum(slack)
            self.rhs.append(rhs)
            self.rho.append(rho)
            self.slack.append(slack)
            self.rows.append(row)
        self.problem = cp.Problem(cp.Minimize(objective), constraints)
        self.solves = 0
        # cvxpy's DPP path restructures its whole parameter tensor when the program has a
        # cone: 7 s of compile at N = 1,000 against 1 s without DPP. Programs with the
        # volatility cone are therefore compiled from values on each solve; those
        # without keep DPP, where a re-solve costs little more than the solver.
        self.use_dpp = not any(transform == "vol" for _, transform, _, _, _ in s.blocks)

    def _volatility_cone(
        self, rhs: cp.Parameter, slack: cp.Variable, constraints: list[cp.Constraint]
    ) -> cp.Constraint:
        """``‖(Lᵀf, √d ∘ h)‖ ≤ rhs + s``: the ex-ante volatility cap (one cone)."""
        import cvxpy as cp

        s = self.structure
        if s.chol is None or s.specific is None:
            raise ValueError("a volatility cap needs a risk model")
        parts = cp.hstack([s.chol.T @ self.f, cp.multiply(np.sqrt(s.specific), self.h)])
        return cp.reshape(cp.norm(parts, 2), (1,), order="C") <= rhs + slack

    def set_values(self, v: Values) -> None:
        scale = OBJECTIVE_SCALE
        sqrt_c = np.sqrt(v.c * scale)
        self.sqrt_c.value = sqrt_c
        self.sqrt_c_w_tilde.value = sqrt_c * v.w_tilde
        self.lo.value = v.lo
        self.hi.value = v.hi
        self.w_lo.value = v.w_lo[self.structure.shared_pairs]
        self.w_hi.value = v.w_hi[self.structure.shared_pairs]
        self.gamma.value = v.gamma * scale
        self.sqrt_specific.value = np.sqrt(np.maximum(scale * v.specific_weight, 0.0))
        self.h0.value = v.h0
        self.kappa.value = v.kappa * scale
        for param, rhs in zip(self.rhs, v.rhs, strict=True):
            param.value = rhs
        for param, value in zip(self.rho, v.rho, strict=True):
            param.value = value * scale

    def solve(self, solver: str | Any, *, max_iters: int, warm_start: bool = False) -> Solved:
        """Solve with one solver (a name or a cvxpy solver instance); raises on failure."""
        import cvxpy as cp

        options: dict[str, object] = {}
        name = solver if isinstance(solver, str) else str(solver.name())
        if name == "CLARABEL":
            options = {
                "max_iter": max_iters,
                "tol_gap_abs": 1e-9,
                "tol_gap_rel": 1e-9,
                "tol_feas": 1e-9,
                "tol_ktratio": 1e-8,
            }
        elif name == "SCS":
            # A first-order method: bounded in iterations and in time, so that a chain
            # that reaches it after an interior-point failure still ends promptly.
            options = {
                "max_iters": max_iters * 20,
                "eps_abs": 1e-9,
                "eps_rel": 1e-9,
                "time_limit_secs": 30.0,
            }
        elif name == "OSQP":
            options = {
                "max_iter": max_iters * 100,
                "eps_abs": 1e-9,
                "eps_rel": 1e-9,
                "polishing": True,
            }
        start = time.perf_counter()
        with warnings.catch_warnings():
            # An inaccurate status is handled by the caller's chain, not a warning.
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            try:
                self.problem.solve(
                    solver=solver, warm_start=warm_start, ignore_dpp=not self.use_dpp, **options
                )
            except cp.SolverError as err:
                raise SolverFailed(f"{name}: {err}") from err
        wall = time.perf_counter() - start
        self.solves += 1
        status = self.problem.status
        if status not in (OPTIMAL, OPTIMAL_INACCURATE) or self.w.value is None:
            raise SolverFailed(f"{name} returned status {status}")
        stats = self.problem.solver_stats
        solve_seconds = float(stats.solve_time) if stats.solve_time is not None else wall
        return Solved(
            status=status,
            solver=name,
            w=np.asarray(self.w.value, dtype=float),
            h=np.asarray(self.h.value, dtype=float),
            slacks=[np.asarray(s.value, dtype=float) for s in self.slack],
            duals=[_dual(r) for r in self.rows],
            box_upper_dual=_dual(self.box_upper),
            box_lower_dual=_dual(self.box_lower),
            objective=float(self.problem.value) / OBJECTIVE_SCALE,
            solve_seconds=min(solve_seconds, wall),
            setup_seconds=max(wall - solve_seconds, 0.0),
            iterations=getattr(stats, "num_iters", None),
            pair_upper_dual=self._pair_dual(self.pair_upper),
            pair_lower_dual=self._pair_dual(self.pair_lower),
        )

    def _pair_dual(self, constraint: cp.Constraint | None) -> np.ndarray:
        """A pair-box multiplier per pair (zero for pairs without rows of their own)."""
        out = np.zeros(self.structure.p)
        if constraint is not None:
            out[self.structure.shared_pairs] = _dual(constraint)
        return out


def _dual(constraint: cp.Constraint) -> np.ndarray:
    """Non-negative multipliers of ``constraint`` in the unscaled objective's units."""
    raw = constraint.dual_value
    value = np.asarray(raw, dtype=float).reshape(-1)
    return np.maximum(value, 0.0) / OBJECTIVE_SCALE


Coef = tuple[np.ndarray, np.ndarray, np.ndarray] | np.ndarray | float


def _triplets(
    matrix: sp.spmatrix | np.ndarray, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO triplets of ``scale · matrix`` (a CSR matrix's read off its arrays)."""
    if isinstance(matrix, sp.csr_matrix):
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        return rows, matrix.indices, scale * matrix.data.astype(float)
    coo = sp.coo_matrix(matrix)
    return coo.row, coo.col, scale * coo.data.astype(float)


class _Rows:
    """Rows of ``A x + s = b`` gathered as COO triplets, one cone at a time."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.b: list[np.ndarray] = []
        self.m = 0

    def add(self, b: np.ndarray, *parts: tuple[int, Coef]) -> slice:
        """Append ``len(b)`` rows; each part is (first column, coefficients): COO triplets
        ``(rows, columns, values)`` local to the part, a vector (a diagonal) or a scalar
        (that times the identity)."""
        b = np.asarray(b, dtype=float).reshape(-1)
        r = len(b)
        for col, coef in parts:
            if isinstance(coef, tuple):
                local_rows, local_cols, vals = coef
                self.rows.append(local_rows + self.m)
                self.cols.append(local_cols + col)
                self.vals.append(vals)
            else:
                diag = np.broadcast_to(np.asarray(coef, dtype=float), (r,))
                idx = np.arange(r)
                self.rows.append(idx + self.m)
                self.cols.append(idx + col)
                self.vals.append(np.array(diag))
        self.b.append(b)
        rows = slice(self.m, self.m + r)
        self.m += r
        return rows

    def triplets(self, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, values) with the rows shifted by ``offset``."""
        if not self.rows:
            return np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0)
        return (
            np.concatenate(self.rows) + offset,
            np.concatenate(self.cols),
            np.concatenate(self.vals),
        )


def _sum_rows(rows: _Rows, c: sp.csr_matrix, columns: np.ndarray, first: int) -> int:
    """Append ``y_r − C_r x = 0`` for each row ``r`` of ``y`` that has a column (``columns``,
    -1 for none; ``x`` from column ``first``); returns how many rows that is."""
    read = np.flatnonzero(columns >= 0)
    if len(read):
        own = (np.arange(len(read)), columns[read], np.ones(len(read)))
        c = c if len(read) == c.shape[0] else c[read]  # indexing a CSR matrix is slow
        rows.add(np.zeros(len(read)), (0, own), (first, _triplets(c, -1.0)))
    return len(read)


def _transform_bounds(
    transform: Transform, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``T(x)`` over the box ``lo ≤ x ≤ hi``."""
    if transform == "id":
        return lo, hi
    if transform == "pos":
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    if transform == "neg":
        return np.maximum(-hi, 0.0), np.maximum(-lo, 0.0)
    crossing = (lo <= 0.0) & (hi >= 0.0)
    low = np.where(crossing, 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    return low, np.maximum(np.abs(lo), np.abs(hi))


def redundant_rows(
    limit_a: sp.csr_matrix | None,
    transform: Transform,
    rhs: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """Rows of ``A · T(h) ≤ rhs`` that the hard box ``lo ≤ h ≤ hi`` already implies.

    Such a row can never bind, so its slack is zero and its multiplier may be taken as zero
    in a KKT point: leaving it out of the program changes neither the solution nor the
    attribution, and on a book that sits inside its limits most per-name rows go.
    """
    t_lo, t_hi = _transform_bounds(transform, lo, hi)
    if limit_a is None:
        upper = t_hi
    elif transform != "id" or not limit_a.nnz or limit_a.data.min() >= 0:
        upper = np.asarray(limit_a @ t_hi).reshape(-1)  # A ≥ 0: the max is at T's max
    elif limit_a.data.max() <= 0:
        upper = np.asarray(limit_a @ t_lo).reshape(-1)  # A ≤ 0: at T's min
    else:
        upper = np.asarray(limit_a.maximum(0) @ t_hi + limit_a.minimum(0) @ t_lo).reshape(-1)
    return np.asarray(upper <= rhs)


@dataclass(frozen=True)
class SharedSum:
    """``y = C x``: row sums that several policy blocks read, written once.

    The book's gross, net (above and below), long and short caps all read ``Σh`` or
    ``Σ|h|``. Each such row touches every name, so each is a dense row of the KKT system,
    refactorized on every interior-point iteration. Written once as ``y = C x``, the five
    caps become rows on ``y`` and the KKT system keeps two dense rows instead of five: 5–14%
    less solver time from N = 300 to 2,000, level at 5,000 and 10,000 (measured on
    the benchmark's books). A band on a factor whose loadings are dense reads ``f = Bᵀh``,
    which the program has already: its rows need no sum and no dense row at all (a factor
    with sparse loadings, such as an industry, has sparse band rows to begin with).

    Wide rows (each touching half the columns or more) are shared at every size. Sector,
    country and cluster rows are narrow: they are shared below :data:`NARROW_SUMS_BELOW`
    names, where that was measured faster, and not above, where it was mostly slower.
    """

    on: str
    C: sp.csr_matrix
    factor: np.ndarray | None
    """The factor of each row, where every row is a factor's loadings."""


def shared_sums(
    blocks: tuple[tuple[str, Transform, str, int, sp.csr_matrix | None], ...],
    loadings: np.ndarray | None,
    *,
    narrow: bool = False,
) -> tuple[list[SharedSum], list[tuple[int, float] | None]]:
    """The shared sums of a program's blocks, and each block's (sum, sign) or ``None``.

    A block reads a sum when its ``A`` is ``±C``. A sum is written when its rows are
    factor loadings, or when two blocks or more read it and its rows are wide (or
    ``narrow`` is set).
    """
    keyed: dict[tuple[object, ...], int] = {}
    found: list[tuple[str, sp.csr_matrix]] = []
    of_block: list[tuple[int, float] | None] = []
    for _, transform, on, _, a in blocks:
        if a is None or transform == "vol" or not (narrow or _wide(a)):
            of_block.append(None)
            continue
        if not (a.has_canonical_format and a.data.all()):  # summed, sorted, no zeros
            a = sp.csr_matrix(a, copy=True)
            a.sum_duplicates()
            a.eliminate_zeros()
        sign = -1.0 if a.nnz and a.data[0] < 0.0 else 1.0  # A and −A read one sum
        data = sign * a.data
        key = (on, a.shape, _digest(a.indptr, a.indices, data))
        if key not in keyed:  # a matrix only for each sum found, not for every block
            keyed[key] = len(found)
            found.append((on, sp.csr_matrix((data, a.indices.copy(), a.indptr.copy()), a.shape)))
        of_block.append((keyed[key], sign))
    uses = np.bincount([u[0] for u in of_block if u is not None], minlength=len(found))
    only_id = np.ones(len(found), dtype=bool)
    for (_, transform, *_), use in zip(blocks, of_block, strict=True):
        if use is not None and transform != "id":
            only_id[use[0]] = False
    sums: list[SharedSum] = []
    index: dict[int, tuple[int, float]] = {}
    for j, (on, c) in enumerate(found):
        factor, flip = None, 1.0
        if on == "h" and only_id[j]:  # a band on a factor: its rows are ±(loadings)
            factor = _factor_rows(c, loadings)
            if factor is None and (factor := _factor_rows(-c, loadings)) is not None:
                c, flip = -c, -1.0
        if uses[j] >= 2 or factor is not None:
            index[j] = (len(sums), flip)
            sums.append(SharedSum(on=on, C=c, factor=factor))
    return sums, [
        None if u is None or u[0] not in index else (index[u[0]][0], u[1] * index[u[0]][1])
        for u in of_block
    ]


def _wide(a: sp.csr_matrix) -> bool:
    """Whether every row touches half the columns or more."""
    rows = a if isinstance(a, sp.csr_matrix) else sp.csr_matrix(a)
    return bool((np.diff(rows.indptr) * 2 >= a.shape[1]).all())


def _factor_rows(c: sp.csr_matrix, loadings: np.ndarray | None) -> np.ndarray | None:
    """The factor whose loadings each row of ``c`` is, where every row is one."""
    if loadings is None or c.shape[1] != loadings.shape[0] or c.shape[0] > loadings.shape[1]:
        return None
    by_value = {np.ascontiguousarray(column).tobytes(): j for j, column in enumerate(loadings.T)}
    rows = [by_value.get(row.tobytes()) for row in c.toarray()]
    return None if None in rows else np.array(rows, dtype=int)


@dataclass
class Assembly:
    """Clarabel's data for one solve, and where each piece of the answer sits in it."""

    P: sp.csc_matrix
    q: np.ndarray
    A: sp.csc_matrix
    b: np.ndarray
    cones: tuple[int, int, int]
    """Sizes of the zero cone, the non-negative orthant and the second-order cone."""
    w: np.ndarray
    """The column of each pair's weight (a sole pair's is its ticker's)."""
    h: slice
    upper: slice
    lower: slice
    pair_upper: slice
    pair_lower: slice
    """Rows of the pair box, one per pair in :attr:`Structure.shared_pairs`."""
    shared_pairs: np.ndarray
    pairs: int
    blocks: list[tuple[slice, bool, np.ndarray, int]]
    """Per block: its rows of ``A``, whether they are the cone, the rows kept, the first
    slack column."""
    slack_units: list[float]
    """Per block: the weight one unit of its slack column stands for (1 with the slacks
    in weight, else :data:`SLACK_COST` over the scaled penalty)."""
    constant: float
    """``Σ c w̃²`` (unscaled), left out of ``q``."""
    sums: int = 0
    """Rows ``y = C x`` of the shared sums (in the zero cone)."""

    def on_pairs(self, shared: np.ndarray) -> np.ndarray:
        """Per pair, from values of the pairs with rows of their own (0 elsewhere)."""
        out = np.zeros(self.pairs)
        out[self.shared_pairs] = shared
        return out


@dataclass
class _KeptSolver:
    """A Clarabel solver set up for one pattern of ``P`` and ``A``, kept for the next
    solve of the same pattern and ``setup`` (cone sizes, factorization method, iteration
    limit: what its settings and cones were made from)."""

    solver: Any
    pattern: tuple[np.ndarray, ...]
    setup: tuple[object, ...]

    @classmethod
    def of(cls, solver: Any, data: Assembly, setup: tuple[object, ...]) -> _KeptSolver:
        return cls(solver, _pattern(data), setup)

    def fits(self, data: Assembly, setup: tuple[object, ...]) -> bool:
        return setup == self.setup and all(
            np.array_equal(a, b) for a, b in zip(_pattern(data), self.pattern, strict=True)
        )


def _pattern(data: Assembly) -> tuple[np.ndarray, ...]:
    """Where ``P``'s and ``A``'s entries sit (shapes, column pointers, row indices)."""
    return (
        np.array([*data.P.shape, *data.A.shape]),
        data.P.indptr,
        data.P.indices,
        data.A.indptr,
        data.A.indices,
    )


class ClarabelProgram:
    """The gate's conic program assembled with scipy.sparse and handed to Clarabel.

    Variables ``x = (w, h, f, t, aux…, slacks…)``; Clarabel's form is
    ``min ½xᵀPx + qᵀx  s.t.  Ax + s = b, s ∈ {0}ᵐ¹ × ℝ₊ᵐ² × SOC``. The rows are those of
    :class:`CvxpyProgram` (same scaling), written down directly: no canonicalization, no
    parameter tensor, so a cold solve costs the assembly (milliseconds) plus the solver.
    Three exact reductions make the program smaller than cvxpy's: rows the hard box
    already implies are left out (:func:`redundant_rows`); one auxiliary ``a ≥ |x|`` serves
    every ``|x|``, ``x⁺`` and ``x⁻``; and columns equal to another up to sign are
    substituted (a pair alone on its ticker is the ticker's weight; a name whose box fixes
    its sign has ``|h_i| = ±h_i``), with the rows that then say nothing. At N = 2,000
    with every family on, the last one takes the KKT system from 26,000 to 17,000 rows.
    Blocks that read the same sums (the book's exposure caps; a small book's group caps)
    read them from one :class:`SharedSum`, and a factor band reads ``f``: fewer dense
    rows, not fewer rows.
    """

    def __init__(self, structure: Structure, *, reuse_solver: bool = False) -> None:
        self.structure = structure
        self.reuse_solver = reuse_solver
        """Keep Clarabel's solver between solves and overwrite its data (see
        :class:`ProgramCache`)."""
        self.reused = 0
        """Solves that ran on the kept solver."""
        self._kept: _KeptSolver | None = None
        self._kept_lock = threading.Lock()
        s = structure
        self._minus_m = _triplets(s.M, -1.0)
        self._minus_loadings_t = None if s.loadings is None else _triplets(s.loadings.T, -1.0)
        self._minus_chol_t = None if s.chol is None else _triplets(s.chol.T, -1.0)
        self._factor_cov = None if s.chol is None else s.chol @ s.chol.T
        self._sqrt_specific = None if s.specific is None else np.sqrt(s.specific)
        # A pair that is its ticker's only pair, with coefficient one, *is* that ticker's
        # weight: ``w_j = h_i``. Such pairs get no column (nor ``h = M w`` row) of their own.
        by_pair = s.M.tocsc()
        per_pair = np.diff(by_pair.indptr)
        first = np.minimum(by_pair.indptr[:-1], max(by_pair.nnz - 1, 0))
        ticker = by_pair.indices[first] if by_pair.nnz else np.zeros(s.p, dtype=int)
        coefficient = by_pair.data[first] if by_pair.nnz else np.zeros(s.p)
        per_ticker = np.diff(s.M.indptr)
        sole = (per_pair == 1) & (coefficient == 1.0) & (per_ticker[ticker] == 1)
        self._sole_pairs = np.flatnonzero(sole)
        self._sole_tickers = ticker[sole]
        self._sums, self._block_sum = shared_sums(
            s.blocks, s.loadings, narrow=s.n < NARROW_SUMS_BELOW
        )
        self._block_triplets = [None if a is None else _triplets(a) for *_, a in s.blocks]

    def assemble(self, v: Values, *, rescale_slacks: bool = True) -> Assembly:
        """The conic data of one solve (scaled by :data:`OBJECTIVE_SCALE`; each slack in
        units of :data:`SLACK_COST`, or of weight with ``rescale_slacks=False``)."""
        s = self.structure
        scale = OBJECTIVE_SCALE
        n, p, k = s.n, s.p, s.k
        risk = self._factor_cov is not None
        # Column layout.
        col_w, col_h = 0, p
        ncols = p + n
        col_f = ncols
        if risk:
            ncols += k
        col_t = ncols
        if s.costs:
            ncols += n
        keep: list[np.ndarray] = []
        for (_, transform, on, m, a), rhs in zip(s.blocks, v.rhs, strict=True):
            if transform == "vol" or on != "h":
                keep.append(np.ones(m, dtype=bool))
            else:
                keep.append(~redundant_rows(a, transform, rhs, v.lo, v.hi))
        # One auxiliary ``a ≥ |x|`` per base vector serves all three transforms:
        # |x| ≤ a, x⁺ ≤ (a + x)/2, x⁻ ≤ (a − x)/2, exact under non-negative ``A``.
        aux_col: dict[str, int] = {}
        for (_, transform, on, _, _), kept in zip(s.blocks, keep, strict=True):
            if transform in ("abs", "pos", "neg") and kept.any() and on not in aux_col:
                aux_col[on] = ncols
                ncols += n if on == "h" else p
        # Shared sums ``y = C x``: a column for each row of ``y`` that a kept row reads
        # (a factor's rows are ``f`` itself), -1 for the rest.
        sum_h: list[np.ndarray] = []
        sum_a: list[np.ndarray] = []
        for j, total in enumerate(self._sums):
            need_h = np.zeros(total.C.shape[0], dtype=bool)  # rows read as C x ...
            need_a = np.zeros(total.C.shape[0], dtype=bool)  # ... and as C |x|
            for (_, transform, _, _, _), kept, use in zip(
                s.blocks, keep, self._block_sum, strict=True
            ):
                if use is None or use[0] != j:
                    continue
                if transform != "abs":  # id, pos and neg read y_h
                    need_h |= kept
                if transform != "id":  # abs, pos and neg read y_a
                    need_a |= kept
            columns_h = np.full(len(need_h), -1)
            if total.factor is not None:
                columns_h[need_h] = col_f + total.factor[need_h]
            else:
                columns_h[need_h] = ncols + np.arange(need_h.sum())
                ncols += int(need_h.sum())
            columns_a = np.full(len(need_a), -1)
            columns_a[need_a] = ncols + np.arange(need_a.sum())
            ncols += int(need_a.sum())
            sum_h.append(columns_h)
            sum_a.append(columns_a)
        # Each block's slack in the solver's units: its column stands for ``unit`` of
        # weight, so that its objective coefficient is SLACK_COST whatever the tier.
        units = [SLACK_COST / (scale * rho) if rescale_slacks and rho > 0 else 1.0 for rho in v.rho]
        slack_col: list[int] = []
        for kept in keep:
            slack_col.append(ncols)
            ncols += int(kept.sum())

        zero, nonneg, soc = _Rows(), _Rows(), _Rows()
        zero.add(np.zeros(n), (col_h, 1.0), (col_w, self._minus_m))
        if self._minus_loadings_t is not None:
            zero.add(np.zeros(k), (col_f, 1.0), (col_h, self._minus_loadings_t))
        sum_rows = 0
        for total, columns_h, columns_a in zip(self._sums, sum_h, sum_a, strict=True):
            # y_h = C x (unless y_h is f itself) and y_a = C |x|: the |x| column exists
            # whenever a kept row reads y_a.
            if total.factor is None:
                sum_rows += _sum_rows(zero, total.C, columns_h, col_h if total.on == "h" else col_w)
            if (columns_a >= 0).any():
                sum_rows += _sum_rows(zero, total.C, columns_a, aux_col[total.on])
        upper = nonneg.add(v.hi, (col_h, 1.0))
        lower = nonneg.add(-v.lo, (col_h, -1.0))
        shared = s.shared_pairs
        on_shared = (np.arange(len(shared)), shared, np.ones(len(shared)))
        pair_upper = nonneg.add(v.w_hi[shared], (col_w, on_shared))
        pair_lower = nonneg.add(-v.w_lo[shared], (col_w, (*on_shared[:2], -on_shared[2])))
        if s.costs:
            nonneg.add(v.h0, (col_h, 1.0), (col_t, -1.0))
            nonneg.add(-v.h0, (col_h, -1.0), (col_t, -1.0))
            nonneg.add(np.zeros(n), (col_t, -1.0))
        aux_rows: dict[str, tuple[slice, slice]] = {}
        for on, col in aux_col.items():
            base, size = (col_h, n) if on == "h" else (col_w, p)
            above = nonneg.add(np.zeros(size), (base, 1.0), (col, -1.0))
            below = nonneg.add(np.zeros(size), (base, -1.0), (col, -1.0))
            aux_rows[on] = (above, below)
        block_rows: list[tuple[_Rows, slice]] = []
        for (_, transform, on, m, _), rhs, kept, col_s, use, triplets, unit in zip(
            s.blocks,
            v.rhs,
            keep,
            slack_col,
            self._block_sum,
            self._block_triplets,
            units,
            strict=True,
        ):
            count = int(kept.sum())
            if transform == "vol":
                if self._minus_chol_t is None or self._sqrt_specific is None:
                    raise ValueError("a volatility cap needs a risk model")
                rows = soc.add(np.asarray(rhs, dtype=float), (col_s, -unit))
                soc.add(np.zeros(k), (col_f, self._minus_chol_t))
                soc.add(np.zeros(n), (col_h, -self._sqrt_specific))
                nonneg.add(np.zeros(1), (col_s, -unit))
                block_rows.append((soc, rows))
                continue
            if not count:
                block_rows.append((nonneg, slice(0, 0)))
                continue
            terms: list[tuple[int, Coef]]
            if use is not None:  # rows on a shared sum: ±y_h, y_a or (y_a ± y_h)/2
                j, sign = use
                r, y_h, y_a = np.arange(count), sum_h[j][kept], sum_a[j][kept]
                half = np.full(count, 0.5)
                if transform == "id":
                    terms = [(0, (r, y_h, np.full(count, sign)))]
                elif transform == "abs":
                    terms = [(0, (r, y_a, np.ones(count)))]
                else:
                    terms = [
                        (0, (r, y_a, half)),
                        (0, (r, y_h, half if transform == "pos" else -half)),
                    ]
            else:
                base = col_h if on == "h" else col_w
                if triplets is not None:
                    r, c, vals = triplets
                    if count < m:  # the kept rows, renumbered
                        live = kept[r]
                        r, c, vals = (np.cumsum(kept) - 1)[r[live]], c[live], vals[live]
                else:  # elementwise rows: row j is the j-th kept name
                    r, c, vals = np.arange(count), np.flatnonzero(kept), np.ones(count)
                if transform == "id":
                    terms = [(base, (r, c, vals))]
                elif transform == "abs":
                    terms = [(aux_col[on], (r, c, vals))]
                else:
                    sign = 1.0 if transform == "pos" else -1.0
                    terms = [(aux_col[on], (r, c, 0.5 * vals)), (base, (r, c, sign * 0.5 * vals))]
            rows = nonneg.add(rhs[kept], *terms, (col_s, -unit))
            nonneg.add(np.zeros(count), (col_s, -unit))  # s' ≥ 0, in the same units
            block_rows.append((nonneg, rows))

        offsets = {id(zero): 0, id(nonneg): zero.m, id(soc): zero.m + nonneg.m}
        parts = [r.triplets(offsets[id(r)]) for r in (zero, nonneg, soc)]
        a_rows, a_cols, a_vals = (np.concatenate([part[i] for part in parts]) for i in range(3))
        m_total = zero.m + nonneg.m + soc.m

        # Objective ½xᵀPx + qᵀx, scaled.
        diag = np.zeros(ncols)
        diag[col_w : col_w + p] = 2.0 * scale * v.c
        diag[col_h : col_h + n] += 2.0 * scale * np.maximum(v.specific_weight, 0.0)
        q = np.zeros(ncols)
        q[col_w : col_w + p] = -2.0 * scale * v.c * v.w_tilde
        if s.costs:
            q[col_t : col_t + n] = scale * v.kappa
        for col_s, kept, rho, unit in zip(slack_col, keep, v.rho, units, strict=True):
            q[col_s : col_s + int(kept.sum())] = scale * rho * unit

        # Exact substitutions: each column in ``target`` equals ``flip`` times its target.
        # A sole pair's ``w_j`` is ``h_i`` (its ``h = M w`` row goes); a name whose hard
        # box fixes its sign has ``|h_i| = ±h_i`` (its two ``a ≥ ±h`` rows go); a sole
        # pair's ``|w_j|`` is then ``|h_i|`` (its two rows go too).
        target = np.arange(ncols)
        flip = np.ones(ncols)
        sole, ticker = self._sole_pairs, self._sole_tickers
        target[col_w + sole] = col_h + ticker
        drop = [ticker]
        if "h" in aux_col:
            signed = np.flatnonzero((v.lo >= 0.0) | (v.hi <= 0.0))
            target[aux_col["h"] + signed] = col_h + signed
            flip[aux_col["h"] + signed] = np.where(v.lo[signed] >= 0.0, 1.0, -1.0)
            above, below = aux_rows["h"]
            drop += [zero.m + above.start + signed, zero.m + below.start + signed]
            if "w" in aux_col:
                target[aux_col["w"] + sole] = target[aux_col["h"] + ticker]
                flip[aux_col["w"] + sole] = flip[aux_col["h"] + ticker]
                above, below = aux_rows["w"]
                drop += [zero.m + above.start + sole, zero.m + below.start + sole]
        used = target == np.arange(ncols)
        before_col = np.concatenate([[0], np.cumsum(used)])
        column = before_col[target]
        kept_row = np.ones(m_total, dtype=bool)
        kept_row[np.concatenate(drop)] = False
        before_row = np.concatenate([[0], np.cumsum(kept_row)])
        live = kept_row[a_rows]
        m_kept, n_kept = int(before_row[-1]), int(before_col[-1])
        A = sp.csc_matrix(
            (
                a_vals[live] * flip[a_cols[live]],
                (before_row[a_rows[live]], column[a_cols[live]]),
            ),
            shape=(m_kept, n_kept),
        )
        b = np.concatenate([*zero.b, *nonneg.b, *soc.b])[kept_row]
        # P: the diagonal, plus the factor block's upper triangle; one COO build sums
        # where they meet, and entries that are zero are not stored.
        p_diag = np.bincount(column, weights=diag, minlength=n_kept)
        p_at = np.flatnonzero(p_diag)
        p_rows, p_cols, p_vals = [p_at], [p_at], [p_diag[p_at]]
        if risk and v.gamma > 0:
            assert self._factor_cov is not None
            fr, fc = np.triu_indices(k)
            f0 = before_col[col_f]
            p_rows.append(fr + f0)
            p_cols.append(fc + f0)
            p_vals.append(2.0 * scale * v.gamma * self._factor_cov[fr, fc])
        P = sp.csc_matrix(
            (np.concatenate(p_vals), (np.concatenate(p_rows), np.concatenate(p_cols))),
            shape=(n_kept, n_kept),
        )
        P.eliminate_zeros()

        def absolute(rows: _Rows, span: slice) -> slice:
            start = offsets[id(rows)]
            return slice(int(before_row[start + span.start]), int(before_row[start + span.stop]))

        zero_m = int(before_row[zero.m])
        nonneg_m = int(before_row[zero.m + nonneg.m]) - zero_m
        return Assembly(
            P=P,
            q=np.bincount(column, weights=q * flip, minlength=n_kept),
            A=A,
            b=b,
            cones=(zero_m, nonneg_m, soc.m),
            w=column[col_w : col_w + p],
            h=slice(int(before_col[col_h]), int(before_col[col_h]) + n),
            upper=absolute(nonneg, upper),
            lower=absolute(nonneg, lower),
            pair_upper=absolute(nonneg, pair_upper),
            pair_lower=absolute(nonneg, pair_lower),
            shared_pairs=shared,
            pairs=p,
            blocks=[
                (absolute(rows, span), rows is soc, kept, int(before_col[col_s]))
                for (rows, span), kept, col_s in zip(block_rows, keep, slack_col, strict=True)
            ],
            constant=float(v.c @ (v.w_tilde * v.w_tilde)),
            sums=sum_rows,
            slack_units=units,
        )

    def _first_solve(self, data: Assembly, cones: list[Any], max_iters: int, method: str) -> Any:
        """Clarabel's unrefined solve of ``data``: set up afresh, or, with
        :attr:`reuse_solver`, on the solver kept from this program's last solve, its data
        overwritten, where the pattern of ``P`` and ``A`` and the cones are the same (a
        solver busy in another thread is not waited for: a fresh one is set up)."""
        if not self.reuse_solver or not self._kept_lock.acquire(blocking=False):
            return _clarabel(data, cones, max_iters, refine=False, method=method)
        try:
            kept = self._kept
            setup = (data.cones, method, max_iters)
            if kept is not None and kept.fits(data, setup):
                try:
                    kept.solver.update(
                        P=data.P.data.tolist(),
                        q=data.q.tolist(),
                        A=data.A.data.tolist(),
                        b=data.b.tolist(),
                    )
                except Exception:  # Clarabel names no exception class: set up afresh
                    self._kept = None
                else:
                    self.reused += 1
                    return kept.solver.solve()
            solver = _clarabel_solver(data, cones, max_iters, refine=False, method=method)
            self._kept = (
                _KeptSolver.of(solver, data, setup) if solver.is_data_update_allowed() else None
            )
            return solver.solve()
        finally:
            self._kept_lock.release()

    def solve(self, v: Values, *, max_iters: int) -> Solved:
        """Clarabel's answer to ``v``: ``OPTIMAL`` where an attempt meets
        :data:`ACCEPTED_TOLERANCE`, else the best attempt by its residuals,
        ``OPTIMAL_INACCURATE``; raises :class:`SolverFailed` where none is usable."""
        start = time.perf_counter()
        data = self.assemble(v)
        cones = _cones(data)
        assembled = time.perf_counter()
        best: tuple[Assembly, Any] | None = None
        status = "not run"
        for attempt, solution in self._attempts(v, data, cones, max_iters):
            status = str(solution.status)
            if _accepted(solution):
                best = (attempt, solution)
                break
            # An answer short of the tolerance is kept only while no earlier one is better.
            usable = status in ("Solved", "AlmostSolved")
            if usable and (best is None or _residual(solution) < _residual(best[1])):
                best = (attempt, solution)
        solver_seconds = time.perf_counter() - assembled
        if best is None:
            raise SolverFailed(f"CLARABEL returned status {status}")
        attempt, solution = best
        return _solved(
            attempt, solution, solve_seconds=solver_seconds, setup_seconds=assembled - start
        )

    def _attempts(
        self, v: Values, data: Assembly, cones: list[Any], max_iters: int
    ) -> Iterator[tuple[Assembly, Any]]:
        """Clarabel's attempts at ``v``, each with the assembly it solved, until the caller
        stops: without iterative refinement (about 30% less per iteration), then with it;
        then the program with its slacks in weight, as the gate solved it before, to
        :data:`ACCEPTED_TOLERANCE` (3 in 300 random small books get that far), without
        refinement and with."""
        method = "faer" if self.structure.n >= FAER_FROM else "qdldl"
        yield data, self._first_solve(data, cones, max_iters, method)
        yield data, _clarabel(data, cones, max_iters, refine=True, method=method)
        unscaled = self.assemble(v, rescale_slacks=False)
        for refine in (False, True):
            yield (
                unscaled,
                _clarabel(
                    unscaled,
                    cones,
                    max_iters,
                    refine=refine,
                    method=method,
                    tolerance=ACCEPTED_TOLERANCE,
                ),
            )


def _cones(data: Assembly) -> list[Any]:
    """Clarabel's cones of ``data``: equalities, non-negatives, then second-order cones."""
    zero, nonneg, soc = data.cones
    cones: list[Any] = [clarabel.ZeroConeT(zero)] if zero else []
    cones.append(clarabel.NonnegativeConeT(nonneg))
    if soc:
        cones.append(clarabel.SecondOrderConeT(soc))
    return cones


def _solved(data: Assembly, solution: Any, *, solve_seconds: float, setup_seconds: float) -> Solved:
    """Clarabel's ``solution`` of ``data`` read back: weights, slacks in weight, and
    multipliers in the unscaled objective's units."""
    x = np.asarray(solution.x)
    z = np.asarray(solution.z)
    scale = OBJECTIVE_SCALE

    def dual(rows: slice) -> np.ndarray:
        return np.maximum(z[rows], 0.0) / scale

    slacks, duals = [], []
    for (rows, is_cone, kept, col_s), unit in zip(data.blocks, data.slack_units, strict=True):
        full_slack = np.zeros(len(kept))
        full_slack[kept] = unit * x[col_s : col_s + int(kept.sum())]
        slacks.append(full_slack)
        full_dual = np.zeros(len(kept))
        if is_cone:  # the multiplier of ``t ≤ rhs + s``: the cone's first row
            full_dual[:] = dual(slice(rows.start, rows.start + 1))
        else:
            full_dual[kept] = dual(rows)
        duals.append(full_dual)
    within = _accepted(solution) or _residual(solution) <= CHAIN_TOLERANCE
    return Solved(
        status=OPTIMAL if within else OPTIMAL_INACCURATE,
        solver="CLARABEL",
        w=x[data.w].copy(),
        h=x[data.h].copy(),
        slacks=slacks,
        duals=duals,
        box_upper_dual=dual(data.upper),
        box_lower_dual=dual(data.lower),
        objective=float(solution.obj_val) / scale + data.constant,
        solve_seconds=solve_seconds,
        setup_seconds=setup_seconds,
        iterations=int(solution.iterations),
        residual=_residual(solution),
        pair_upper_dual=data.on_pairs(dual(data.pair_upper)),
        pair_lower_dual=data.on_pairs(dual(data.pair_lower)),
    )


NARROW_SUMS_BELOW = 1_500
"""Names below which narrow shared sums are written too: a sector's, country's or
cluster's net rows above and below (and its gross rows, where two blocks read them) read
one sum ``y_g = Σ_{i∈g} h_i`` instead of each repeating the group's members. Clarabel
alone, the same books solved old and new in alternation (best of five each; iterations
unchanged): 8–12% less solver time at N = 300 (12 books) and 600 (4), 5–11% at 1,000
(3), 11–14% at 1,400 (3); at 2,000 one book 11% less and one 21% more, at 3,000 20–22%
more, at 5,000 9% more (both with QDLDL). Which way it goes is the fill-reducing
ordering's, which Python cannot steer; wide rows (the book's sums) are shared at every
size."""

FAER_FROM = 5_000
"""Names from which Clarabel factors its KKT system with faer (one thread; on these
problems faer picks its simplicial factorization) instead of QDLDL. On the benchmark's
books with every family on, interleaved runs: 12% less solver time at N = 10,000
(4.7–4.9 s against 5.5 s), 4% at 5,000, and 1–7% more from 300 to 2,000; the iterations
are the same and the objective agrees to 1e-13. On the
benchmark's smaller shared problem (no country or cluster rows) faer was 5–10% slower at
10,000: which wins depends on how many group rows end in the dense part of the
factorization, and the default set has them all. One thread: a batch already runs one
book per core."""


class _Lists:
    """A CSC matrix as Clarabel's Python binding reads it (``data``, ``indices``,
    ``indptr``, ``shape``, ``has_canonical_format``), its arrays as Python lists.

    The binding copies each array element by element through the sequence protocol; from
    a NumPy array every element is first boxed as a NumPy scalar, from a list it is read
    straight from a Python number. Handing over lists (``tolist`` is one C loop) takes
    Clarabel's constructor from 85.8 to 79.1 ms at N = 2,000 with every family on (84,000
    entries in ``A``) and from 3.8 to 3.3 ms for a 300-name book; the solution is the
    same to the last bit."""

    __slots__ = ("data", "has_canonical_format", "indices", "indptr", "shape")

    def __init__(self, matrix: sp.csc_matrix) -> None:
        self.has_canonical_format = bool(matrix.has_canonical_format)
        self.data = matrix.data.tolist()
        self.indices = matrix.indices.tolist()
        self.indptr = matrix.indptr.tolist()
        self.shape = matrix.shape


def _clarabel(data: Assembly, cones: list[Any], max_iters: int, **options: Any) -> Any:
    """Clarabel's solution of ``data``: :func:`_clarabel_solver` with ``options``, run."""
    return _clarabel_solver(data, cones, max_iters, **options).solve()


def _clarabel_solver(
    data: Assembly,
    cones: list[Any],
    max_iters: int,
    *,
    refine: bool,
    method: str = "qdldl",
    tolerance: float = TOLERANCE,
) -> Any:
    """Clarabel set up for ``data``, not yet run, factoring with ``method`` (QDLDL where
    this build of Clarabel has no faer)."""
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_iter = max_iters
    settings.tol_gap_abs = tolerance
    settings.tol_gap_rel = tolerance
    settings.tol_feas = tolerance
    settings.tol_ktratio = 1e-9
    settings.iterative_refinement_enable = refine
    settings.direct_solve_method = method if method == "qdldl" or _can_factor(method) else "qdldl"
    settings.max_threads = 1
    return clarabel.DefaultSolver(
        _Lists(data.P), data.q.tolist(), _Lists(data.A), data.b.tolist(), cones, settings
    )


def _accepted(solution: Any) -> bool:
    """Solved to the tolerance it was asked for (:data:`TOLERANCE`, or
    :data:`ACCEPTED_TOLERANCE` for the retries in weight), or stopped short of it but
    within :data:`ACCEPTED_TOLERANCE`."""
    status = str(solution.status)
    return status == "Solved" or (status == "AlmostSolved" and _meets(solution, ACCEPTED_TOLERANCE))


def _meets(solution: Any, tolerance: float) -> bool:
    """Whether Clarabel's answer meets ``tolerance`` as its own test of convergence reads
    it: the primal and dual residuals (normalized), and the gap, absolute or relative."""
    return _residual(solution) <= tolerance


def _residual(solution: Any) -> float:
    """The largest of Clarabel's primal residual, dual residual and gap (absolute or
    relative, whichever is smaller), as its test of convergence reads them; ``inf`` for an
    answer without numbers."""
    try:
        primal, dual = float(solution.obj_val), float(solution.obj_val_dual)
        gap = abs(primal - dual)
        relative = gap / max(1.0, min(abs(primal), abs(dual)))
        worst = max(float(solution.r_prim), float(solution.r_dual), min(gap, relative))
    except (AttributeError, TypeError, ValueError):
        return float("inf")
    return worst if math.isfinite(worst) else float("inf")


@functools.cache
def _can_factor(method: str) -> bool:
    """Whether this build of Clarabel factors with ``method`` (faer is a build option;
    QDLDL is in every build), asked once per process on a one-variable program so that a
    failure on real data is never taken for a missing method."""
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.direct_solve_method = method
    one = sp.csc_matrix(np.ones((1, 1)))
    try:
        solver = clarabel.DefaultSolver(
            one, [0.0], one, [1.0], [clarabel.NonnegativeConeT(1)], settings
        )
        return str(solver.solve().status) == "Solved"
    except Exception:  # Clarabel names no exception class for it
        return False


class GateProgram:
    """The gate's program for one :class:`Structure`: values in, a :class:`Solved` out.

    Clarabel (the default) gets the program assembled directly (:class:`ClarabelProgram`);
    any other solver, or ``via="cvxpy"``, goes through the cvxpy formulation
    (:class:`CvxpyProgram`), compiled on first use and kept for later solves.
    """

    def __init__(self, structure: Structure, *, reuse_solver: bool = False) -> None:
        self.structure = structure
        self.reuse_solver = reuse_solver
        self.values: Values | None = None
        """Values for a :meth:`solve` given none (a notebook's convenience: set it to
        :meth:`Values.of` a book's inputs; concurrent callers pass ``values`` instead)."""
        self.solves = 0
        self._direct: ClarabelProgram | None = None
        self._cvxpy: CvxpyProgram | None = None
        self._lock = threading.Lock()

    @property
    def cvxpy(self) -> CvxpyProgram:
        if self._cvxpy is None:
            self._cvxpy = CvxpyProgram(self.structure)
        return self._cvxpy

    def solve(
        self,
        solver: str | Any,
        *,
        max_iters: int,
        via: str = "direct",
        warm_start: bool = False,
        values: Values | None = None,
    ) -> Solved:
        """Solve ``values`` (default: :attr:`values`) with one solver (a
        name or a cvxpy solver instance); raises on failure.

        A program is shared by every book of its structure, also across threads: the
        direct Clarabel path keeps no state between solves (with ``reuse_solver``, one
        thread at a time uses the kept solver and the others set up their own), and
        the cvxpy path, whose parameters are the program's own, takes one solve at a
        time.

        ``warm_start`` starts a first-order solver (OSQP, SCS) from the cached program's
        previous solution. It is off by default: at the gate's 1e-9 tolerance a
        warm-started OSQP re-solve of an 80-name book with new decisions ran out of
        iterations (status ``user_limit``) where the cold start converged in 0.6 s.
        Clarabel, an interior-point method, always starts afresh.
        """
        v = self.values if values is None else values
        if v is None:
            raise ValueError("no values: pass values or set program.values first")
        with self._lock:
            self.solves += 1
            if solver == "CLARABEL" and via == "direct":
                if self._direct is None:
                    self._direct = ClarabelProgram(self.structure, reuse_solver=self.reuse_solver)
                direct = self._direct
            else:
                program = self.cvxpy
                program.set_values(v)
                return program.solve(solver, max_iters=max_iters, warm_start=warm_start)
        return direct.solve(v, max_iters=max_iters)


class ProgramCache:
    """Compiled programs keyed by structure (least recently used evicted); safe to share
    between threads.

    ``reuse_solver=True`` also keeps each program's Clarabel solver after a solve, and
    the next solve of the same program, where the pattern of its data is the same (the
    same rows left out and the same names with their sign fixed: new decisions,
    confidences, γ or limit values of a book), overwrites the solver's data instead of
    setting it up again. Clarabel then skips its setup (ordering, symbolic
    factorization, equilibration): on the benchmark's book with every family on,
    Clarabel's own time for a re-solve with new decisions fell from 689 to 438 ms at
    N = 5,000 and from 2.54 to 1.89 s at 10,000; at 2,000, from 155 to 146 ms.

    The catch, and why it is off by default: the solver keeps the equilibration it
    computed for the data it was set up with, and Clarabel's cost scaling depends on
    ``q`` (the proposal), so a re-solve on the kept solver ends within the tolerance
    of a cold solve, not on it (weights 1e-11 apart, multipliers 3e-8 in Clarabel's
    scaling, on those books), and what it returns depends on what was solved first.
    A regression test or an audit replay wants the cold solve, bit for bit; a notebook
    re-solving one large book many times may want the time. The kept solvers hold
    their factorization: about what the solve itself needs, per cached program.
    """

    def __init__(self, size: int = CACHE_SIZE, *, reuse_solver: bool = False) -> None:
        self.size = size
        self.reuse_solver = reuse_solver
        self._programs: OrderedDict[tuple[object, ...], GateProgram] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, structure: Structure) -> GateProgram:
        return self.fetch(structure)[0]

    def fetch(self, structure: Structure) -> tuple[GateProgram, bool]:
        """The program of ``structure`` and whether this call built it."""
        with self._lock:
            program = self._programs.get(structure.key)
            if program is not None:
                self._programs.move_to_end(structure.key)
                return program, False
            program = GateProgram(structure, reuse_solver=self.reuse_solver)
            self.builds += 1
            self._programs[structure.key] = program
            while len(self._programs) > self.size:
                self._programs.popitem(last=False)
            return program, True

    def clear(self) -> None:
        with self._lock:
            self._programs.clear()


DEFAULT_CACHE = ProgramCache()
