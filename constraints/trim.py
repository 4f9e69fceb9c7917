"""The gate only trims: each (strategy, ticker) pair ends between the smallest and the
largest of ``{0, w0, w̃}``.

A position moves toward its proposal and no further, or toward zero: the gate never
opens a position nobody proposed, never flips a sign no proposal flips, never extends
past a proposal. It is a box on the pair weights that contains ``w0``, so the program
stays always feasible. ``[trading] only_trim`` switches it for the book; a strategy's
``only_trim = false`` exempts its sleeve (a hedging overlay the gate may size freely).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import HardBound, Limit, LinearLimit, ProgramData, pair_hull
from riskopt.constraints.family import Family

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


def trimmed_strategies(cs: ConstraintSet, data: ProgramData) -> np.ndarray:
    """Which pairs the hull applies to: the book's switch, then each strategy's own."""
    exempt = [s for s, b in cs.strategies.items() if b.only_trim is False]
    forced = [s for s, b in cs.strategies.items() if b.only_trim is True]
    on = np.full(data.p, bool(cs.trading.only_trim))
    on[data.strategy_mask(exempt)] = False
    on[data.strategy_mask(forced)] = True
    return on


class OnlyTrim(Family):
    """The only-trim hull; it has no section of its own (``[trading] only_trim`` and each
    strategy's ``only_trim``), and its preference row sits at ``tiers.lowest``."""

    name = "trim"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        """Hold each decision's position at least where it is, against risk aversion:
        a proposal to grow a position is never traded the other way unless a limit
        forces the cut (a preference row, below every tier)."""
        grows = (
            trimmed_strategies(cs, data)
            & data.has_decision
            & (data.w0 != 0)
            & (data.w0 * data.w_tilde > 0)
            & (np.abs(data.w_tilde) > np.abs(data.w0))
        )
        pairs = np.flatnonzero(grows)
        if not len(pairs):
            return []
        sign = np.sign(data.w0[pairs])  # a long may not fall below w0, a short not rise
        a = sp.csr_matrix((-sign, (np.arange(len(pairs)), pairs)), shape=(len(pairs), data.p))
        return [
            LinearLimit(
                name="trading.not_against_proposal",
                family=self.name,
                transform="id",
                rhs=-np.abs(data.w0[pairs]),
                labels=tuple(
                    f"{data.pair_strategy[p]}:{data.tickers[data.pair_ticker[p]]}" for p in pairs
                ),
                tier=cs.tiers.lowest,
                scope="name",
                description="not traded against its proposal",
                A=a,
                on="w",
                preference=True,
            )
        ]

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        on = trimmed_strategies(cs, data)
        if not on.any():
            return []
        lo, hi = pair_hull(data.w0, data.w_tilde)
        bound = HardBound.on_pairs(
            "trading.only_trim",
            "the gate only trims (held → proposed, or toward zero)",
            data,
            np.where(on, lo, -np.inf),
            np.where(on, hi, np.inf),
        )
        # A name all of whose sleeves trim keeps the hull as a whole too: its total never
        # flips or grows where no proposal does, though one sleeve's cut may net against
        # another's holding.
        whole = np.bincount(data.pair_ticker, weights=~on, minlength=data.n) == 0
        name_lo, name_hi = pair_hull(data.h0, data.h_tilde)
        return [
            dataclasses.replace(
                bound,
                lo=np.where(whole, np.maximum(bound.lo, name_lo), bound.lo),
                hi=np.where(whole, np.minimum(bound.hi, name_hi), bound.hi),
            )
        ]
