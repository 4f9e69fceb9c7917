"""Hard trade limit: ``|h_i − h0_i| ≤ τ_i`` with ``τ_i = pct · ADV_i · price_i / NAV``."""

from __future__ import annotations

from riskopt.constraints.base import HardBound, LinearLimit, ProgramData
from riskopt.constraints.config import ConstraintSet


class TradeLimit:
    name = "trading"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        return []

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        pct = cs.trading.max_trade_pct_adv
        if pct is None:
            return []
        tau = pct * data.adv_shares * data.price / data.nav
        return [
            HardBound(
                name="trading.max_trade_pct_adv",
                description=f"trade limit {pct:.0%} of ADV",
                lo=data.h0 - tau,
                hi=data.h0 + tau,
                detail={"max_trade_weight": tau},
            )
        ]
