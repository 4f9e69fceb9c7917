"""The gate only trims: each (strategy, ticker) pair ends between the smallest and the
largest of ``{0, w0, w̃}``.

A position moves toward its proposal and no further, or toward zero: the gate never
opens a position nobody proposed, never flips a sign no proposal flips, never extends
past a proposal. It is a box on the pair weights that contains ``w0``, so the program
stays always feasible. ``[trading] only_trim`` switches it for the book; a strategy's
``only_trim = false`` exempts its sleeve (a hedging overlay the gate may size freely).
"""

from __future__ import annotations

import numpy as np

from constraints.base import HardBound, LinearLimit, ProgramData, pair_hull
from constraints.config import ConstraintSet


def trimmed_strategies(cs: ConstraintSet, data: ProgramData) -> np.ndarray:
    """Which pairs the hull applies to: the book's switch, then each strategy's own."""
    exempt = [s for s, b in cs.strategies.items() if b.only_trim is False]
    forced = [s for s, b in cs.strategies.items() if b.only_trim is True]
    strategy = data.pair_strategy.astype(str)
    on = np.full(data.p, bool(cs.trading.only_trim))
    on[np.isin(strategy, exempt)] = False
    on[np.isin(strategy, forced)] = True
    return on


class OnlyTrim:
    name = "trim"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        return []

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        on = trimmed_strategies(cs, data)
        if not on.any():
            return []
        lo, hi = pair_hull(data.w0, data.w_tilde)
        return [
            HardBound.on_pairs(
                "trading.only_trim",
                "the gate only trims (held → proposed, or toward zero)",
                data,
                np.where(on, lo, -np.inf),
                np.where(on, hi, np.inf),
            )
        ]
