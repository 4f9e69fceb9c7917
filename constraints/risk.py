"""Ex-ante volatility cap from the factor model, scaled by the drawdown budget."""

from __future__ import annotations

import numpy as np

from constraints.base import HardBound, LinearLimit, ProgramData, VolatilityCap
from constraints.config import ConstraintSet
from constraints.drawdown import risk_budget_multiplier


class VolatilityLimit:
    name = "risk"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        cap = cs.risk.max_volatility
        if (
            cap is None
            or data.loadings is None
            or data.factor_cov is None
            or data.specific_var is None
        ):
            return []
        m = risk_budget_multiplier(data.drawdown, cs.drawdown.budget, cs.drawdown.floor)
        description = "ex-ante volatility cap" + (f" (drawdown-scaled ×{m:.2f})" if m < 1 else "")
        return [
            VolatilityCap(
                name="risk.max_volatility",
                family=self.name,
                transform="vol",
                rhs=np.array([cap * m]),
                labels=("portfolio",),
                tier=cs.risk.tier,
                scope="portfolio",
                description=description,
                loadings=data.loadings,
                factor_cov=data.factor_cov,
                specific_var=data.specific_var,
            )
        ]

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        return []
