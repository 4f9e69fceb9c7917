"""Ex-ante volatility cap from the factor model, scaled by the drawdown budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from riskopt.constraints.base import Limit, ProgramData, VolatilityCap
from riskopt.constraints.drawdown import risk_budget_multiplier
from riskopt.constraints.family import BookNames, Family, Section, Tier, scale

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet, StateSOP


class RiskConfig(Section):
    """Ex-ante volatility cap from the factor model (a second-order cone)."""

    max_volatility: float | None = Field(None, gt=0, le=5.0)
    """Annualized, as a fraction: 0.25 is 25%. Above 5 (500%) it was given in percent."""
    tier: Tier = Field(2, ge=1)


class VolatilityLimit(Family):
    name = "risk"
    key = "risk"
    section = RiskConfig

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

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [("risk.tier", cs.risk.tier)]

    def book_problems(self, cs: ConstraintSet, book: BookNames) -> list[str]:
        if cs.risk.max_volatility is not None and not book.has_risk_model:
            return ["risk.max_volatility: the book has no risk model (loadings or returns)"]
        return []

    def tightened(self, raw: Any, sop: StateSOP) -> Any:
        """The cap shrinks by the state's ``volatility`` multiplier."""
        scale(raw, "max_volatility", sop.volatility)
        return raw


def _derivation(cs: ConstraintSet, cap: float | None, m: float) -> str:
    """How the cap follows from the set: ``(10% × ELEVATED 0.80 × drawdown 0.47)``."""
    state = cs.states.sop(cs.active_state).volatility
    parts = [f"{100 * cap / state:.4g}%" if cap is not None else "?"]
    if state < 1:
        parts.append(f"{cs.active_state} {state:.2f}")
    if m < 1:
        parts.append(f"drawdown {m:.2f}")
    return f" ({' × '.join(parts)})" if len(parts) > 1 else ""
