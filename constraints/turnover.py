"""Turnover: ``Σ_i |h_i − h0_i| ≤ T`` for the book's one-way turnover, and
``Σ_{p∈s} |w_p − w0_p| ≤ T_s`` for each strategy's own sleeve (policy rows on the trade,
not the weight).

```toml
[turnover]
max = 0.30            # the book's one-way turnover, a fraction of NAV
tier = 3

[turnover.strategies] # a sleeve's own one-way turnover, over its pairs
momentum = 0.10
```

A sleeve's turnover counts its own trades before netting: two strategies trading one
ticker in opposite directions each use their own budget, while the book's turnover sees
the net trade. States do not scale turnover: a stricter state must trade more, not less
(de-risk only, forced de-risking), and a smaller turnover cap would hold the book where
it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from riskopt.constraints.base import Limit, LinearLimit, ProgramData
from riskopt.constraints.family import Family, Section, Tier, strategy_rows, zero_cap_problems

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


class TurnoverConfig(Section):
    """The book's one-way turnover cap ``max``, a fraction of NAV, and its tier."""

    max: float | None = Field(None, ge=0)
    tier: Tier = Field(3, ge=1)
    strategies: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """Each named strategy's own one-way turnover cap (same tier as the book's)."""


class TurnoverLimits(Family):
    name = "turnover"
    key = "turnover"
    section = TurnoverConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        """One row over the names, ``Σ |h − h0| ≤ max``, and one per capped strategy in the
        book over its own pairs, ``Σ_{p∈s} |w_p − w0_p| ≤ T_s``."""
        cfg: TurnoverConfig = self.own(cs)
        out = self._sleeves(cfg, data)
        if cfg.max is None or not data.n:
            return out
        return [
            LinearLimit(
                name="turnover.max",
                family=self.name,
                transform="abs",
                on="trade",
                held=data.h0,
                rhs=np.array([cfg.max]),
                labels=("portfolio",),
                tier=cfg.tier,
                scope="portfolio",
                description="book turnover cap",
                A=sp.csr_matrix(np.ones((1, data.n))),
            ),
            *out,
        ]

    def _sleeves(self, cfg: TurnoverConfig, data: ProgramData) -> list[Limit]:
        """The strategies' rows: each sums the absolute trades of its own pairs."""
        present, rows = strategy_rows(data, cfg.strategies)
        if not present:
            return []
        return [
            LinearLimit(
                name="turnover.strategies",
                family=self.name,
                transform="abs",
                on="pair_trade",
                held=data.w0,
                rhs=np.array([cfg.strategies[s] for s in present]),
                labels=tuple(present),
                tier=cfg.tier,
                scope="portfolio",
                description="sleeve turnover cap",
                A=rows,
            )
        ]

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        cfg: TurnoverConfig = self.own(cs)
        return [("turnover.tier", cfg.tier)]

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        """A zero turnover cap, the book's or a strategy's, cannot meet a state's forced
        de-risking, which must trade every sleeve."""
        cfg: TurnoverConfig = self.own(cs)
        zero = ["turnover.max"] if cfg.max == 0 else []
        zero += [f"turnover.strategies.{s}" for s, cap in cfg.strategies.items() if cap == 0]
        return zero_cap_problems(cs, zero)
