"""Priority tiers: when not every policy limit can hold, the lowest tier gives way first
and the reported breaches are exactly the residuals."""

from __future__ import annotations

import pandas as pd
import pytest

from riskopt.constraints.config import ConstraintSet
from riskopt.optimizer import rebalance
from tests.helpers import hand_book

PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}
SECTORS = {"AAA": "Tech", "BBB": "Tech", "CCC": "Energy"}


def test_higher_tier_first_and_breaches_are_the_residuals() -> None:
    # Tech is held at 12% against a 6% sector cap (tier 1). The trade limit lets AAA sell
    # 2% and BBB 1% of NAV today, so Tech can only come down to 9%. Selling pushes the net
    # exposure below its 10% floor (tier 3); CCC could make up the net but cannot trade.
    book = hand_book(
        PRICES,
        {("s1", "AAA"): 0.06, ("s1", "BBB"): 0.06},
        sectors=SECTORS,
        adv_shares={"AAA": 20_000, "BBB": 20_000, "CCC": 0.0},
    )
    cs = ConstraintSet.from_dict(
        {
            "name": "tiers",
            "position": {"max_weight": 0.5},
            "exposure": {"gross": {"max": 2.0}, "net": {"min": 0.10, "max": 0.5, "tier": 3}},
            "groups": {"sector": {"max_net": 0.06, "tier": 1}},
            "trading": {"max_trade_pct_adv": 0.1},
        }
    )
    empty = pd.DataFrame(columns=["decision_id", "ticker", "strategy_id", "target_weight"])
    result = rebalance(book, empty, cs, risk_aversion=0.0)
    assert result.status == "RELAXED"
    w = result.targets.set_index("ticker")["target_weight"]
    # Tier 1 got everything liquidity allows: both names sold to their trade limit.
    assert w["AAA"] == pytest.approx(0.04, abs=1e-9)
    assert w["BBB"] == pytest.approx(0.05, abs=1e-9)
    breaches = {(b["constraint"], b["label"]): b for b in result.breaches}
    assert set(breaches) == {("groups.sector.net", "Tech"), ("exposure.net.min", "portfolio")}
    sector = breaches[("groups.sector.net", "Tech")]
    assert sector["tier"] == 1 and sector["breach"] == pytest.approx(0.09 - 0.06, abs=1e-6)
    assert sector["value"] == pytest.approx(w["AAA"] + w["BBB"], abs=1e-6)
    floor = breaches[("exposure.net.min", "portfolio")]
    assert floor["tier"] == 3 and floor["breach"] == pytest.approx(0.10 - 0.09, abs=1e-6)
    assert floor["value"] == pytest.approx(w.sum(), abs=1e-6) and floor["limit"] == 0.10
    # Breaches come ordered by tier, highest priority first.
    assert [b["tier"] for b in result.breaches] == sorted(b["tier"] for b in result.breaches)


def test_swapping_tiers_swaps_who_gives_way() -> None:
    # Tech cap (tier 3) against a net floor (tier 1) that only Tech names can hold up.
    book = hand_book(
        PRICES, {("s1", "AAA"): 0.06, ("s1", "BBB"): 0.06}, sectors=SECTORS, adv_shares={"CCC": 0.0}
    )
    cs = ConstraintSet.from_dict(
        {
            "name": "tiers",
            "position": {"max_weight": 0.5},
            "exposure": {"gross": {"max": 2.0}, "net": {"min": 0.10, "max": 0.5, "tier": 1}},
            "groups": {"sector": {"max_net": 0.06, "tier": 3}},
            "trading": {"max_trade_pct_adv": None},
        }
    )
    empty = pd.DataFrame(columns=["decision_id", "ticker", "strategy_id", "target_weight"])
    result = rebalance(book, empty, cs, risk_aversion=0.0)
    w = result.targets.set_index("ticker")["target_weight"]
    assert w.sum() == pytest.approx(0.10, abs=1e-6)  # the tier-1 floor holds
    (breach,) = result.breaches
    assert breach["constraint"] == "groups.sector.net"
    assert breach["breach"] == pytest.approx(0.04, abs=1e-6)
