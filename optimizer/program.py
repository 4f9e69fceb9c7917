"""The gate's convex program, built once per structure and re-solved with new values.

minimize   Σ_p c_p (w_p − w̃_p)²  +  γ ‖Lᵀ f‖²  +  Σ_i γ d_i γ_i h_i²  +  Σ_i κ_i |h_i − h0_i|
           + Σ_blocks ρ_tier · Σ s
subject to h = M w,  f = Bᵀ h,  lo ≤ h ≤ hi   (hard box: every hard family at once)
           A · T(h) ≤ b + s,  s ≥ 0          (each policy block, elastic by tier)

Every number that changes between rebalances is a ``cvxpy.Parameter``; the structure
(sizes, ``M``'s pattern, ``A`` matrices, the risk model) keys a small cache of compiled
programs, so a research sweep or a repeated rebalance pays cvxpy's compile once.
Shared auxiliary variables ``|h|``, ``h⁺``, ``h⁻`` are created once and used by every
block that needs them (never an ``abs`` per constraint).
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from constraints.base import LinearLimit, ProgramData, Transform

CACHE_SIZE = 16
OBJECTIVE_SCALE = 1e4
"""The objective is multiplied by this (weights read as percent), so its value is of order
one and the solver's absolute tolerances mean the same as relative ones; duals are divided
back before anyone reads them."""


def _digest(*arrays: np.ndarray) -> str:
    d = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        d.update(str(a.shape).encode())
        d.update(a.tobytes())
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


class GateProgram:
    """The compiled cvxpy problem of one :class:`Structure`."""

    def __init__(self, structure: Structure) -> None:
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
        s = self.structure
        if s.chol is None or s.specific is None:
            raise ValueError("a volatility cap needs a risk model")
        parts = cp.hstack([s.chol.T @ self.f, cp.multiply(np.sqrt(s.specific), self.h)])
        return cp.reshape(cp.norm(parts, 2), (1,), order="C") <= rhs + slack

    def set_values(
        self,
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
    ) -> None:
        scale = OBJECTIVE_SCALE
        sqrt_c = np.sqrt(c * scale)
        self.sqrt_c.value = sqrt_c
        self.sqrt_c_w_tilde.value = sqrt_c * data.w_tilde
        self.lo.value = lo
        self.hi.value = hi
        self.gamma.value = float(gamma) * scale
        specific = np.zeros(data.n) if data.specific_var is None else data.specific_var
        self.sqrt_specific.value = np.sqrt(np.maximum(scale * gamma * gamma_i * specific, 0.0))
        self.h0.value = data.h0
        self.kappa.value = kappa * scale
        for param, limit in zip(self.rhs, limits, strict=True):
            param.value = limit.rhs
        for param, value in zip(self.rho, rho, strict=True):
            param.value = value * scale

    def solve(self, solver: str | Any, *, max_iters: int, warm_start: bool = False) -> Solved:
        """Solve with one solver (a name or a cvxpy solver instance); raises on failure."""
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
            self.problem.solve(
                solver=solver, warm_start=warm_start, ignore_dpp=not self.use_dpp, **options
            )
        wall = time.perf_counter() - start
        self.solves += 1
        status = self.problem.status
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or self.w.value is None:
            raise cp.SolverError(f"{name} returned status {status}")
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
        )


def _dual(constraint: cp.Constraint) -> np.ndarray:
    """Non-negative multipliers of ``constraint`` in the unscaled objective's units."""
    raw = constraint.dual_value
    value = np.asarray(raw, dtype=float).reshape(-1)
    return np.maximum(value, 0.0) / OBJECTIVE_SCALE


class ProgramCache:
    """Compiled programs keyed by structure (least recently used evicted)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._programs: OrderedDict[tuple[object, ...], GateProgram] = OrderedDict()
        self.builds = 0

    def get(self, structure: Structure) -> GateProgram:
        program = self._programs.get(structure.key)
        if program is None:
            program = GateProgram(structure)
            self.builds += 1
            self._programs[structure.key] = program
            while len(self._programs) > self.size:
                self._programs.popitem(last=False)
        else:
            self._programs.move_to_end(structure.key)
        return program

    def clear(self) -> None:
        self._programs.clear()


DEFAULT_CACHE = ProgramCache()
