"""Constraint families of the risk policy, the ConstraintSet model and shipped sets.

This package knows cvxpy-free numpy descriptions of limits and nothing of storage. A new
family is one module here plus its config section, registered in :data:`FAMILIES`.
"""

from riskopt.constraints.base import HardBound, LinearLimit, ProgramData
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.exposure import ExposureLimits
from riskopt.constraints.factors import FactorBands
from riskopt.constraints.groups import GroupCaps
from riskopt.constraints.liquidity import LiquidityLimits
from riskopt.constraints.position import PositionCaps
from riskopt.constraints.restricted import RestrictedList
from riskopt.constraints.risk import VolatilityLimit
from riskopt.constraints.sleeves import SleeveBudgets
from riskopt.constraints.states import CalmerStateEnvelope, StateRestrictions
from riskopt.constraints.trading import TradeLimit
from riskopt.constraints.trim import OnlyTrim

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
