"""The compiled program: sparse, cached by structure, the same solution cold or cached."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import riskopt.optimizer.assembly
import riskopt.optimizer.clarabel_program
import riskopt.optimizer.program
from riskopt.constraints import FAMILIES
from riskopt.constraints.base import ProgramData
from riskopt.constraints.config import ConstraintSet
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance
from riskopt.optimizer.inputs import prepare
from riskopt.optimizer.program import (
    ClarabelProgram,
    GateProgram,
    ProgramCache,
    Solved,
    Structure,
    Values,
)
from riskopt.optimizer.rebalance import _cost_weights, _hard_box, _pair_box, _tracking_weights


def test_no_dense_n_by_n_matrix_anywhere_in_the_program() -> None:
    n = 300
    universe = make_universe(n, 5, 1, coverage=1.0, years=0.5)
    cs = ConstraintSet.load("default")
    data = prepare(universe.book, universe.decisions, cs).data
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    program = GateProgram(Structure.of(data, limits, costs=True))
    assert any(limit.transform == "vol" for limit in limits)  # every family is on, the cone too
    _set_values(program, data, limits, cs)
    assert program.values is not None
    assembly = ClarabelProgram(program.structure).assemble(program.values)
    # Every column of the conic data is sparse: no column touches more than a few dozen
    # rows (a dense N×N block would put N entries in N columns).
    per_column = np.diff(assembly.A.indptr)
    assert per_column.max() < 60, per_column.max()
    assert assembly.P.nnz < 10 * assembly.P.shape[0]
    for constant in program.cvxpy.problem.constants():
        value = constant.value
        if sp.issparse(value):
            continue
        shape = np.shape(value)
        assert not (len(shape) == 2 and min(shape) >= data.n), f"dense {shape} constant"
    for parameter in program.cvxpy.problem.parameters():
        assert len(parameter.shape) <= 1, f"matrix parameter {parameter.name()}"


def test_the_cache_builds_once_per_structure() -> None:
    universe = make_universe(40, 3, 2, years=0.3)
    cs = ConstraintSet.load("default")
    data = prepare(universe.book, universe.decisions, cs).data
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    cache = ProgramCache()
    first = cache.get(Structure.of(data, limits, costs=False))
    again = cache.get(Structure.of(data, limits, costs=False))
    other = cache.get(Structure.of(data, limits, costs=True))
    assert first is again and other is not first and cache.builds == 2


def _set_values(program: GateProgram, data: ProgramData, limits: list, cs: ConstraintSet) -> None:
    bounds = [bound for family in FAMILIES for bound in family.bounds(cs, data)]
    lo, hi = _hard_box(data, bounds)
    w_lo, w_hi = _pair_box(data, bounds)
    program.values = Values.of(
        data,
        limits,
        c=_tracking_weights(data, cs),
        lo=lo,
        hi=hi,
        w_lo=w_lo,
        w_hi=w_hi,
        gamma=2.0,
        gamma_i=np.ones(data.n),
        kappa=_cost_weights(data, cs),
        rho=[cs.tier_penalty(limit.tier) for limit in limits],
    )


def _program(n: int, seed: int, **changes: object) -> GateProgram:
    universe = make_universe(n, 4, seed, coverage=0.9, years=0.5)
    cs = ConstraintSet.load("default").replace(**changes)  # type: ignore[arg-type]
    data = prepare(universe.book, universe.decisions, cs).data
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    program = GateProgram(Structure.of(data, limits, costs=cs.objective.costs))
    _set_values(program, data, limits, cs)
    return program


@pytest.mark.parametrize("seed", [3, 11])
def test_direct_assembly_solves_the_same_program_as_cvxpy(seed: int) -> None:
    """Clarabel on the directly assembled data and on cvxpy's compile of the same program:
    one solution, one objective, the same multipliers (every family on, costs too)."""
    program = _program(150, seed, **{"objective.costs": True, "exposure.gross.max": 1.2})
    direct = program.solve("CLARABEL", max_iters=500)
    reference = program.solve("CLARABEL", max_iters=500, via="cvxpy")
    assert direct.status == reference.status == "optimal"
    np.testing.assert_allclose(direct.h, reference.h, atol=1e-6)
    np.testing.assert_allclose(direct.w, reference.w, atol=1e-6)
    assert direct.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-9)
    # The multipliers decide the attribution: binding rows must match.
    for ours, theirs in zip(direct.duals, reference.duals, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * max(1.0, theirs.max()))
    # The hard boxes' pull on each name: its own box, and its sleeves' boxes through
    # Σ_p μ_p / (2c_p) / H_i. How it splits between a name's box and its sleeves' (both
    # at their bound when the hull binds as a whole), or between a bound and a kink at
    # the same point (|h| at zero, the trading cost at h0), is not unique; elsewhere it is.
    values = program.values
    assert values is not None
    m = program.structure.M
    inv2c = 1.0 / (2.0 * values.c)

    def pull(s: Solved) -> np.ndarray:
        pairs = m @ ((s.pair_upper_dual - s.pair_lower_dual) * inv2c) / (m @ inv2c)
        return s.box_upper_dual - s.box_lower_dual + pairs

    away = (np.abs(direct.h) > 1e-7) & (np.abs(direct.h - values.h0) > 1e-7)
    assert away.sum() > len(away) // 3
    np.testing.assert_allclose(pull(direct)[away], pull(reference)[away], atol=1e-4)
    # And the screening did leave rows out: most per-name caps cannot bind.
    assert program.values is not None
    assembly = ClarabelProgram(program.structure).assemble(program.values)
    kept = sum(int(kept.sum()) for _, _, kept, _ in assembly.blocks)
    assert kept < sum(len(kept) for _, _, kept, _ in assembly.blocks)


@pytest.mark.parametrize("state", ["NORMAL", "EMERGENCY"])
def test_substituted_columns_leave_the_answer_unchanged(state: str) -> None:
    """A pair alone on its ticker is solved as its ticker's weight, and a name whose hard
    box fixes its sign needs no ``|h|`` column: fewer columns, the same answer as the
    cvxpy formulation, which keeps every one of them."""
    program = _program(150, 7, active_state=state)
    values, structure = program.values, program.structure
    assert values is not None
    assembly = ClarabelProgram(structure).assemble(values)
    h_columns = set(range(assembly.h.start, assembly.h.stop))
    pairs_per_ticker = np.diff(structure.M.tocsr().indptr)
    crowded = pairs_per_ticker[structure.M.tocsc().indices] > 1  # per pair
    assert 0 < crowded.sum() < structure.p
    own_column = np.array([column not in h_columns for column in assembly.w.tolist()])
    np.testing.assert_array_equal(own_column, crowded)
    signed = int(((values.lo >= 0) | (values.hi <= 0)).sum())
    if state == "EMERGENCY":  # de-risk only: every name's sign is fixed
        assert signed == structure.n
    # Rows: ``h = M w`` only for crowded tickers (and ``f = Bᵀ h``, and the shared sums:
    # see the tests below); ``a ≥ ±h`` only for
    # names of either sign, ``a ≥ ±w`` only for crowded pairs; the box; two per kept
    # policy row (the row and its slack's sign), and one for the cone's slack.
    zero, nonneg, _ = assembly.cones
    assert zero == int((pairs_per_ticker != 1).sum()) + structure.k + assembly.sums
    assert assembly.sums > 0
    kept = sum(int(kept.sum()) for _, is_cone, kept, _ in assembly.blocks if not is_cone)
    cones = sum(1 for _, is_cone, _, _ in assembly.blocks if is_cone)
    unsigned = structure.n - signed
    assert nonneg == 2 * structure.n + 2 * unsigned + 4 * int(crowded.sum()) + 2 * kept + cones
    direct = program.solve("CLARABEL", max_iters=500)
    reference = program.solve("CLARABEL", max_iters=500, via="cvxpy")
    np.testing.assert_allclose(direct.h, reference.h, atol=2e-6)
    np.testing.assert_allclose(direct.w, reference.w, atol=2e-6)
    assert direct.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-9)


def test_a_cached_program_solves_like_a_cold_build() -> None:
    """Re-solving a cached program with new values gives what a fresh build gives."""
    universe = make_universe(120, 4, 5, coverage=0.9, years=0.5)
    cs = ConstraintSet.load("default")
    cache = ProgramCache()
    first = rebalance(universe.book, universe.decisions, cs, state="NORMAL", cache=cache)
    moved = universe.decisions.assign(target_weight=universe.decisions["target_weight"] * 0.7)
    cached = rebalance(universe.book, moved, cs, state="NORMAL", cache=cache)
    cold = rebalance(universe.book, moved, cs, state="NORMAL", cache=None)
    assert first.run.program_built and not cached.run.program_built and cold.run.program_built
    assert cache.builds == 1
    pd.testing.assert_frame_equal(
        cached.targets.drop(columns=["run_id", "created_at"], errors="ignore"),
        cold.targets.drop(columns=["run_id", "created_at"], errors="ignore"),
    )


def test_a_kept_solver_re_solves_within_tolerance_of_a_cold_build() -> None:
    """With ``reuse_solver``, a re-solve with a new risk aversion runs on the kept
    Clarabel solver, and ends within the solver's tolerance of a cold build: the same
    lots, labels and reasons. A solve whose data has another pattern (a γ of 0 has no
    factor block in ``P``; new decisions usually move the trim hull, and with it which
    rows the box makes redundant) sets up a solver of its own and is the cold answer,
    bit for bit."""
    universe = make_universe(120, 4, 5, coverage=0.9, years=0.5)
    cs = ConstraintSet.load("default")
    cache = ProgramCache(reuse_solver=True)
    rebalance(universe.book, universe.decisions, cs, state="NORMAL", cache=cache)
    (program,) = cache._programs.values()
    assert program._direct is not None and program._direct.reused == 0
    moved = universe.decisions
    for gamma in (0.1, 0.4):
        kept = rebalance(universe.book, moved, cs, state="NORMAL", cache=cache, risk_aversion=gamma)
        cold = rebalance(universe.book, moved, cs, state="NORMAL", cache=None, risk_aversion=gamma)
        np.testing.assert_allclose(
            kept.targets["solved_weight"], cold.targets["solved_weight"], rtol=0, atol=1e-9
        )
        for column in ("ticker", "target_position", "action_type", "risk_reasoning_summary"):
            assert kept.targets[column].tolist() == cold.targets[column].tolist(), column
        assert kept.actions["reason"].tolist() == cold.actions["reason"].tolist()
    assert program._direct.reused == 2

    flat = rebalance(universe.book, moved, cs, state="NORMAL", cache=cache, risk_aversion=0.0)
    cold = rebalance(universe.book, moved, cs, state="NORMAL", cache=None, risk_aversion=0.0)
    assert program._direct.reused == 2  # a new pattern: set up afresh
    pd.testing.assert_frame_equal(flat.targets, cold.targets)

    class Refuses:  # a kept solver that will not take new data
        def update(self, **data: Any) -> None:
            raise RuntimeError("refused")

    assert program._direct._kept is not None
    program._direct._kept.solver = Refuses()
    again = rebalance(universe.book, moved, cs, state="NORMAL", cache=cache, risk_aversion=0.0)
    assert program._direct.reused == 2  # set up afresh, and kept in its place
    assert not isinstance(program._direct._kept.solver, Refuses)
    pd.testing.assert_frame_equal(again.targets, cold.targets)


def test_threads_sharing_a_kept_solver_each_get_their_own_books_answer() -> None:
    """Six scenarios of one book at once on one reusing cache: one thread at a time
    has the kept solver, the others set up their own, and every answer is its own
    book's (within tolerance of its cold solve, the same lots and labels)."""
    from concurrent.futures import ThreadPoolExecutor

    universe = make_universe(120, 4, 5, coverage=0.9, years=0.5)
    cs = ConstraintSet.load("default")
    cache = ProgramCache(reuse_solver=True)
    rebalance(universe.book, universe.decisions, cs, state="NORMAL", cache=cache)
    scenarios = [
        universe.decisions.assign(target_weight=universe.decisions["target_weight"] * f)
        for f in (0.4, 0.6, 0.8, 1.0, 1.2, 1.4)
    ]

    def run(decisions: pd.DataFrame, cache: ProgramCache | None) -> Any:
        return rebalance(universe.book, decisions, cs, state="NORMAL", cache=cache)

    with ThreadPoolExecutor(3) as threads:
        shared = list(threads.map(lambda d: run(d, cache), scenarios))
    for decisions, result in zip(scenarios, shared, strict=True):
        cold = run(decisions, None)
        np.testing.assert_allclose(
            result.targets["solved_weight"], cold.targets["solved_weight"], rtol=0, atol=1e-9
        )
        assert (
            result.targets["target_position"].tolist() == cold.targets["target_position"].tolist()
        )
        assert result.actions["action_type"].tolist() == cold.actions["action_type"].tolist()
    assert len({tuple(r.targets["target_position"]) for r in shared}) == len(scenarios)


def test_without_reuse_no_solver_is_kept() -> None:
    """The default cache sets Clarabel up afresh for every solve: each answer is the
    cold one, whatever was solved before."""
    universe = make_universe(60, 3, 8, years=0.3)
    cs = ConstraintSet.load("default")
    cache = ProgramCache()
    rebalance(universe.book, universe.decisions, cs, state="NORMAL", cache=cache)
    rebalance(universe.book, universe.decisions, cs, state="NORMAL", cache=cache)
    (program,) = cache._programs.values()
    assert program._direct is not None
    assert program._direct.reused == 0 and program._direct._kept is None


def test_the_cvxpy_path_cached_and_cold_agree_with_the_direct_path() -> None:
    """OSQP through the cached cvxpy twin (no cone): a re-solve with new values equals a
    cold build's, and both equal Clarabel's direct answer to solver accuracy."""
    universe = make_universe(80, 3, 9, coverage=0.9, years=0.3)
    cs = ConstraintSet.load("default").replace(**{"risk.max_volatility": None})
    moved = universe.decisions.assign(target_weight=universe.decisions["target_weight"] * 0.8)
    cache = ProgramCache()
    kwargs = {"state": "NORMAL", "risk_aversion": 0.1, "solvers": ["OSQP"]}
    rebalance(universe.book, universe.decisions, cs, cache=cache, **kwargs)  # type: ignore[arg-type]
    cached = rebalance(universe.book, moved, cs, cache=cache, **kwargs)  # type: ignore[arg-type]
    cold = rebalance(universe.book, moved, cs, cache=None, **kwargs)  # type: ignore[arg-type]
    clarabel = rebalance(universe.book, moved, cs, state="NORMAL", risk_aversion=0.1, cache=None)
    assert not cached.run.program_built and cached.run.solver == "OSQP"
    solved = [r.targets.set_index("ticker")["solved_weight"].sort_index() for r in (cached, cold)]
    np.testing.assert_allclose(solved[0], solved[1], atol=1e-7)
    reference = clarabel.targets.set_index("ticker")["solved_weight"].sort_index()
    np.testing.assert_allclose(solved[0], reference, atol=1e-5)


@pytest.mark.parametrize(
    ("seed", "bands"),
    [
        (5, None),
        (5, {"MARKET": [-0.02, 0.02], "SIZE": [-0.05, 0.05]}),
        # The first name's MOMENTUM loading is negative: the rows are keyed as −(loadings).
        (11, {"MOMENTUM": [-0.05, 0.05], "VALUE": [-0.05, 0.05]}),
    ],
)
def test_exposure_caps_and_factor_bands_add_no_dense_row_of_their_own(
    seed: int, bands: dict[str, list[float]] | None
) -> None:
    """The book's gross, net (both sides), long and short caps read ``Σh`` and ``Σ|h|``,
    each written once; a factor band reads ``f``. The rows that touch every name are then
    the ``K`` rows ``f = Bᵀh`` and the two sums, not ``K + 5`` (``K + 9`` with two bands),
    and the answer is cvxpy's, which writes every row out."""
    # Without the trim-only hull, whose box would make the long and short caps redundant.
    changes: dict[str, object] = {
        "exposure.gross.max": 1.0,
        "exposure.net.min": 0.05,
        "trading.only_trim": False,
    }
    if bands:
        changes["factors.bands"] = bands
    program = _program(150, seed, **changes)
    values, structure = program.values, program.structure
    assert values is not None
    names = [name for name, *_ in structure.blocks]
    assert ("factors.upper" in names) == bool(bands)
    assembly = ClarabelProgram(structure).assemble(values)
    exposure = [
        kept
        for (name, *_), (_, _, kept, _) in zip(structure.blocks, assembly.blocks, strict=True)
        if name.startswith("exposure.")
    ]
    assert len(exposure) == 5 and all(kept.all() for kept in exposure)  # all five are in
    touches = np.diff(assembly.A.tocsr().indptr)
    assert int((touches >= structure.n).sum()) == structure.k + 2
    direct = program.solve("CLARABEL", max_iters=500)
    reference = program.solve("CLARABEL", max_iters=500, via="cvxpy")
    np.testing.assert_allclose(direct.h, reference.h, atol=1e-6)
    assert direct.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-9)
    for ours, theirs in zip(direct.duals, reference.duals, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * max(1.0, theirs.max()))


def test_large_programs_are_factored_with_faer_to_the_same_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From ``FAER_FROM`` names Clarabel factors its KKT system with faer, not QDLDL: the
    same program, the same answer (to far below the gate's tolerance)."""
    import riskopt.optimizer.clarabel_program as module

    program = _program(150, 3)
    methods: list[str] = []
    real = module._clarabel

    def spy(*args: object, **kwargs: object) -> object:
        methods.append(str(kwargs["method"]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_clarabel", spy)
    qdldl = program.solve("CLARABEL", max_iters=500)
    monkeypatch.setattr(module, "FAER_FROM", program.structure.n)
    faer = program.solve("CLARABEL", max_iters=500)
    assert methods == ["qdldl", "faer"]
    assert qdldl.status == faer.status == "optimal"
    np.testing.assert_allclose(faer.h, qdldl.h, atol=1e-8)
    np.testing.assert_allclose(faer.w, qdldl.w, atol=1e-8)
    assert faer.objective == pytest.approx(qdldl.objective, rel=1e-9, abs=1e-12)


def test_a_clarabel_without_faer_factors_with_qdldl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether Clarabel can factor with a method is asked once, on a one-variable
    program: this build has QDLDL and faer and no method by another name. A build
    without faer solves a large program with QDLDL, once, to the same answer."""
    import clarabel

    import riskopt.optimizer.clarabel_program as module

    assert module._can_factor("qdldl") and module._can_factor("faer")
    assert not module._can_factor("no-such-method")
    program = _program(150, 3)
    expected = program.solve("CLARABEL", max_iters=500)
    asked: list[str] = []
    real = clarabel.DefaultSolver

    def spy(*args: Any) -> Any:
        asked.append(args[-1].direct_solve_method)
        return real(*args)

    monkeypatch.setattr(module, "FAER_FROM", program.structure.n)
    monkeypatch.setattr(module, "_can_factor", lambda method: method != "faer")
    monkeypatch.setattr(clarabel, "DefaultSolver", spy)
    without = program.solve("CLARABEL", max_iters=500)
    assert asked == ["qdldl"]
    np.testing.assert_array_equal(without.h, expected.h)


def test_a_small_books_group_rows_read_one_sum_per_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below ``NARROW_SUMS_BELOW`` names, a group's net rows above and below (and its gross
    rows) read one sum per group instead of each repeating the group's members: fewer
    entries in ``A``, more sum rows, and the same answer as without, and as cvxpy's."""
    program = _program(150, 7)
    values, structure = program.values, program.structure
    assert values is not None and structure.n < riskopt.optimizer.program.NARROW_SUMS_BELOW
    narrow = ClarabelProgram(structure)
    monkeypatch.setattr(riskopt.optimizer.assembly, "NARROW_SUMS_BELOW", 0)
    wide = ClarabelProgram(structure)
    a_narrow, a_wide = narrow.assemble(values), wide.assemble(values)
    assert a_wide.sums <= 2  # only the book's own sums, Σh and Σ|h|
    assert a_narrow.sums > a_wide.sums  # a sum per group whose rows are kept
    assert a_narrow.A.nnz < a_wide.A.nnz
    solved = [p.solve(values, max_iters=500) for p in (narrow, wide)]
    np.testing.assert_allclose(solved[0].h, solved[1].h, atol=1e-6)
    assert solved[0].objective == pytest.approx(solved[1].objective, rel=1e-7, abs=1e-10)
    for ours, theirs in zip(solved[0].duals, solved[1].duals, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * max(1.0, theirs.max()))
    reference = program.solve("CLARABEL", max_iters=500, via="cvxpy")
    np.testing.assert_allclose(solved[0].h, reference.h, atol=1e-6)


def test_clarabel_reads_the_program_as_lists_to_the_same_answer() -> None:
    """The program goes to Clarabel as Python lists (:class:`riskopt.optimizer.clarabel_program._Lists`):
    the very solution the scipy matrices themselves give, to the last bit; and a matrix
    that is not in canonical form (unsorted rows) is still read as the same matrix."""
    import clarabel

    from riskopt.optimizer.clarabel_program import TOLERANCE, _clarabel, _Lists

    program = _program(150, 11)
    assert program.values is not None
    assembly = ClarabelProgram(program.structure).assemble(program.values)
    zero, nonneg, soc = assembly.cones
    cones = [clarabel.ZeroConeT(zero), clarabel.NonnegativeConeT(nonneg)]
    cones += [clarabel.SecondOrderConeT(soc)] if soc else []
    ours = _clarabel(assembly, cones, 500, refine=False)

    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_iter = 500
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = TOLERANCE
    settings.tol_ktratio = 1e-9
    settings.iterative_refinement_enable = False
    settings.max_threads = 1
    a = assembly
    direct = clarabel.DefaultSolver(a.P, a.q, a.A, a.b, cones, settings).solve()
    assert str(ours.status) == str(direct.status) == "Solved"
    assert np.asarray(ours.x).tobytes() == np.asarray(direct.x).tobytes()
    assert np.asarray(ours.z).tobytes() == np.asarray(direct.z).tobytes()

    # Reverse the rows within each column: the same matrix, no longer canonical.
    shuffled = assembly.A.copy()
    for start, stop in zip(shuffled.indptr[:-1], shuffled.indptr[1:], strict=True):
        shuffled.indices[start:stop] = shuffled.indices[start:stop][::-1].copy()
        shuffled.data[start:stop] = shuffled.data[start:stop][::-1].copy()
    shuffled.has_sorted_indices = False
    listed = _Lists(shuffled)
    assert not listed.has_canonical_format
    again = clarabel.DefaultSolver(a.P, a.q, listed, a.b.tolist(), cones, settings).solve()
    np.testing.assert_allclose(np.asarray(again.x), np.asarray(direct.x), atol=1e-9)


def test_blocks_that_read_the_same_sum_share_it_whatever_their_storage() -> None:
    """``A``, ``−A``, and ``A`` stored with duplicate entries, unsorted columns and a
    stored zero all read one sum, written once with ``A``'s canonical entries; another
    matrix read twice gets its own."""
    from riskopt.optimizer.program import shared_sums

    a = sp.csr_matrix(np.array([[1.0, 0.0, 2.0, 1.0], [0.0, 3.0, 0.0, 1.0]]))
    messy = sp.csr_matrix(  # row 0: 1 + 1 in column 2, a stored zero; row 1 unsorted
        (np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 3.0]), [3, 2, 2, 1, 0, 3, 1], [0, 5, 7]),
        shape=(2, 4),
    )
    zero = sp.csr_matrix(  # sorted, no duplicates, but a stored zero in column 1
        (np.array([1.0, 0.0, 2.0, 1.0, 3.0, 1.0]), [0, 1, 2, 3, 1, 3], [0, 4, 6]), shape=(2, 4)
    )
    assert not messy.has_canonical_format and zero.has_canonical_format
    np.testing.assert_array_equal(messy.toarray(), a.toarray())
    np.testing.assert_array_equal(zero.toarray(), a.toarray())
    other = sp.csr_matrix(np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
    matrices = (a, -a, messy, other, -messy, other, zero)
    sums, of_block = shared_sums(
        tuple(("cap", "id", "h", 2, m) for m in matrices), None, narrow=True
    )
    assert of_block == [(0, 1.0), (0, -1.0), (0, 1.0), (1, 1.0), (0, -1.0), (1, 1.0), (0, 1.0)]
    written = sums[0].C
    assert written.has_canonical_format and written.data.all()
    np.testing.assert_array_equal(written.toarray(), a.toarray())
    np.testing.assert_array_equal(sums[1].C.toarray(), other.toarray())
    assert not messy.has_canonical_format and messy.nnz == 7  # the block is left as it was


def test_slacks_read_back_in_weight_when_the_solver_sees_them_rescaled() -> None:
    """The direct assembly hands Clarabel each policy slack as ``s = u·s'`` with
    ``u = SLACK_COST / (OBJECTIVE_SCALE·ρ)``. What comes back is the slack in weight: the
    same breaches, slacks and multipliers as the cvxpy formulation, which states the slacks
    in weight with their full penalty, on a book whose trade limit keeps names above
    their caps."""
    from riskopt.optimizer.program import OBJECTIVE_SCALE, SLACK_COST

    program = _program(150, 5, **{"position.max_weight": 0.004, "trading.max_trade_pct_adv": 0.002})
    direct = program.solve("CLARABEL", max_iters=500)
    reference = program.solve("CLARABEL", max_iters=500, via="cvxpy")
    assert direct.status == reference.status == "optimal"
    breached = [k for k, s in enumerate(reference.slacks) if s.max() > 1e-4]
    assert breached  # the trade limit holds names above their caps: real slacks
    for ours, theirs in zip(direct.slacks, reference.slacks, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-7)
    for ours, theirs in zip(direct.duals, reference.duals, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * max(1.0, theirs.max()))
    # Each kept slack column costs SLACK_COST in Clarabel's objective, whatever its tier.
    assert program.values is not None
    assembly = ClarabelProgram(program.structure).assemble(program.values)
    assert assembly.slack_units is not None
    for (_, _, kept, col_s), unit, rho in zip(
        assembly.blocks, assembly.slack_units, program.values.rho, strict=True
    ):
        assert unit == pytest.approx(SLACK_COST / (OBJECTIVE_SCALE * rho))
        np.testing.assert_allclose(assembly.q[col_s : col_s + int(kept.sum())], SLACK_COST)


def test_an_answer_short_of_the_tolerance_is_solved_again_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When Clarabel stops short of ACCEPTED_TOLERANCE on the rescaled program, it solves
    it again with iterative refinement; short again, the program is solved with its
    slacks in weight, to ACCEPTED_TOLERANCE: the answer is that program's, bit for bit,
    and its slacks are read in weight."""
    from types import SimpleNamespace

    from riskopt.optimizer.clarabel_program import ACCEPTED_TOLERANCE, TOLERANCE, _clarabel

    program = _program(150, 5, **{"position.max_weight": 0.004, "trading.max_trade_pct_adv": 0.002})
    assert program.values is not None
    calls: list[tuple[list[float] | None, float, bool]] = []

    def first_stops_short(data: Any, cones: Any, max_iters: int, **options: Any) -> Any:
        calls.append((data.slack_units, options.get("tolerance", TOLERANCE), options["refine"]))
        if len(calls) <= 2:
            return SimpleNamespace(status="InsufficientProgress")
        return _clarabel(data, cones, max_iters, **options)

    monkeypatch.setattr(riskopt.optimizer.clarabel_program, "_clarabel", first_stops_short)
    solved = ClarabelProgram(program.structure).solve(program.values, max_iters=500)
    monkeypatch.undo()

    assert [(c[1], c[2]) for c in calls[:2]] == [(TOLERANCE, False), (TOLERANCE, True)]
    assert calls[0][0] is not None and any(unit != 1.0 for unit in calls[0][0])
    units, tolerance, refine = calls[2]
    assert units is not None and all(unit == 1.0 for unit in units)
    assert (tolerance, refine) == (ACCEPTED_TOLERANCE, False)

    import clarabel

    assembly = ClarabelProgram(program.structure).assemble(program.values, rescale_slacks=False)
    zero, nonneg, soc = assembly.cones
    cones = [clarabel.ZeroConeT(zero), clarabel.NonnegativeConeT(nonneg)]
    cones += [clarabel.SecondOrderConeT(soc)] if soc else []
    before = _clarabel(assembly, cones, 500, refine=False, tolerance=ACCEPTED_TOLERANCE)
    assert str(before.status) == "Solved"
    assert solved.h.tobytes() == np.asarray(before.x)[assembly.h].tobytes()
    assert solved.status == "optimal"
    x = np.asarray(before.x)
    for slack, (_, _, kept, col_s) in zip(solved.slacks, assembly.blocks, strict=True):
        assert slack[kept].tobytes() == x[col_s : col_s + int(kept.sum())].tobytes()
    assert any(slack.max() > 1e-4 for slack in solved.slacks)


def test_meets_reads_the_residuals_and_the_gap_as_clarabel_does() -> None:
    from types import SimpleNamespace

    from riskopt.optimizer.clarabel_program import _meets

    def answer(p: float, d: float, r_prim: float = 1e-12, r_dual: float = 1e-12) -> Any:
        return SimpleNamespace(obj_val=p, obj_val_dual=d, r_prim=r_prim, r_dual=r_dual)

    assert _meets(answer(1.0, 1.0 + 5e-11), 1e-10)
    assert not _meets(answer(1.0, 1.0 + 5e-10), 1e-10)
    assert _meets(answer(1e3, 1e3 + 5e-8), 1e-10)  # relative gap 5e-11
    assert not _meets(answer(1.0, 1.0, r_prim=2e-10), 1e-10)
    assert not _meets(answer(1.0, 1.0, r_dual=2e-10), 1e-10)


def _short_of_tolerance(real: Any, *, status: str, r_prim: float, shift: float = 0.0) -> Any:
    """Clarabel's ``real`` answer as one that stopped with ``status`` and primal residual
    ``r_prim`` (its weights moved by ``shift``, to tell the answers apart)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        status=status,
        x=np.asarray(real.x) + shift,
        z=np.asarray(real.z),
        obj_val=real.obj_val,
        obj_val_dual=real.obj_val,
        r_prim=r_prim,
        r_dual=1e-13,
        iterations=real.iterations,
    )


def test_a_later_retry_never_replaces_a_better_earlier_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No attempt meets CHAIN_TOLERANCE: the answer is the attempt with the smallest
    residual (the first here, 2e-9), not the last (4e-6), and it says it is inaccurate."""
    from riskopt.optimizer.clarabel_program import OPTIMAL_INACCURATE, _clarabel

    program = _program(60, 5)
    assert program.values is not None
    answers = [("AlmostSolved", 2e-9), ("AlmostSolved", 3e-6), ("AlmostSolved", 2e-6)]
    answers.append(("AlmostSolved", 4e-6))
    first: list[np.ndarray] = []

    def stops_short(data: Any, cones: Any, max_iters: int, **options: Any) -> Any:
        k = len(first)
        real = _clarabel(data, cones, max_iters, **options)
        status, r_prim = answers[k] if k < len(answers) else ("InsufficientProgress", 1.0)
        fake = _short_of_tolerance(real, status=status, r_prim=r_prim, shift=1e-3 * k)
        first.append(np.asarray(fake.x)[data.h])
        return fake

    monkeypatch.setattr(riskopt.optimizer.clarabel_program, "_clarabel", stops_short)
    solved = ClarabelProgram(program.structure).solve(program.values, max_iters=500)
    monkeypatch.undo()
    assert len(first) == 4  # every attempt was made
    assert solved.status == OPTIMAL_INACCURATE and solved.residual == pytest.approx(2e-9)
    assert solved.h.tobytes() == first[0].tobytes()


def test_an_answer_that_meets_the_tolerance_late_is_optimal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from riskopt.optimizer.clarabel_program import _clarabel

    program = _program(60, 5)
    assert program.values is not None
    calls: list[str] = []

    def second_meets(data: Any, cones: Any, max_iters: int, **options: Any) -> Any:
        real = _clarabel(data, cones, max_iters, **options)
        calls.append(str(real.status))
        r_prim = 2e-7 if len(calls) == 1 else 5e-11  # the second meets 1e-10
        return _short_of_tolerance(real, status="AlmostSolved", r_prim=r_prim)

    monkeypatch.setattr(riskopt.optimizer.clarabel_program, "_clarabel", second_meets)
    solved = ClarabelProgram(program.structure).solve(program.values, max_iters=500)
    monkeypatch.undo()
    assert len(calls) == 2 and solved.status == "optimal"
    assert solved.residual == pytest.approx(5e-11)


def test_an_answer_short_of_clarabels_tolerance_but_within_the_chains_is_optimal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every attempt ends at 1.5e-10, short of Clarabel's own 1e-10 but within the 1e-9 the
    chain asks of every solver: that answer is the chain's, not a less accurate SCS's."""
    from riskopt.optimizer.clarabel_program import OPTIMAL, _clarabel

    program = _program(60, 5)
    assert program.values is not None

    def short(data: Any, cones: Any, max_iters: int, **options: Any) -> Any:
        real = _clarabel(data, cones, max_iters, **options)
        return _short_of_tolerance(real, status="AlmostSolved", r_prim=1.5e-10, shift=0.0)

    monkeypatch.setattr(riskopt.optimizer.clarabel_program, "_clarabel", short)
    solved = ClarabelProgram(program.structure).solve(program.values, max_iters=500)
    monkeypatch.undo()
    assert solved.status == OPTIMAL and solved.residual == pytest.approx(1.5e-10)
