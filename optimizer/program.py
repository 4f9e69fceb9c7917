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

import threading
from collections import OrderedDict
from typing import Any

from riskopt.optimizer.assembly import (
    NARROW_SUMS_BELOW,
    SLACK_COST,
    Assembly,
    SharedSum,
    redundant_rows,
    shared_sums,
)
from riskopt.optimizer.clarabel_program import (
    ACCEPTED_TOLERANCE,
    CHAIN_TOLERANCE,
    FAER_FROM,
    TOLERANCE,
    ClarabelProgram,
)
from riskopt.optimizer.cvxpy_program import CvxpyProgram
from riskopt.optimizer.structure import (
    OBJECTIVE_SCALE,
    OPTIMAL,
    OPTIMAL_INACCURATE,
    Solved,
    SolverFailed,
    Structure,
    Values,
)
from riskopt.optimizer.structured_program import NAME as STRUCTURED
from riskopt.optimizer.structured_program import StructuredProgram

__all__ = [
    "ACCEPTED_TOLERANCE",
    "CACHE_SIZE",
    "CHAIN_TOLERANCE",
    "DEFAULT_CACHE",
    "FAER_FROM",
    "NARROW_SUMS_BELOW",
    "OBJECTIVE_SCALE",
    "OPTIMAL",
    "OPTIMAL_INACCURATE",
    "SLACK_COST",
    "TOLERANCE",
    "Assembly",
    "ClarabelProgram",
    "CvxpyProgram",
    "GateProgram",
    "ProgramCache",
    "SharedSum",
    "Solved",
    "SolverFailed",
    "Structure",
    "Values",
    "redundant_rows",
    "shared_sums",
]

CACHE_SIZE = 16


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
        self._structured: StructuredProgram | None = None
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
            if solver == STRUCTURED and via == "direct":
                if self._structured is None:
                    self._structured = StructuredProgram(self.structure)
                direct: ClarabelProgram | StructuredProgram = self._structured
            elif solver == "CLARABEL" and via == "direct":
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
    factorization, equilibration), which pays on large books (measurements:
    ``benchmarks/README.md``).

    The catch, and why it is off by default: the solver keeps the equilibration it
    computed for the data it was set up with, and Clarabel's cost scaling depends on
    ``q`` (the proposal), so a re-solve on the kept solver ends within the tolerance
    of a cold solve, not on it, and what it returns depends on what was solved first.
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
