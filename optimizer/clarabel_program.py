"""Clarabel's solve of the assembled program: the attempts, their settings, the kept
solver, and the answer read back."""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import clarabel
import numpy as np
import scipy.sparse as sp

from riskopt.optimizer.assembly import Assembler, Assembly
from riskopt.optimizer.structure import (
    OBJECTIVE_SCALE,
    OPTIMAL,
    OPTIMAL_INACCURATE,
    Solved,
    SolverFailed,
    Structure,
    Values,
)

CHAIN_TOLERANCE = 1e-9
"""The accuracy the solver chain asks of every solver (SCS and OSQP are run to it): an
answer of Clarabel's that stops short of its own, tighter tolerances but meets this is
as good as what the next solver would give, so it is the chain's answer, not SCS's."""
ACCEPTED_TOLERANCE = 1e-10
"""What an answer that stops short of :data:`TOLERANCE` (Clarabel's ``AlmostSolved``)
must still meet, by Clarabel's own measures (:func:`_meets`), to count as optimal: the
tolerance the gate ran at before. An answer short of it is solved again with iterative
refinement, then as the gate solved it before (slacks in weight, this tolerance), so
that every book the former program solved is solved as well. Where no attempt meets
it, the answer is the attempt with the smallest residual (:func:`_residual`), marked
``OPTIMAL_INACCURATE``, which the gate does not accept."""

TOLERANCE = 1e-11
"""Clarabel's gap and feasibility tolerances (absolute and relative). With the slacks
rescaled (:data:`SLACK_COST`), 1e-10 left small multipliers on per-name rows that sit
exactly at their limit and bind by nothing, which the explanations then named as a
cause (measurements: ``benchmarks/README.md``)."""


FAER_FROM = 5_000
"""Names from which Clarabel factors its KKT system with faer (one thread) instead of
QDLDL: faster on the largest books, slower below (measurements: ``benchmarks/README.md``).
One thread: a batch already runs one book per core."""


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


class ClarabelProgram(Assembler):
    """The gate's program assembled directly (:class:`Assembler`) and solved by Clarabel."""

    def __init__(self, structure: Structure, *, reuse_solver: bool = False) -> None:
        super().__init__(structure)
        self.reuse_solver = reuse_solver
        """Keep Clarabel's solver between solves and overwrite its data (see
        :class:`ProgramCache`)."""
        self.reused = 0
        """Solves that ran on the kept solver."""
        self._kept: _KeptSolver | None = None
        self._kept_lock = threading.Lock()

    def _first_solve(self, data: Assembly, cones: list[Any], max_iters: int, method: str) -> Any:
        """Clarabel's unrefined solve of ``data``: set up afresh, or, with
        :attr:`reuse_solver`, on the solver kept from this program's last solve, its data
        overwritten, where the pattern of ``P`` and ``A`` and the cones are the same (a
        solver busy in another thread is not waited for: a fresh one is set up)."""
        if not self.reuse_solver or not self._kept_lock.acquire(blocking=False):
            return _clarabel(data, cones, max_iters, refine=False, method=method)
        try:
            kept = self._kept
            setup = (data.cones, data.power, method, max_iters)
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
    """Clarabel's cones of ``data``: equalities, non-negatives, the second-order cone, then
    one power cone ``x^{2/3} y^{1/3} ≥ |z|`` per impact term."""
    zero, nonneg, soc = data.cones
    cones: list[Any] = [clarabel.ZeroConeT(zero)] if zero else []
    cones.append(clarabel.NonnegativeConeT(nonneg))
    if soc:
        cones.append(clarabel.SecondOrderConeT(soc))
    cones.extend(clarabel.PowerConeT(2.0 / 3.0) for _ in range(data.power))
    return cones


def _solved(
    data: Assembly,
    solution: Any,
    *,
    solve_seconds: float,
    setup_seconds: float,
    solver: str = "CLARABEL",
    residual: float | None = None,
) -> Solved:
    """Clarabel's ``solution`` of ``data`` (or one with its fields) read back: weights,
    slacks in weight, and multipliers in the unscaled objective's units. ``residual``
    is the solver's own measure where it has one (else Clarabel's is read)."""
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
    if residual is None:
        residual = 0.0 if _accepted(solution) else _residual(solution)
    within = residual <= CHAIN_TOLERANCE
    return Solved(
        status=OPTIMAL if within else OPTIMAL_INACCURATE,
        solver=solver,
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
        residual=residual if residual > 0.0 else _residual(solution),
        pair_upper_dual=data.on_pairs(dual(data.pair_upper)),
        pair_lower_dual=data.on_pairs(dual(data.pair_lower)),
    )


class _Lists:
    """A CSC matrix as Clarabel's Python binding reads it (``data``, ``indices``,
    ``indptr``, ``shape``, ``has_canonical_format``), its arrays as Python lists.

    The binding copies each array element by element through the sequence protocol; from
    a NumPy array every element is first boxed as a NumPy scalar, from a list it is read
    straight from a Python number (``tolist`` is one C loop). The solution is the same to
    the last bit."""

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
    tolerance: float | None = None,
) -> Any:
    """Clarabel set up for ``data``, not yet run, factoring with ``method`` (QDLDL where
    this build of Clarabel has no faer)."""
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_iter = max_iters
    tolerance = TOLERANCE if tolerance is None else tolerance
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
