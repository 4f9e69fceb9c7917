"""Turnover: ``Σ_i |h_i − h0_i| ≤ T``, the book's one-way turnover (a policy row on the
trade, not the weight).

```toml
[turnover]
max = 0.30            # the book's one-way turnover, a fraction of NAV
tier = 3
```

States do not scale turnover: a stricter state must trade more, not less (de-risk only,
forced de-risking), and a smaller turnover cap would hold the book where it is. A cap per
strategy, over its own pairs (``Σ_{p∈s} |w_p − w0_p|``), needs the program to read pair
trades and is not offered yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from riskopt.constraints.base import Limit, LinearLimit, ProgramData
from riskopt.constraints.family import Family, Section, Tier
from riskopt.constraints.sop import STATES

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


class TurnoverConfig(Section):
    """The book's one-way turnover cap ``max``, a fraction of NAV, and its tier."""

    max: float | None = Field(None, ge=0)
    tier: Tier = Field(3, ge=1)


class TurnoverLimits(Family):
    name = "turnover"
    key = "turnover"
    section = TurnoverConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        """One row over the names: ``Σ |h − h0| ≤ max``."""
        cfg: TurnoverConfig = self.own(cs)
        if cfg.max is None or not data.n:
            return []
        return [
            LinearLimit(
                name="turnover.max",
                family=self.name,
                transform="abs",
                on="trade",
                h0=data.h0,
                rhs=np.array([cfg.max]),
                labels=("portfolio",),
                tier=cfg.tier,
                scope="portfolio",
                description="book turnover cap",
                A=sp.csr_matrix(np.ones((1, data.n))),
            )
        ]

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        cfg: TurnoverConfig = self.own(cs)
        return [("turnover.tier", cfg.tier)]

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        """A zero book turnover cannot meet a state's forced de-risking, which must trade."""
        cfg: TurnoverConfig = self.own(cs)
        if cfg.max != 0:
            return []
        return [
            f"turnover.max: 0 forbids the forced de-risking of states.{state} "
            f"({sop.forced_derisk:g} of gross)"
            for state in STATES
            if (sop := cs.states.sop(state)).forced_derisk > 0
        ]
