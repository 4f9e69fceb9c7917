"""Grossman–Zhou drawdown control: the risk budget shrinks as the drawdown grows.

With drawdown ``d = 1 − NAV/peak`` and budget ``D``, the multiplier
``m(d) = max(floor, (D − d) / (D (1 − d)))`` is 1 at the peak, falls to 0 as ``d → D``
(held at ``floor``), and scales the volatility and gross caps (and, per strategy, that
sleeve's gross budget).
"""

from __future__ import annotations

import numpy as np


def drawdown(nav: np.ndarray) -> float:
    """Current drawdown of a NAV path: ``1 − last / running peak`` (0 for an empty path)."""
    nav = np.asarray(nav, dtype=float)
    if nav.size == 0:
        return 0.0
    return float(max(0.0, 1.0 - nav[-1] / np.max(nav)))


def risk_budget_multiplier(d: float | None, budget: float | None, floor: float) -> float:
    """``m(d)``; 1 when there is no budget or no drawdown information."""
    if budget is None or d is None:
        return 1.0
    if d >= budget:
        return floor
    return float(max(floor, (budget - d) / (budget * (1.0 - d))))
