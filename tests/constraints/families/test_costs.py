"""Trading costs: ``κ|x| + λ|x|^{3/2}`` per name, budgets for the book (on ``h − h0``) and
per strategy (on ``w − w0``); the model by hand, the rows, the checks and the tier."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints import FAMILIES
from riskopt.constraints.base import CostBudget, ProgramData
from riskopt.constraints.config import SETS_DIR, ConstraintSet
from riskopt.constraints.costs import CostsConfig, TradingCosts, cost_model
from riskopt.constraints.errors import ConfigError
from tests.constraints.families.conftest import set_with

COSTS = {"impact": 0.7, "max_bps": 5.0, "tier": 2, "strategies": {"s2": 1.0, "gone": 3.0}}


def test_registered_once_with_its_section_and_tier() -> None:
    assert [f.name for f in FAMILIES].count("costs") == 1
    cs = set_with(costs=COSTS)
    assert cs.costs == CostsConfig(**COSTS)
    assert TradingCosts().tiers(cs) == [("costs.tier", 2)]


@pytest.mark.parametrize("path", sorted(SETS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_a_shipped_set_has_no_budget_and_no_impact(path: object, data: ProgramData) -> None:
    cs = ConstraintSet.load(str(path))
    assert cs.costs == CostsConfig()
    assert TradingCosts().limits(cs, data) == []
    assert not cost_model(cs, data)[1].any()


def test_the_cost_model_by_hand(data: ProgramData) -> None:
    """κ = half spread + commission; λ = η σ/√252 √(NAV / (ADV · price))."""
    cs = set_with(costs={"impact": 0.7}, objective={"commission_bps": 1.0})
    kappa, lam = cost_model(cs, data)
    np.testing.assert_allclose(kappa, np.array([3.5, 26.0, 6.0, 3.5]) * 1e-4)
    # A: σ 0.2, ADV 1,000 × 100 = 1e5 against a NAV of 1e6; D has no volatility.
    dollar_adv = np.array([1e5, 5e4, 1e5, 5e3])
    expected = 0.7 * np.array([0.2, 0.4, 0.1, 0.0]) / np.sqrt(252) * np.sqrt(1e6 / dollar_adv)
    np.testing.assert_allclose(lam, expected, rtol=1e-12)
    assert lam[0] == pytest.approx(0.02789, rel=1e-3)


def test_bad_settings_are_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        set_with(costs={"impact": -1, "max_bps": -2, "strategies": {"s1": -1.0}, "typo": 1})
    text = "\n".join(err.value.problems)
    for key in ("costs.impact", "costs.max_bps", "costs.strategies.s1"):
        assert f"{key}: Input should be greater than or equal to 0" in text
    assert "costs.typo: unknown key" in text
    with pytest.raises(ConfigError, match=r"costs\.tier: tier 9 is past tiers.lowest"):
        set_with(costs={"max_bps": 1.0, "tier": 9})


def test_a_zero_budget_contradicts_a_forced_derisk() -> None:
    with pytest.raises(ConfigError) as err:
        set_with(costs={"max_bps": 0.0}, states={"EMERGENCY": {"forced_derisk": 0.25}})
    assert err.value.problems == [
        "costs.max_bps: 0 forbids the forced de-risking of states.EMERGENCY (0.25 of gross)"
    ]


def test_the_book_and_sleeve_rows_and_their_residuals(data: ProgramData) -> None:
    book, sleeves = TradingCosts().limits(set_with(costs=COSTS), data)
    assert isinstance(book, CostBudget) and isinstance(sleeves, CostBudget)
    assert (book.name, book.on, book.tier, book.labels) == (
        "costs.max_bps",
        "trade",
        2,
        ("portfolio",),
    )
    assert book.rhs == pytest.approx([5e-4])
    assert (sleeves.name, sleeves.on, sleeves.labels) == ("costs.strategies", "pair_trade", ("s2",))
    kappa, lam = cost_model(set_with(costs=COSTS), data)
    # The book trades A +.02 and C +.03 (h0 = .10, .03, .03, 0).
    h = np.array([0.12, 0.03, 0.06, 0.0])
    by_hand = kappa[[0, 2]] @ [0.02, 0.03] + lam[[0, 2]] @ np.array([0.02, 0.03]) ** 1.5
    assert book.lhs(h)[0] == pytest.approx(by_hand, rel=1e-12)
    assert book.residual(h)[0] == pytest.approx(max(by_hand - 5e-4, 0.0))
    assert book.residual(data.h0)[0] == 0.0
    # s2's pairs: B −.02 → 0 (a .02 trade on B) and C .03 → .06; s1's trades do not count.
    w = np.array([0.12, 0.05, 0.0, 0.06, 0.0])
    s2 = kappa[[1, 2]] @ [0.02, 0.03] + lam[[1, 2]] @ np.array([0.02, 0.03]) ** 1.5
    assert sleeves.lhs(np.asarray(data.M @ w), w)[0] == pytest.approx(s2, rel=1e-12)


def test_the_slope_is_the_cost_derivative(data: ProgramData) -> None:
    (book,) = TradingCosts().limits(set_with(costs={"impact": 0.7, "max_bps": 5.0}), data)
    x = np.array([0.02, -0.01, 0.003, 0.0])
    step = 1e-7
    numeric = (book.cost(x + step) - book.cost(x - step)) / (2 * step)
    np.testing.assert_allclose(book.slope(x)[:3], numeric[:3], rtol=1e-6)
    assert book.slope(x)[3] == 0.0  # at the kink the subgradient is [−κ, κ]: none chosen


def test_states_leave_costs_as_they_are() -> None:
    cs = set_with(costs=COSTS, states={"EMERGENCY": {"position": 0.5, "gross": 0.5}})
    raw = cs.costs.model_dump()
    assert TradingCosts().tightened(raw, cs.states.EMERGENCY) == raw
