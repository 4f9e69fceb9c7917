"""Trading-cost budgets and the impact term through the whole gate: both back-ends agree,
a budget holds wherever it can, the attribution reads it, and a proposal within budget
passes unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.costs import TradingCosts, cost_model
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance
from riskopt.optimizer.assemble import RiskAversion, assemble
from riskopt.optimizer.inputs import prepare
from riskopt.optimizer.program import GateProgram, Structure, Values
from tests.helpers import decisions, hand_book


def _with_costs(costs: dict, *, objective: bool = True, name: str = "default") -> ConstraintSet:  # type: ignore[type-arg]
    raw = ConstraintSet.load(name).model_dump()
    raw["costs"] = costs
    raw["objective"] = dict(raw["objective"], costs=objective)
    return ConstraintSet.from_dict(raw)


def _budget_values(book, dec, cs, result):  # type: ignore[no-untyped-def]
    """Each cost budget's left-hand side at the run's solved weights."""
    data = prepare(book, dec, cs).data
    h = result.targets.loc[data.tickers.astype(str), "solved_weight"].to_numpy()
    sleeves = result.sleeve_targets.set_index(["strategy_id", "ticker"])
    keys = list(
        zip(data.pair_strategy.astype(str), data.tickers[data.pair_ticker].astype(str), strict=True)
    )
    w = sleeves.loc[keys, "target_weight"].to_numpy()  # lots: only to compare sleeves
    return {limit.name: (limit, limit.lhs(h, w)) for limit in TradingCosts().limits(cs, data)}


def _program(cs: ConstraintSet, seed: int):  # type: ignore[no-untyped-def]
    """One synthetic book's program under ``cs``, and its values, at γ = 1."""
    universe = make_universe(150, 3, seed, coverage=0.9, years=0.5)
    data = prepare(universe.book, universe.decisions, cs).data
    a = assemble(data, cs, RiskAversion(1.0, np.ones(data.n), None))
    structure = Structure.of(data, a.limits, costs=a.costs, impact=a.has_impact)
    values = Values.of(
        data,
        a.limits,
        c=a.c,
        lo=a.box.lo,
        hi=a.box.hi,
        w_lo=a.box.w_lo,
        w_hi=a.box.w_hi,
        gamma=a.risk_scale,
        gamma_i=np.ones(data.n),
        kappa=a.kappa,
        rho=a.rho,
        impact=a.impact,
    )
    return universe, data, a, GateProgram(structure), values


@pytest.mark.parametrize(
    "costs",
    [
        {"impact": 0.7, "max_bps": 2.0, "tier": 1},
        {"impact": 0.7, "strategies": {"momentum": 0.5, "value": 0.5}, "tier": 1},
    ],
    ids=["book", "sleeves"],
)
@pytest.mark.parametrize("seed", [3, 11])
def test_both_back_ends_agree_with_binding_budgets_and_impact(seed: int, costs: dict) -> None:  # type: ignore[type-arg]
    """Clarabel on the assembled program (power cones) and cvxpy's own formulation of the
    same one end at the same weights, every budget holds and one binds."""
    cs = _with_costs(costs)
    universe, _, a, program, values = _program(cs, seed)
    direct = program.solve("CLARABEL", max_iters=500, values=values)
    reference = program.solve("CLARABEL", max_iters=500, values=values, via="cvxpy")
    assert direct.status == "optimal"
    # cvxpy's own formulation of the 3/2 power stops short of its tolerances: its answer
    # is a reference to about 1e-6, and never a better one than the direct program's.
    assert reference.status in ("optimal", "optimal_inaccurate")
    np.testing.assert_allclose(direct.h, reference.h, atol=2e-6)
    np.testing.assert_allclose(direct.w, reference.w, atol=5e-6)
    assert direct.objective <= reference.objective + 1e-9
    budgets = [j for j, limit in enumerate(a.limits) if limit.family == "costs"]
    for j in budgets:
        limit = a.limits[j]
        assert (limit.residual(direct.h, direct.w) <= 1e-9).all()
    assert max(direct.duals[j].max() for j in budgets) > 0

    result = rebalance(universe.book, universe.decisions, cs, risk_aversion=1.0, state="NORMAL")
    assert result.run.status == "OPTIMAL"
    attribution = result.attribution
    moved = result.targets.loc[attribution.index, ["solved_weight", "proposed_weight"]]
    np.testing.assert_allclose(
        attribution.sum(axis=1), moved["solved_weight"] - moved["proposed_weight"], atol=1e-9
    )
    name = a.limits[budgets[0]].name
    assert attribution[name].abs().max() > 0
    assert name in set(result.binding["constraint"])


def test_a_sleeve_budget_holds_from_an_empty_book() -> None:
    """From an empty book nothing is forced to trade, so a sleeve's budget at tier 1 holds
    whatever it is; the other sleeve trades as proposed."""
    prices = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}
    book = hand_book(prices, adv_shares={"AAA": 1e5, "BBB": 2e5, "CCC": 1e9})
    dec = decisions(
        [("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", 0.04), ("D3", "s2", "CCC", 0.03)]
    )
    cs = _with_costs({"impact": 0.7, "strategies": {"s1": 0.5}, "tier": 1}, objective=False)
    result = rebalance(book, dec, cs, risk_aversion=0.0, state="NORMAL")
    limit, value = _budget_values(book, dec, cs, result)["costs.strategies"]
    assert limit.labels == ("s1",)
    # It binds (the sleeve's pairs are read after lots, which only round toward held).
    assert 0.99 * 0.5e-4 <= value[0] <= 0.5e-4 + 1e-9
    assert result.breaches == []
    sleeves = result.sleeve_targets.set_index(["strategy_id", "ticker"])["target_weight"]
    assert sleeves[("s2", "CCC")] == pytest.approx(0.03, abs=1e-5)
    assert 0 < sleeves[("s1", "AAA")] < 0.04 and 0 < sleeves[("s1", "BBB")] < 0.04
    reason = result.actions.set_index("decision_id").loc["D1", "reason"]
    assert "sleeve trading-cost budget" in reason


@st.composite
def empty_books(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    n = draw(st.integers(3, 8))
    prices = {f"N{i}": draw(st.floats(5.0, 500.0)) for i in range(n)}
    adv = {t: draw(st.floats(1e3, 1e6)) for t in prices}
    rows = [
        (f"D{i}", draw(st.sampled_from(["s1", "s2"])), t, draw(st.floats(-0.05, 0.05)))
        for i, t in enumerate(prices)
    ]
    share = draw(st.floats(0.0, 1.5))
    return prices, adv, rows, share


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(empty_books())
def test_a_budget_holds_and_a_proposal_within_it_passes_unchanged(case) -> None:  # type: ignore[no-untyped-def]
    """From an empty book (nothing forced to trade) a book budget at tier 1 holds on every
    output, every other limit too; a budget the proposal already meets changes nothing."""
    prices, adv, rows, share = case
    book = hand_book(prices, adv_shares=adv)
    dec = decisions(rows)
    probe = _with_costs({"impact": 0.7}, objective=False)
    data = prepare(book, dec, probe).data
    kappa, lam = cost_model(probe, data)
    trade = np.abs(data.h_tilde - data.h0)
    proposal_cost = float(kappa @ trade + lam @ trade**1.5)
    budget = max(share * proposal_cost * 1e4, 1e-3)  # bps; a zero budget is refused
    cs = _with_costs({"impact": 0.7, "max_bps": budget, "tier": 1}, objective=False)
    result = rebalance(book, dec, cs, risk_aversion=0.0, state="NORMAL")
    limit, value = _budget_values(book, dec, cs, result)["costs.max_bps"]
    assert value[0] <= limit.rhs[0] + 1e-9
    assert result.breaches == []
    if budget * 1e-4 >= proposal_cost:  # the proposal meets the budget: it passes as proposed
        free = rebalance(
            book, dec, _with_costs({}, objective=False), risk_aversion=0.0, state="NORMAL"
        )
        pd.testing.assert_series_equal(
            result.targets["solved_weight"], free.targets["solved_weight"]
        )


@pytest.mark.parametrize(
    ("costs", "in_objective"),
    [
        ({"impact": 0.7, "max_bps": 8.0, "strategies": {"momentum": 2.0}}, False),
        ({"impact": 0.7}, True),
    ],
)
def test_impact_is_explained_not_left_to_solver_tolerance(costs: dict, in_objective: bool) -> None:  # type: ignore[type-arg]
    """A name that stops within a hair of its held position still has an impact slope
    ``1.5 λ √|t|``; the explanation counts it in the cost's room at the kink. Left out,
    the sample book's README example blamed up to 6.5% of NAV on solver tolerance."""
    from riskopt.data import SAMPLES

    raw = ConstraintSet.load("default").model_dump()
    raw["costs"] = costs
    raw["objective"]["costs"] = in_objective
    cs = ConstraintSet.from_dict(raw)
    result = rebalance(SAMPLES / "book", SAMPLES / "decisions.csv", cs, state="NORMAL")
    numerical = [c for c in result.attribution.columns if "numerical" in str(c)]
    assert numerical
    assert result.attribution[numerical[0]].abs().max() < 1e-4
