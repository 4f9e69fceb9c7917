"""Liquidity: position caps in days of ADV, volatility-scaled caps, and hard gates.

Gates (spread, tick-to-price, minimum price) never force a sale: a name that fails one
may only shrink toward zero, never grow or flip, ``h_i ∈ [min(0, h0_i), max(0, h0_i)]``,
and each of its (strategy, ticker) pairs likewise.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from riskopt.constraints.base import (
    NO_LIMIT,
    HardBound,
    Limit,
    LinearLimit,
    ProgramData,
    toward_zero_box,
)
from riskopt.constraints.family import Family, Section, Tier, scale

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet, StateSOP


class LiquidityConfig(Section):
    """Liquidity: position cap in days of ADV (policy), hard gates, volatility-scaled caps."""

    max_position_pct_adv: float | None = Field(None, gt=0)
    """A position may be at most this share of ADV times ``liquidation_days``."""
    liquidation_days: float = Field(5.0, gt=0)
    position_tier: Tier = Field(2, ge=1)
    max_spread_bps: float | None = Field(None, gt=0)
    """Hard gate: names quoted wider than this may not grow."""
    max_tick_to_price: float | None = Field(None, gt=0)
    """Hard gate: names whose tick is a larger share of price than this may not grow."""
    min_price: float | None = Field(None, gt=0)
    """Hard gate: names priced below this may not grow."""
    volatility_budget: float | None = Field(None, gt=0)
    """Per-name risk cap: ``|h_i| σ_i ≤ volatility_budget``."""
    volatility_tier: Tier = Field(2, ge=1)


def reduce_only_bound(
    name: str, description: str, data: ProgramData, mask: np.ndarray
) -> HardBound:
    """Names that may only move toward zero: every pair of theirs, and their total."""
    pair_mask = mask[data.pair_ticker]
    lo, hi = toward_zero_box(data.w0)
    bound = HardBound.on_pairs(
        name,
        description,
        data,
        np.where(pair_mask, lo, -np.inf),
        np.where(pair_mask, hi, np.inf),
    )
    name_lo, name_hi = toward_zero_box(data.h0)
    return dataclasses.replace(
        bound,
        lo=np.where(mask, np.maximum(bound.lo, name_lo), -np.inf),
        hi=np.where(mask, np.minimum(bound.hi, name_hi), np.inf),
    )


class LiquidityLimits(Family):
    name = "liquidity"
    key = "liquidity"
    section = LiquidityConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        cfg = cs.liquidity
        out: list[Limit] = []
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
                out.append(reduce_only_bound(name, f"{description} ({limit:g})", data, failing))
        return out

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [
            ("liquidity.position_tier", cs.liquidity.position_tier),
            ("liquidity.volatility_tier", cs.liquidity.volatility_tier),
        ]

    def tightened(self, raw: Any, sop: StateSOP) -> Any:
        """The %ADV cap shrinks with the per-name caps (``position``), the volatility
        budget with ``volatility``; the hard gates stay as they are."""
        scale(raw, "max_position_pct_adv", sop.position)
        scale(raw, "volatility_budget", sop.volatility)
        return raw
