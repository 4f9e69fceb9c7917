"""Constraint families of the risk policy, the ConstraintSet model and shipped sets.

This package knows cvxpy-free numpy descriptions of limits and nothing of storage. A new
family is one module here plus its config section, registered in :data:`FAMILIES`.
"""

from constraints.base import HardBound, LinearLimit, ProgramData
from constraints.config import ConstraintSet
from constraints.errors import ConfigError
from constraints.exposure import ExposureLimits
from constraints.factors import FactorBands
from constraints.groups import GroupCaps
from constraints.liquidity import LiquidityLimits
from constraints.position import PositionCaps
from constraints.restricted import RestrictedList
from constraints.risk import VolatilityLimit
from constraints.sleeves import SleeveBudgets
from constraints.states import CalmerStateEnvelope, StateRestrictions
from constraints.trading import TradeLimit
from constraints.trim import OnlyTrim

FAMILIES = (
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
    OnlyTrim(),
)
"""Every family the gate applies, in report order."""

__all__ = [
    "FAMILIES",
    "ConfigError",
    "ConstraintSet",
    "HardBound",
    "LinearLimit",
    "ProgramData",
]
