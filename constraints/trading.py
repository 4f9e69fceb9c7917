"""Hard trade limit: ``|h_i − h0_i| ≤ τ_i`` with ``τ_i = pct · ADV_i · price_i / NAV``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from riskopt.constraints.base import HardBound, ProgramData
from riskopt.constraints.family import Family, Section

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


class TradingConfig(Section):
    """Hard trading rules: ``|Δshares| ≤ max_trade_pct_adv · ADV`` per name, and the gate
    only trims each (strategy, ticker) pair (``only_trim``)."""

    max_trade_pct_adv: float | None = Field(0.10, gt=0)
    only_trim: bool = True
    """Each (strategy, ticker) pair ends between min and max of {0, held, proposed}."""


class TradeLimit(Family):
    """The trade limit; its section also holds ``only_trim``, which :mod:`.trim` reads."""

    name = "trading"
    key = "trading"
    section = TradingConfig

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
