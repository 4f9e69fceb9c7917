"""Trading costs: the expected cost of a trade, and budgets on it for the book and each
strategy's sleeve.

The cost of trading ``t`` (a fraction of NAV) of name ``i`` is, as a fraction of NAV,

    κ_i |t| + λ_i |t|^{3/2},   κ_i = half spread + commission,
                               λ_i = η · σ_i / √252 · √(NAV / (ADV_i · price_i)),

the half spread paid on every unit, and a market impact per unit of ``η σ_daily √(q / ADV)``
for a trade of ``q`` shares (the square-root law; its total is the 3/2 power). ``η`` is
``[costs] impact``: empirical estimates put it near 0.5 to 1 for equities; 0, the default,
leaves the impact out. A name with no ADV has no impact estimate (λ = 0); the liquidity
caps, not the cost model, are what hold such a name.

```toml
[costs]
impact = 0.7          # η of the impact term (0: half spread and commission only)
max_bps = 5           # the book's expected cost ≤ 5 bps of NAV (none unless set)
tier = 3

[costs.strategies]    # a sleeve's own budget, bps of NAV, over its own pair trades
momentum = 2
```

``[objective] costs = true`` charges the same model in the objective. Budgets are not
scaled by states: a stricter state must trade to de-risk, and a smaller budget would hold
the book where it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from riskopt.constraints.base import CostBudget, Limit, ProgramData
from riskopt.constraints.family import Family, Section, Tier, strategy_rows, zero_cap_problems

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet

TRADING_DAYS = 252
"""Days a year, to turn the market's annualized volatility into a daily one."""
BPS = 1e-4


class CostsConfig(Section):
    """The impact coefficient ``η`` and the expected-cost budgets, in bps of NAV."""

    impact: float = Field(0.0, ge=0)
    max_bps: float | None = Field(None, ge=0)
    tier: Tier = Field(3, ge=1)
    strategies: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """Each named strategy's own budget, bps of NAV, over its pair trades."""


def cost_model(cs: ConstraintSet, data: ProgramData) -> tuple[np.ndarray, np.ndarray]:
    """Per name, ``κ`` (cost per unit traded) and ``λ`` (the impact coefficient)."""
    kappa = (0.5 * data.spread_bps + cs.objective.commission_bps) * BPS
    eta = cs.costs.impact
    dollar_adv = data.adv_shares * data.price
    lam = np.zeros(data.n)
    if eta > 0:
        liquid = dollar_adv > 0
        daily = data.volatility[liquid] / np.sqrt(TRADING_DAYS)
        lam[liquid] = eta * daily * np.sqrt(data.nav / dollar_adv[liquid])
    return kappa, lam


class TradingCosts(Family):
    name = "costs"
    key = "costs"
    section = CostsConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        """The book's budget over its trades, and each capped strategy's over its own."""
        cfg: CostsConfig = cs.costs
        if not data.n:
            return []
        kappa, lam = cost_model(cs, data)
        out: list[Limit] = []
        if cfg.max_bps is not None:
            out.append(
                CostBudget(
                    name="costs.max_bps",
                    family=self.name,
                    rhs=np.array([cfg.max_bps * BPS]),
                    labels=("portfolio",),
                    tier=cfg.tier,
                    scope="portfolio",
                    description="book trading-cost budget",
                    A=sp.csr_matrix(np.ones((1, data.n))),
                    linear=kappa,
                    impact=lam,
                    on="trade",
                    held=data.h0,
                )
            )
        return out + self._sleeves(cfg, data, kappa, lam)

    def _sleeves(
        self, cfg: CostsConfig, data: ProgramData, kappa: np.ndarray, lam: np.ndarray
    ) -> list[Limit]:
        """Each strategy's budget over its own pairs, each pair costed as its name."""
        present, rows = strategy_rows(data, cfg.strategies)
        if not present:
            return []
        return [
            CostBudget(
                name="costs.strategies",
                family=self.name,
                rhs=np.array([cfg.strategies[s] * BPS for s in present]),
                labels=tuple(present),
                tier=cfg.tier,
                scope="portfolio",
                description="sleeve trading-cost budget",
                A=rows,
                linear=kappa[data.pair_ticker],
                impact=lam[data.pair_ticker],
                on="pair_trade",
                held=data.w0,
            )
        ]

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [("costs.tier", cs.costs.tier)]

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        """A zero budget, the book's or a strategy's, cannot pay for a state's forced
        de-risking."""
        cfg: CostsConfig = cs.costs
        zero = ["costs.max_bps"] if cfg.max_bps == 0 else []
        zero += [f"costs.strategies.{s}" for s, cap in cfg.strategies.items() if cap == 0]
        return zero_cap_problems(cs, zero)
