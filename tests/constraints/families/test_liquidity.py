"""Liquidity: caps in days of ADV and in volatility (rows), and gates (reduce-only boxes)."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints.base import NO_LIMIT, ProgramData
from riskopt.constraints.liquidity import LiquidityLimits
from tests.constraints.families.conftest import set_with


def test_adv_days_and_volatility_caps(data: ProgramData) -> None:
    cs = set_with(
        liquidity={
            "max_position_pct_adv": 0.2,
            "liquidation_days": 5,
            "volatility_budget": 0.02,
            "volatility_tier": 3,
        }
    )
    adv, vol = LiquidityLimits().limits(cs, data)
    # 20% of ADV over 5 days is one day's ADV in NAV: 0.10, 0.05, 0.10, 0.005.
    assert adv.name == "liquidity.max_position_pct_adv" and adv.tier == 2
    assert adv.rhs == pytest.approx([0.1, 0.05, 0.1, 0.005])
    # 0.02 / σ; D has no volatility, so no cap.
    assert vol.name == "liquidity.volatility_budget" and vol.tier == 3
    assert vol.rhs == pytest.approx([0.1, 0.05, 0.2, NO_LIMIT])
    h = np.array([0.12, -0.02, 0.15, 0.3])
    assert adv.residual(h) == pytest.approx([0.02, 0.0, 0.05, 0.295])
    assert vol.residual(h) == pytest.approx([0.02, 0.0, 0.0, 0.0])


def test_gates_make_the_failing_names_reduce_only(data: ProgramData) -> None:
    cs = set_with(liquidity={"max_spread_bps": 20, "min_price": 15})
    spread, price = LiquidityLimits().bounds(cs, data)
    # B is quoted 50 bps wide: total in [0, 0.03], its pairs toward zero (0.05 and −0.02).
    assert spread.name == "liquidity.max_spread_bps"
    assert spread.lo == pytest.approx([-np.inf, 0.0, -np.inf, -np.inf])
    assert spread.hi == pytest.approx([np.inf, 0.03, np.inf, np.inf])
    assert spread.pair_lo == pytest.approx([-np.inf, 0.0, -0.02, -np.inf, -np.inf])
    assert spread.pair_hi == pytest.approx([np.inf, 0.05, 0.0, np.inf, np.inf])
    # D is priced 10, below 15, and held at 0: it stays at 0.
    assert price.name == "liquidity.min_price"
    assert (price.lo[3], price.hi[3]) == (0.0, 0.0)
    assert np.isinf(price.lo[:3]).all() and np.isinf(price.hi[:3]).all()


def test_a_state_shrinks_adv_with_position_and_budget_with_volatility() -> None:
    cs = set_with(
        liquidity={"max_position_pct_adv": 0.2, "volatility_budget": 0.02, "max_spread_bps": 20},
        states={
            "ELEVATED": {"position": 0.5, "volatility": 0.8},
            "EMERGENCY": {"position": 0.5, "volatility": 0.8},
        },
    )
    raw = LiquidityLimits().tightened(cs.liquidity.model_dump(), cs.states.ELEVATED)
    assert raw["max_position_pct_adv"] == pytest.approx(0.1)
    assert raw["volatility_budget"] == pytest.approx(0.016)
    assert raw["max_spread_bps"] == 20
