"""The solve stage: the solver chain on the cached program, each answer's acceptance,
and the de-risk-only fallback when no solver gives an accurate answer."""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskopt.constraints.base import Limit, ProgramData
from riskopt.constraints.config import DIRECT_SOLVERS as DIRECT
from riskopt.constraints.config import SOLVERS, unrunnable_chain
from riskopt.data.errors import ValidationError
from riskopt.optimizer.assemble import Assembled, Box
from riskopt.optimizer.program import (
    ACCEPTED_TOLERANCE,
    GateProgram,
    ProgramCache,
    Solved,
    SolverFailed,
    Structure,
    Values,
)
from riskopt.optimizer.program import OPTIMAL as SOLVER_OPTIMAL

log = logging.getLogger("riskopt")

VIA_CVXPY = {"CLARABEL_CVXPY": ("CLARABEL", "cvxpy")}
"""Chain names that run a solver on cvxpy's compile of the program: Clarabel there
rescues books whose direct solve ends inaccurate (benchmarks/README.md, "Solver chain")."""


@dataclass(frozen=True)
class Solution:
    """What the solve stage gives: the accepted answer (``None``: the de-risk fallback),
    the chain taken, whether the program was compiled, and the weights kept in the box."""

    solved: Solved | None
    chain: list[dict[str, str]]
    program_built: bool
    h: np.ndarray
    """Per ticker, in the hard box (the solver's, or the fallback's)."""
    w: np.ndarray
    """Per (strategy, ticker) pair, in the pair box."""


def solve(
    assembled: Assembled, *, solvers: list[str | Any] | None, cache: ProgramCache | None
) -> Solution:
    """Solve ``assembled`` along the chain (``solvers``, else the set's); with no accurate
    answer, keep every position and cut those above their per-name cap (``FALLBACK``)."""
    a = assembled
    data, box = a.data, a.box
    chain: list[dict[str, str]] = []
    solved: Solved | None = None
    program_built = False
    if data.n:
        structure = Structure.of(data, a.limits, costs=a.costs, impact=a.has_impact)
        program, program_built = (cache if cache is not None else ProgramCache(1)).fetch(structure)
        values = Values.of(
            data,
            a.limits,
            c=a.c,
            lo=box.lo,
            hi=box.hi,
            w_lo=box.w_lo,
            w_hi=box.w_hi,
            gamma=a.aversion.gamma * a.risk_scale,
            gamma_i=a.aversion.gamma_i,
            kappa=a.kappa,
            rho=a.rho,
            impact=a.impact if a.has_impact else None,
        )
        cs = a.cs
        solved, chain = solve_chain(
            program, solvers or list(cs.solver.chain), values, max_iters=cs.solver.max_iters
        )
    if solved is not None:
        solved = exact_if_proposal_optimal(solved, a)
        h, w = np.clip(solved.h, box.lo, box.hi), np.clip(solved.w, box.w_lo, box.w_hi)
        return Solution(solved, chain, program_built, h, w)
    if data.n:
        log.error("every solver failed (%s): de-risk-only fallback", chain)
    h = derisk_fallback(data, a.limits, box.lo, box.hi)
    return Solution(None, chain, program_built, h, pairs_from_tickers(data, h))


@functools.cache
def _installed_solvers() -> frozenset[str]:
    """cvxpy's list of installed solvers (it probes imports: asked once per process)."""
    import cvxpy as cp

    return frozenset(cp.installed_solvers())


def check_solvers(solvers: list[str | Any] | None) -> list[str | Any] | None:
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
    if not unknown and (problem := unrunnable_chain(named)):
        raise ValidationError("solvers", [problem])
    if unknown:
        raise ValidationError(
            "solvers",
            [
                f"unknown solver {', '.join(unknown)}: expected {', '.join(SOLVERS)} "
                "(in any case) or a cvxpy solver instance"
            ],
        )
    return named


def _route(solver: str | Any) -> tuple[str | Any, str]:
    """The solver a chain entry runs and the path it takes (``direct`` or ``cvxpy``)."""
    if isinstance(solver, str) and solver in VIA_CVXPY:
        return VIA_CVXPY[solver]
    return solver, "direct"


def solve_chain(
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
        if isinstance(target, str) and target not in DIRECT and target not in _installed_solvers():
            chain.append({"solver": name, "outcome": "not installed"})
            continue
        try:
            candidate = program.solve(target, max_iters=max_iters, values=values, via=via)
        except (SolverFailed, ValueError, ArithmeticError) as err:
            chain.append({"solver": name, "outcome": f"failed: {err}"})
            log.warning("solver %s failed: %s", name, err)
            continue
        problem = accuracy_problem(candidate, Box(values.lo, values.hi, values.w_lo, values.w_hi))
        if problem:
            chain.append({"solver": name, "outcome": f"inaccurate: {problem}"})
            log.warning("solver %s inaccurate: %s", name, problem)
            continue
        chain.append({"solver": name, "outcome": candidate.status})
        return candidate, chain
    return None, chain


def box_violation(solved: Solved, box: Box) -> float:
    """How far the answer leaves the hard boxes (infinite for a non-finite answer)."""
    if not (np.isfinite(solved.w).all() and np.isfinite(solved.h).all()):
        return float("inf")
    return float(
        max(
            np.max(np.maximum(solved.h - box.hi, box.lo - solved.h), initial=0.0),
            np.max(np.maximum(solved.w - box.w_hi, box.w_lo - solved.w), initial=0.0),
        )
    )


def accuracy_problem(solved: Solved, box: Box) -> str | None:
    """Why an answer is not accurate enough to take (``None`` when it is)."""
    if not (np.isfinite(solved.w).all() and np.isfinite(solved.h).all()):
        return "non-finite solution"
    violation = box_violation(solved, box)
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


def exact_if_proposal_optimal(solved: Solved, assembled: Assembled) -> Solved:
    """The proposal itself, exactly, where it is known to be optimal; else ``solved``.

    With no risk aversion (γ = 0) and no trading cost on the proposed trades, the
    objective is the tracking term alone, whose minimum (zero) is the proposal. If the
    proposal also meets the hard box and every policy row (to the last bit, no
    tolerance), it is the solution, with zero slacks and zero multipliers. An
    interior-point solver only comes within its tolerance of it (about 1e-7 of NAV), which
    would let a compliant proposal move by a lot after rounding; this returns it unchanged.
    """
    data, kappa = assembled.data, assembled.kappa
    w, h = data.w_tilde, data.h_tilde
    charged = kappa + (assembled.impact if assembled.has_impact else 0.0)
    if assembled.aversion.gamma != 0.0 or (
        assembled.costs and np.any((charged > 0) & (h != data.h0))
    ):
        return solved
    if not assembled.box.holds(h, w):
        return solved
    if not all(np.all(limit.lhs(h, w) <= limit.rhs) for limit in assembled.limits):
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


def derisk_fallback(
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


def pairs_from_tickers(data: ProgramData, h: np.ndarray) -> np.ndarray:
    """The fallback's pairs: each sleeve of a name cut in the name's proportion (the
    fallback only moves names toward zero, so every pair moves toward zero too)."""
    ratio = np.divide(h, data.h0, out=np.zeros(data.n), where=data.h0 != 0)
    return data.w0 * np.clip(ratio, 0.0, 1.0)[data.pair_ticker]
