"""The gate's program written in cvxpy: the reference formulation, and the path for every
solver of the chain but Clarabel (SCS, OSQP, a solver instance)."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from riskopt.constraints.base import Transform
from riskopt.constraints.transforms import reads_pairs, rule, shifted
from riskopt.optimizer.structure import (
    OBJECTIVE_SCALE,
    OPTIMAL,
    OPTIMAL_INACCURATE,
    Solved,
    SolverFailed,
    Structure,
    Values,
)

if TYPE_CHECKING:
    import cvxpy as cp


class CvxpyProgram:
    """The gate as a cvxpy problem: the reference formulation, and the path for every
    solver but Clarabel (OSQP, SCS, a solver instance). Built on first use."""

    def __init__(self, structure: Structure) -> None:
        import cvxpy as cp  # only this path needs the modelling layer

        self.structure = s = structure
        self.w = cp.Variable(s.p, name="w")
        self.h = cp.Variable(s.n, name="h")
        self._constraints: list[cp.Constraint] = [self.h == s.M @ self.w]
        self._aux: dict[tuple[str, str], cp.Variable] = {}
        objective = self._tracking_and_boxes()
        objective = self._blocks(self._risk_and_costs(objective))
        self.problem = cp.Problem(cp.Minimize(objective), self._constraints)
        self.solves = 0
        # cvxpy's DPP path restructures its whole parameter tensor when the program has a
        # cone: 7 s of compile at N = 1,000 against 1 s without DPP. Programs with the
        # volatility cone are therefore compiled from values on each solve; those
        # without keep DPP, where a re-solve costs little more than the solver.
        self.use_dpp = not any(transform == "vol" for _, transform, _, _, _ in s.blocks)

    def _tracking_and_boxes(self) -> cp.Expression:
        """The tracking term, and the hard boxes on ``h`` and on the shared pairs."""
        import cvxpy as cp

        s = self.structure
        # Tracking: Σ c (w − w̃)² written as ‖√c ∘ w − √c ∘ w̃‖² (DPP).
        self.sqrt_c = cp.Parameter(s.p, nonneg=True, name="sqrt_c")
        self.sqrt_c_w_tilde = cp.Parameter(s.p, name="sqrt_c_w_tilde")
        self.lo = cp.Parameter(s.n, name="lo")
        self.hi = cp.Parameter(s.n, name="hi")
        objective = cp.sum_squares(cp.multiply(self.sqrt_c, self.w) - self.sqrt_c_w_tilde)
        self.box_upper = self.h <= self.hi
        self.box_lower = self.h >= self.lo
        self._constraints += [self.box_upper, self.box_lower]
        shared = s.shared_pairs
        self.w_hi = cp.Parameter(len(shared), name="w_hi")
        self.w_lo = cp.Parameter(len(shared), name="w_lo")
        self.pair_upper: cp.Constraint | None = None
        self.pair_lower: cp.Constraint | None = None
        if len(shared):
            self.pair_upper = self.w[shared] <= self.w_hi
            self.pair_lower = self.w[shared] >= self.w_lo
            self._constraints += [self.pair_upper, self.pair_lower]
        return objective

    def _risk_and_costs(self, objective: cp.Expression) -> cp.Expression:
        """``objective`` plus the specific and factor risk terms and the trading cost
        ``κ·|h − h0|``."""
        import cvxpy as cp

        s = self.structure
        self.gamma = cp.Parameter(nonneg=True, name="gamma", value=0.0)
        self.sqrt_specific = cp.Parameter(s.n, nonneg=True, name="sqrt_gamma_i_d")
        objective = objective + cp.sum_squares(cp.multiply(self.sqrt_specific, self.h))
        if s.loadings is not None and s.chol is not None:
            self.f = cp.Variable(s.k, name="f")
            self._constraints.append(self.f == s.loadings.T @ self.h)
            objective = objective + self.gamma * cp.sum_squares(s.chol.T @ self.f)
        self.h0 = cp.Parameter(s.n, name="h0")
        self.w0 = cp.Parameter(s.p, name="w0")
        self.kappa = cp.Parameter(s.n, nonneg=True, name="kappa")
        self.impact = cp.Parameter(s.n, nonneg=True, name="impact")
        if s.costs:
            # |h − h0| through an explicit trade-size variable keeps the program DPP.
            trade = cp.Variable(s.n, nonneg=True, name="trade_size")
            self._constraints += [trade >= self.h - self.h0, trade >= self.h0 - self.h]
            objective = objective + self.kappa @ trade
            if s.impact:
                impact = cp.Variable(s.n, nonneg=True, name="impact_cost")
                self._constraints.append(impact >= cp.power(trade, 1.5))
                objective = objective + self.impact @ impact
        return objective

    def _blocks(self, objective: cp.Expression) -> cp.Expression:
        """Each policy block's rows ``A · T(x) ≤ rhs + s`` (or the cone); ``objective`` plus
        the slacks' cost."""
        import cvxpy as cp

        self.rhs: list[cp.Parameter] = []
        self.rho: list[cp.Parameter] = []
        self.slack: list[cp.Variable] = []
        self.rows: list[cp.Constraint] = []
        for name, transform, on, m, a in self.structure.blocks:
            rhs = cp.Parameter(m, name=f"rhs[{name}]")
            rho = cp.Parameter(nonneg=True, name=f"rho[{name}]")
            slack = cp.Variable(m, nonneg=True, name=f"s[{name}]")
            row: cp.Constraint
            if transform == "vol":
                row = self._volatility_cone(rhs, slack, self._constraints)
            elif transform == "cost":
                assert a is not None
                size = cp.abs(self._operand(on))
                half = a.shape[1] // 2
                row = a[:, :half] @ size + a[:, half:] @ cp.power(size, 1.5) <= rhs + slack
            else:
                x = self._transformed(transform, on)
                lhs = x if a is None else a @ x
                row = lhs <= rhs + slack
            self._constraints.append(row)
            objective = objective + rho * cp.sum(slack)
            self.rhs.append(rhs)
            self.rho.append(rho)
            self.slack.append(slack)
            self.rows.append(row)
        return objective

    def _operand(self, on: str) -> cp.Expression:
        """The vector rows over ``on`` read: ``h``, ``w``, the trade ``h − h0`` or the pair
        trade ``w − w0``."""
        x = self.w if reads_pairs(on) else self.h
        if not shifted(on):
            return x
        return x - (self.w0 if reads_pairs(on) else self.h0)

    def _transformed(self, transform: Transform, on: str) -> cp.Expression:
        """``T(x)`` for the rows' operand ``x``: ``x`` itself, or one epigraph variable per
        (transform, operand) with the rows its table entry lists."""
        import cvxpy as cp

        base = self._operand(on)
        r = rule(transform)
        if not r.epigraph:
            return base
        key = (transform, on)
        if key not in self._aux:
            size = self.structure.p if reads_pairs(on) else self.structure.n
            var = cp.Variable(size, name=f"{on}_{transform}", nonneg=r.nonneg)
            self._aux[key] = var
            self._constraints.extend([var >= (base if sign > 0 else -base) for sign in r.epigraph])
        return self._aux[key]

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
        self.w0.value = v.w0
        self.kappa.value = v.kappa * scale
        self.impact.value = v.impact * scale
        for param, rhs in zip(self.rhs, v.rhs, strict=True):
            param.value = rhs
        for param, value in zip(self.rho, v.rho, strict=True):
            param.value = value * scale

    def solve(self, solver: str | Any, *, max_iters: int, warm_start: bool = False) -> Solved:
        """Solve with one solver (a name or a cvxpy solver instance); raises on failure."""
        import cvxpy as cp

        name = solver if isinstance(solver, str) else str(solver.name())
        options = _options(name, max_iters)
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


def _options(name: str, max_iters: int) -> dict[str, object]:
    """The settings the chain runs solver ``name`` with (none for a solver it does not
    know): its iteration limit from ``max_iters`` and the chain's 1e-9 accuracy."""
    options: dict[str, object] = {}
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
    return options
