"""Ex-ante volatility cap from the factor model, scaled by the drawdown budget."""

from __future__ import annotations

import numpy as np

from riskopt.constraints.base import HardBound, Limit, ProgramData, VolatilityCap
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.drawdown import risk_budget_multiplier


class VolatilityLimit:
    name = "risk"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        """One cone: the set's cap (already × the state's multiplier) × m(d), applied once,
        or the calmer state's outcome where that is lower (it is not scaled again)."""
        if data.loadings is None or data.factor_cov is None or data.specific_var is None:
            return []
        cap = cs.risk.max_volatility
        m = risk_budget_multiplier(data.drawdown, cs.drawdown.budget, cs.drawdown.floor)
        own = None if cap is None else cap * m
        envelope = cs.envelope.volatility
        if own is None and envelope is None:
            return []
        if envelope is not None and (own is None or envelope < own):
            rhs = max(envelope, 1e-6)
            description = f"ex-ante volatility not above its {cs.envelope.source_state} outcome"
        else:
            rhs = float(own)  # type: ignore[arg-type]
            description = "ex-ante volatility cap" + _derivation(cs, cap, m)
        return [
            VolatilityCap(
                name="risk.max_volatility",
                family=self.name,
                rhs=np.array([rhs]),
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


def _derivation(cs: ConstraintSet, cap: float | None, m: float) -> str:
    """How the cap follows from the set: ``(10% × ELEVATED 0.80 × drawdown 0.47)``."""
    state = cs.states.sop(cs.active_state).volatility
    parts = [f"{100 * cap / state:.4g}%" if cap is not None else "?"]
    if state < 1:
        parts.append(f"{cs.active_state} {state:.2f}")
    if m < 1:
        parts.append(f"drawdown {m:.2f}")
    return f" ({' × '.join(parts)})" if len(parts) > 1 else ""
