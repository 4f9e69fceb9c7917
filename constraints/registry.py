"""The registered constraint families, in report order: registering a family is one line.

``config.py`` builds the ``ConstraintSet`` model from their sections, checks their tiers
and their consistency, and ``states.py`` lets each scale its own section under a state.
"""

from __future__ import annotations

from riskopt.constraints.costs import TradingCosts
from riskopt.constraints.envelope import CalmerStateEnvelope
from riskopt.constraints.exposure import ExposureLimits
from riskopt.constraints.factors import FactorBands
from riskopt.constraints.family import Family
from riskopt.constraints.groups import GroupCaps
from riskopt.constraints.liquidity import LiquidityLimits
from riskopt.constraints.minimum import MinimumSizes
from riskopt.constraints.position import PositionCaps
from riskopt.constraints.restricted import RestrictedList
from riskopt.constraints.risk import VolatilityLimit
from riskopt.constraints.sleeves import SleeveBudgets
from riskopt.constraints.sop import StateRestrictions
from riskopt.constraints.trading import TradeLimit
from riskopt.constraints.trim import OnlyTrim
from riskopt.constraints.turnover import TurnoverLimits

FAMILIES: tuple[Family, ...] = (
    PositionCaps(),
    LiquidityLimits(),
    RestrictedList(),
    ExposureLimits(),
    GroupCaps(),
    FactorBands(),
    VolatilityLimit(),
    SleeveBudgets(),
    StateRestrictions(),
    CalmerStateEnvelope(),
    TradeLimit(),
    TurnoverLimits(),
    TradingCosts(),
    OnlyTrim(),
    MinimumSizes(),
)
"""Every family the gate applies, in report order."""
