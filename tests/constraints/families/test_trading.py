"""The hard trade limit: ``|h_i − h0_i| ≤ pct · ADV_i · price_i / NAV``."""

from __future__ import annotations

import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.trading import TradeLimit
from tests.constraints.families.conftest import set_with


def test_box_around_the_holding_of_pct_of_adv(data: ProgramData) -> None:
    cs = set_with(trading={"max_trade_pct_adv": 0.1})
    assert TradeLimit().limits(cs, data) == []
    (bound,) = TradeLimit().bounds(cs, data)
    # ADV in NAV: A 0.10, B 0.05, C 0.10, D 0.005; a tenth of it either way of h0.
    tau = [0.01, 0.005, 0.01, 0.0005]
    assert bound.detail["max_trade_weight"] == pytest.approx(tau)
    assert bound.lo == pytest.approx([0.09, 0.025, 0.02, -0.0005])
    assert bound.hi == pytest.approx([0.11, 0.035, 0.04, 0.0005])


def test_no_limit_no_box(data: ProgramData) -> None:
    assert TradeLimit().bounds(set_with(trading={"max_trade_pct_adv": None}), data) == []
