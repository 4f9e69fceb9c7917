"""Liquidity: position caps in days of ADV, volatility-scaled caps, and hard gates.

Gates (spread, tick-to-price, minimum price) never force a sale: a name that fails one
may only shrink toward zero, never grow or flip, ``h_i ∈ [min(0, h0_i), max(0, h0_i)]``.
"""

from __future__ import annotations

import numpy as np

from constraints.base import NO_LIMIT, HardBound, LinearLimit, ProgramData
from constraints.config import ConstraintSet


def reduce_only_box(data: ProgramData, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box of names that may only move toward zero (others unbounded)."""
    lo = np.where(mask, np.minimum(0.0, data.h0), -np.inf)
    hi = np.where(mask, np.maximum(0.0, data.h0), np.inf)
    return lo, hi


class LiquidityLimits:
    name = "liquidity"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        cfg = cs.liquidity
        out: list[LinearLimit] = []
        tickers = tuple(map(str, data.tickers))
        if cfg.max_position_pct_adv is not None:
            cap = (
                cfg.max_position_pct_adv
                * cfg.liquidation_days
                * data.adv_shares
                * data.price
                / data.nav
            )
            out.append(
                LinearLimit(
                    name="liquidity.max_position_pct_adv",
                    family=self.name,
                    transform="abs",
                    rhs=np.minimum(cap, NO_LIMIT),
                    labels=tickers,
                    tier=cfg.position_tier,
                    scope="name",
                    description=f"liquidity cap ({cfg.max_position_pct_adv:.0%} ADV × {cfg.liquidation_days:g} days)",
                )
            )
        if cfg.volatility_budget is not None:
            sigma = data.volatility
            cap = np.divide(
                cfg.volatility_budget, sigma, out=np.full(data.n, NO_LIMIT), where=sigma > 0
            )
            out.append(
                LinearLimit(
                    name="liquidity.volatility_budget",
                    family=self.name,
                    transform="abs",
                    rhs=np.minimum(cap, NO_LIMIT),
                    labels=tickers,
                    tier=cfg.volatility_tier,
                    scope="name",
                    description=f"volatility-scaled cap (|w|σ ≤ {cfg.volatility_budget:.2%})",
                )
            )
        return out

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        cfg = cs.liquidity
        # (key, limit, the name's value, the value it must not exceed, description)
        gates = (
            ("liquidity.max_spread_bps", cfg.max_spread_bps, data.spread_bps, 1.0, "spread gate"),
            (
                "liquidity.max_tick_to_price",
                cfg.max_tick_to_price,
                data.tick_size / data.price,
                1.0,
                "tick-size gate",
            ),
            ("liquidity.min_price", cfg.min_price, data.price, -1.0, "minimum-price gate"),
        )
        out = []
        for name, limit, value, sign, description in gates:
            if limit is None:
                continue
            failing = sign * value > sign * limit
            if failing.any():
                lo, hi = reduce_only_box(data, failing)
                out.append(
                    HardBound(name=name, description=f"{description} ({limit:g})", lo=lo, hi=hi)
                )
        return out
