"""Constraint families of the risk policy, the ConstraintSet model and shipped sets.

This package knows cvxpy-free numpy descriptions of limits and nothing of storage. A new
family is one module here (its section, limits, tiers, checks and state scaling; see
:mod:`.family`), registered by one line in :data:`FAMILIES` (:mod:`.registry`).
"""

from riskopt.constraints.base import HardBound, LinearLimit, ProgramData
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.family import Family
from riskopt.constraints.registry import FAMILIES

__all__ = [
    "FAMILIES",
    "ConfigError",
    "ConstraintSet",
    "Family",
    "HardBound",
    "LinearLimit",
    "ProgramData",
]
