"""Rows over the trade ``h − h0`` and the pair trade ``w − w0``, the transform table and the volatility cone's own type."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from riskopt.constraints import FAMILIES
from riskopt.constraints.base import LinearLimit, VolatilityCap
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.transforms import TRANSFORMS, apply_transform, transform_slope
from riskopt.data.synthetic import make_universe
from riskopt.optimizer.diff import attribute
from riskopt.optimizer.inputs import prepare
from riskopt.optimizer.program import GateProgram, Structure, Values
from riskopt.optimizer.rebalance import _cost_weights, _hard_box, _pair_box, _tracking_weights


def _turnover_program(n: int, seed: int, fraction: float, on: str):  # type: ignore[no-untyped-def]
    """A book with every shipped family, plus a turnover cap at ``fraction`` of the turnover
    the gate trades without it: the book's ``Σ|h − h0| ≤ T`` (``on="trade"``), or each
    strategy's own ``Σ_{p∈s} |w_p − w0_p| ≤ T_s`` (``on="pair_trade"``)."""
    universe = make_universe(n, 4, seed, coverage=0.9, years=0.5)
    cs = ConstraintSet.load("default")
    data = prepare(universe.book, universe.decisions, cs).data
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    bounds = [bound for family in FAMILIES for bound in family.bounds(cs, data)]
    lo, hi = _hard_box(data, bounds)
    w_lo, w_hi = _pair_box(data, bounds)
    inputs = {
        "c": _tracking_weights(data, cs),
        "lo": lo,
        "hi": hi,
        "w_lo": w_lo,
        "w_hi": w_hi,
        "gamma": 2.0,
        "gamma_i": np.ones(data.n),
        "kappa": _cost_weights(data, cs),
    }

    def program(with_limits: list) -> tuple[GateProgram, Values]:  # type: ignore[type-arg]
        rho = [cs.tier_penalty(limit.tier) for limit in with_limits]
        values = Values.of(data, with_limits, rho=rho, **inputs)
        return GateProgram(Structure.of(data, with_limits, costs=True)), values

    free, free_values = program(limits)
    free_solved = free.solve("CLARABEL", max_iters=500, values=free_values)
    if on == "trade":
        a = sp.csr_matrix(np.ones((1, data.n)))
        held, traded, labels = data.h0, free_solved.h - data.h0, ("portfolio",)
    else:
        names, row = np.unique(data.pair_strategy.astype(str), return_inverse=True)
        a = sp.csr_matrix((np.ones(data.p), (row, np.arange(data.p))), shape=(len(names), data.p))
        held, traded, labels = data.w0, free_solved.w - data.w0, tuple(names)
    caps = fraction * np.asarray(a @ np.abs(traded))
    turnover = LinearLimit(
        name="turnover.test",
        family="turnover",
        transform="abs",
        rhs=caps,
        labels=labels,
        tier=1,
        scope="portfolio",
        description="turnover cap",
        A=a,
        on=on,  # type: ignore[arg-type]
        held=held,
    )
    gate, values = program([*limits, turnover])
    return data, gate, values, [*limits, turnover], bounds, inputs, caps


@pytest.mark.parametrize("on", ["trade", "pair_trade"])
@pytest.mark.parametrize("seed", [3, 8])
def test_a_turnover_cap_holds_alike_in_both_back_ends_and_is_attributed(seed: int, on: str) -> None:
    """A turnover cap written as a LinearLimit of ``abs`` over the trade (the book's) or the
    pair trade (each strategy's): both back-ends keep the turnover within its caps, agree
    on the weights, and the attribution reads the rows (their residual is zero, their
    multipliers push names toward their held weights)."""
    data, gate, values, limits, bounds, inputs, caps = _turnover_program(120, seed, 0.5, on)
    direct = gate.solve("CLARABEL", max_iters=500, values=values)
    reference = gate.solve("CLARABEL", max_iters=500, values=values, via="cvxpy")
    assert direct.status == reference.status == "optimal"
    turnover = limits[-1]
    for solved in (direct, reference):
        assert (turnover.lhs(solved.h, solved.w) <= caps + 1e-7).all()
    np.testing.assert_allclose(direct.h, reference.h, atol=1e-6)
    np.testing.assert_allclose(direct.w, reference.w, atol=1e-6)

    lhs = turnover.lhs(direct.h, direct.w)
    assert np.isclose(lhs, caps, atol=1e-7).any()  # at least one cap binds
    assert turnover.residual(direct.h, direct.w).max() <= 1e-7
    assert direct.duals[-1].max() > 0
    attribution = attribute(
        data,
        direct.h,
        direct.w,
        c=inputs["c"],
        gamma=inputs["gamma"],
        gamma_i=inputs["gamma_i"],
        kappa=inputs["kappa"],
        costs=True,
        limits=limits,
        duals=direct.duals,
        bounds=bounds,
        lo=inputs["lo"],
        hi=inputs["hi"],
        box_upper_dual=direct.box_upper_dual,
        box_lower_dual=direct.box_lower_dual,
        pair_duals=(direct.pair_upper_dual, direct.pair_lower_dual),
    )
    column = [cause.name for cause in attribution.causes].index("turnover.test")
    pushed = attribution.contributions[:, column]
    np.testing.assert_allclose(
        attribution.contributions.sum(axis=1), direct.h - data.h_tilde, atol=1e-12
    )
    assert np.abs(pushed).max() > 0
    if on == "trade":
        slope, kink = transform_slope("abs", direct.h - data.h0, 1e-5)
        traded = ~kink
        # Where a name trades, the cap pulls it back toward its held weight: against the trade.
        assert (pushed[traded] * slope[traded] <= 1e-12).all()


def test_the_table_refuses_what_it_does_not_hold() -> None:
    """``vol`` is the cone, not an elementwise transform: asking for its value raises
    instead of returning the negative part."""
    x = np.array([-2.0, 0.0, 3.0])
    with pytest.raises(ValueError, match="vol"):
        apply_transform("vol", x)
    with pytest.raises(ValueError, match="no elementwise transform"):
        transform_slope("square", x, 1e-5)
    assert set(TRANSFORMS) == {"id", "abs", "pos", "neg"}
    np.testing.assert_array_equal(apply_transform("neg", x), [2.0, 0.0, 0.0])
    for name, rule in TRANSFORMS.items():
        # T(x) = aux·|x| + base·x, the form both back-ends write it in.
        np.testing.assert_array_equal(
            rule.value(x), rule.aux * np.abs(x) + rule.base * x, err_msg=name
        )


def test_rows_over_the_trade_need_the_held_weights() -> None:
    with pytest.raises(ValueError, match="held weights"):
        LinearLimit(
            name="t",
            family="trading",
            transform="abs",
            rhs=np.array([1.0]),
            labels=("portfolio",),
            tier=1,
            scope="portfolio",
            description="turnover",
            A=sp.csr_matrix(np.ones((1, 3))),
            on="trade",
        )


def test_the_volatility_cap_is_its_own_limit() -> None:
    """The cone is not a block of linear rows, yet reads like one to tables and reasons."""
    cap = VolatilityCap(
        name="risk.max_volatility",
        family="risk",
        rhs=np.array([0.1]),
        labels=("portfolio",),
        tier=1,
        scope="portfolio",
        description="ex-ante volatility cap",
        loadings=np.array([[1.0], [0.5]]),
        factor_cov=np.array([[0.04]]),
        specific_var=np.array([0.01, 0.02]),
    )
    assert not isinstance(cap, LinearLimit)
    assert (cap.transform, cap.A, cap.on, cap.m, cap.sense) == ("vol", None, "h", 1, "max")
    h = np.array([0.5, 0.5])
    vol = np.sqrt(0.04 * 0.75**2 + 0.01 * 0.25 + 0.02 * 0.25)
    assert cap.lhs(h)[0] == pytest.approx(vol)
    assert cap.residual(h)[0] == pytest.approx(vol - 0.1)
