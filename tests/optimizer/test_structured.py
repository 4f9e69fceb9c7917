"""The structured interior-point solve: its cone algebra, and its answers held to
Clarabel's (the oracle) on generated books in every state; where it cannot answer, the
chain goes on to Clarabel and says so."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import riskopt.optimizer.clarabel_program
import riskopt.optimizer.structured
import riskopt.optimizer.structured_program
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.family import STATES
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import ipm, rebalance
from riskopt.optimizer.clarabel_program import ClarabelProgram
from riskopt.optimizer.program import ProgramCache
from riskopt.optimizer.structured_program import StructuredProgram
from tests.optimizer.test_program import _set_values
from tests.optimizer.test_properties import SETTINGS, cases

CONES = ipm.Cones(0, 3, (4, 3))
ORACLE_TOLERANCE = 1e-14
"""Clarabel as the oracle runs to 1e-14: at its own 1e-11 it ends up to 8e-7 from the
optimum where the objective is nearly flat along a sleeve split (measured on seed 1
below), farther than the 1e-7 the two are held to."""
finite = st.floats(-3.0, 3.0).filter(lambda x: x == 0.0 or abs(x) > 1e-6)


def _interior(v: np.ndarray) -> np.ndarray:
    """``v`` moved well inside :data:`CONES`."""
    out = v.copy()
    out[:3] = np.abs(out[:3]) + 0.1
    for start, size in ((3, 4), (7, 3)):
        out[start] = np.linalg.norm(out[start + 1 : start + size]) + 0.1 + abs(out[start])
    return out


@SETTINGS
@given(arrays(float, 10, elements=finite), arrays(float, 10, elements=finite))
def test_the_scaling_maps_z_and_s_to_the_same_point(s: np.ndarray, z: np.ndarray) -> None:
    """Nesterov–Todd: ``W z = W⁻¹ s = λ``, and ``W⁻¹`` undoes ``W``."""
    s, z = _interior(s), _interior(z)
    w = ipm.nt_scaling(s, z, CONES)
    np.testing.assert_allclose(w.apply(z, CONES), w.apply(s, CONES, inverse=True), atol=1e-9)
    np.testing.assert_allclose(w.lam, w.apply(z, CONES), atol=1e-9)
    np.testing.assert_allclose(w.apply(w.apply(s, CONES), CONES, inverse=True), s, atol=1e-9)


@SETTINGS
@given(arrays(float, 10, elements=finite), arrays(float, 10, elements=finite))
def test_jordan_solve_inverts_the_product_and_the_step_stops_at_the_boundary(
    u: np.ndarray, d: np.ndarray
) -> None:
    u = _interior(u)
    np.testing.assert_allclose(ipm.jordan(u, ipm.jordan_solve(u, d, CONES), CONES), d, atol=1e-8)
    alpha = ipm.max_step(u, d, CONES)
    if np.isfinite(alpha):
        assert abs(ipm.min_eig(u + alpha * d, CONES)) < 1e-7 * max(1.0, alpha * np.abs(d).max())
    assert ipm.min_eig(u + 0.99 * min(alpha, 1e6) * d, CONES) >= -1e-9


def _program_pair(book: Any, decisions: Any, cs: ConstraintSet) -> tuple[Any, Any, Any]:
    """The structured and Clarabel answers to one book's program, and its data."""
    from riskopt.constraints import FAMILIES
    from riskopt.optimizer.inputs import prepare
    from riskopt.optimizer.program import GateProgram, Structure

    data = prepare(book, decisions, cs).data
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    program = GateProgram(Structure.of(data, limits, costs=True))
    _set_values(program, data, limits, cs)
    assert program.values is not None
    mine = StructuredProgram(program.structure).solve(program.values, max_iters=100)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(riskopt.optimizer.clarabel_program, "TOLERANCE", ORACLE_TOLERANCE)
        oracle = ClarabelProgram(program.structure).solve(program.values, max_iters=300)
    return mine, oracle, data


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weights_and_policy_multipliers_equal_clarabels(seed: int) -> None:
    """Weights within 1e-7; the policy rows' multipliers (what the explanations read)
    within 1e-6 relative (of the largest)."""
    universe = make_universe(120, 4, seed, years=0.5)
    mine, oracle, _ = _program_pair(
        universe.book, universe.decisions, ConstraintSet.load("default")
    )
    assert mine.solver == "STRUCTURED" and mine.status == "optimal"
    np.testing.assert_allclose(mine.w, oracle.w, atol=1e-7)
    np.testing.assert_allclose(mine.h, oracle.h, atol=1e-7)
    scale = max(max(np.abs(d).max(initial=0) for d in oracle.duals), 1e-12)
    for got, want in zip(mine.duals, oracle.duals, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("seed", [1, 3])
def test_the_multipliers_certify_the_optimum_on_the_raw_program(seed: int) -> None:
    """Read on Clarabel's own data (not the equilibrated copy the method works on): the
    multipliers meet stationarity, complementarity and their cones' signs. A name's box
    and its sleeves' boxes can share one multiplier in many ways on a degenerate book
    (seed 3), so this, not equality with Clarabel's, is what holds there."""
    from riskopt.optimizer.structured import StructuredKkt

    a = _assembled(120, 4, seed)
    zero, nonneg, soc = a.cones
    problem = ipm.Problem.of(a.P, a.q, a.A, a.b, ipm.Cones(zero, nonneg, (soc,)))
    answer = ipm.solve(problem, StructuredKkt(problem))
    x, z = answer.x, answer.z
    full_p = a.P + a.P.T - np.diag(a.P.diagonal())
    stationary = full_p @ x + a.q + a.A.T @ z
    scale = np.abs(a.A.T @ z).max() + np.abs(a.q).max()
    assert np.abs(stationary).max() <= 1e-8 * scale
    s = a.b - a.A @ x
    on = slice(zero, zero + nonneg)
    assert z[on].min() >= -1e-9 * np.abs(z).max()
    assert s[on].min() >= -1e-9
    assert abs(s[on] @ z[on]) <= 1e-8 * scale
    cone_s, cone_z = s[zero + nonneg :], z[zero + nonneg :]
    assert cone_s[0] >= np.linalg.norm(cone_s[1:]) - 1e-9
    assert cone_z[0] >= np.linalg.norm(cone_z[1:]) - 1e-9 * np.abs(z).max()


@settings(SETTINGS, max_examples=max(SETTINGS.max_examples // 2, 5))
@given(cases(), st.sampled_from(STATES))
def test_the_structured_gate_decides_as_clarabels(case: tuple, state: str) -> None:  # type: ignore[type-arg]
    """On generated books in every state: the same weights (1e-7), the same labels and
    positions after lots (below), and the structured solver gave the answer."""
    book, decisions, cs, gamma = case
    runs = []
    for chain in (["STRUCTURED", "CLARABEL"], ["CLARABEL"]):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(riskopt.optimizer.clarabel_program, "TOLERANCE", ORACLE_TOLERANCE)
            runs.append(
                rebalance(
                    book,
                    decisions,
                    cs,
                    state=state,
                    risk_aversion=gamma,
                    solvers=chain,
                    cache=None,
                )
            )
    # Clarabel held to 1e-14 now and then stops short of it (its answer is then not
    # taken, and the book falls back): no oracle for that book.
    assume(runs[1].run.status != "FALLBACK")
    mine, oracle = (r.targets.set_index("ticker").sort_index() for r in runs)
    first = runs[0].run.solver_chain[0] if runs[0].run.solver_chain else None
    if first is not None and first["outcome"] != "optimal":
        # On a few small degenerate books its last steps lose their accuracy short of
        # 1e-10 (a known limit, README): it must say so, and Clarabel then answers.
        assert first["solver"] == "STRUCTURED"
        assert first["outcome"].startswith("failed: STRUCTURED returned status ")
        assert runs[0].run.solver_chain[1] == {"solver": "CLARABEL", "outcome": "optimal"}
    np.testing.assert_allclose(
        mine["solved_weight"].to_numpy(float), oracle["solved_weight"].to_numpy(float), atol=1e-7
    )
    assert mine["action_type"].tolist() == oracle["action_type"].tolist()
    # Positions agree to a lot plus what 1e-7 of NAV buys: with one-share lots on a
    # large book, weights 1e-11 apart can round to neighbouring shares.
    market = book.market.loc[mine.index]
    slack = market["lot_size"] + 1e-7 * book.nav / market["price"]
    assert ((mine["target_position"] - oracle["target_position"]).abs() <= slack).all()


def _run(chain: list[str], **cs_changes: Any) -> Any:
    universe = make_universe(40, 3, 5, years=0.3)
    cs = ConstraintSet.load("default")
    if cs_changes:
        cs = ConstraintSet.from_dict({**cs.model_dump(), **cs_changes})
    return rebalance(
        universe.book,
        universe.decisions,
        cs,
        state="NORMAL",
        risk_aversion=1.0,
        solvers=chain,
        cache=ProgramCache(1),
    )


def test_a_solve_that_does_not_converge_goes_to_clarabel_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _run(["CLARABEL"])
    real = ipm.solve

    def two_iterations(pr: Any, kkt: Any, **options: Any) -> Any:
        return real(pr, kkt, max_iters=2)

    monkeypatch.setattr(riskopt.optimizer.structured_program.ipm, "solve", two_iterations)
    result = _run(["STRUCTURED", "CLARABEL"])
    chain = result.run.solver_chain
    assert chain[0]["solver"] == "STRUCTURED"
    assert chain[0]["outcome"] == "failed: STRUCTURED returned status MaxIterations"
    assert chain[1] == {"solver": "CLARABEL", "outcome": "optimal"}
    assert result.run.status == "OPTIMAL"
    assert (
        result.targets["target_position"].tolist() == expected.targets["target_position"].tolist()
    )


def test_a_program_outside_the_structure_goes_to_clarabel_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(riskopt.optimizer.structured, "COUPLING_CAP", 3)
    chain = _run(["STRUCTURED", "CLARABEL"]).run.solver_chain
    assert chain[0]["outcome"].startswith("failed: ") and "coupling unknowns" in chain[0]["outcome"]
    assert chain[1] == {"solver": "CLARABEL", "outcome": "optimal"}


@SETTINGS
@given(st.integers(0, 2**31 - 1))
def test_the_structured_newton_step_equals_the_whole_factored_one(seed: int) -> None:
    """For any interior scaling, the groups-and-Schur solve of the Newton system gives
    what SuperLU gives on the whole system (the reference)."""
    from riskopt.optimizer.structured import StructuredKkt

    problem = _small_problem()
    rng = np.random.default_rng(seed)
    cones = problem.cones
    s = _interior_point(rng, cones)
    z = _interior_point(rng, cones)
    scaling = ipm.nt_scaling(s, z, cones)
    n, me, mg = problem.P.shape[0], problem.E.shape[0], problem.G.shape[0]
    rhs = rng.standard_normal(n), rng.standard_normal(me), rng.standard_normal(mg)
    answers = []
    for kkt in (StructuredKkt(problem), ipm.SparseKkt(problem)):
        kkt.factor(scaling)
        answers.append(np.concatenate(kkt.solve(*rhs)))
    scale = np.abs(answers[1]).max()
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-8 * scale)


def _interior_point(rng: np.random.Generator, cones: ipm.Cones) -> np.ndarray:
    """A point well inside ``cones`` with entries spread over six orders of magnitude."""
    out = 10.0 ** rng.uniform(-3, 3, cones.nonneg + sum(cones.soc))
    start = cones.nonneg
    for size in cones.soc:
        part = rng.standard_normal(size - 1)
        out[start] = np.linalg.norm(part) * (1 + rng.uniform(0.01, 1))
        out[start + 1 : start + size] = part
        start += size
    return out


_PROBLEM: list[ipm.Problem] = []


def _small_problem() -> ipm.Problem:
    """A 40-name book's program with every default family on (built once)."""
    if not _PROBLEM:
        a = _assembled(40, 3, 11)
        zero, nonneg, soc = a.cones
        _PROBLEM.append(ipm.Problem.of(a.P, a.q, a.A, a.b, ipm.Cones(zero, nonneg, (soc,))))
    return _PROBLEM[0]


def _assembled(n: int, k: int, seed: int) -> Any:
    """Clarabel's assembly of a generated book's program, every default family on."""
    from riskopt.constraints import FAMILIES
    from riskopt.optimizer.inputs import prepare
    from riskopt.optimizer.program import GateProgram, Structure

    universe = make_universe(n, k, seed, years=0.5)
    cs = ConstraintSet.load("default")
    data = prepare(universe.book, universe.decisions, cs).data
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    program = GateProgram(Structure.of(data, limits, costs=True))
    _set_values(program, data, limits, cs)
    assert program.values is not None
    return ClarabelProgram(program.structure).assemble(program.values)
