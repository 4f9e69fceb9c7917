"""The three analysts: deterministic personas over feature arrays, and the protocol.

Each analyst proposes a log risk aversion for the portfolio (an offset from the set's
``base_risk_aversion``) and one per name with a decision, with a short rationale naming
the features that drove it. All three are increasing in every stress feature, and at
any stress Safe ≥ Neutral ≥ Risky. That order is what lets the judge lean on Safe
under stress without ever lowering γ. From the second round on each answers the
others' last proposals by moving part of the way toward them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from riskopt.optimizer.debate.features import Features
from riskopt.optimizer.debate.routing import NEUTRAL, RISKY, SAFE


@dataclass(frozen=True)
class Proposal:
    speaker: str
    log_gamma: float
    """Proposed log of the portfolio risk aversion, relative to the base (0 = base)."""
    log_gamma_i: np.ndarray
    """Proposed log of each name's risk-aversion multiplier (0 = neutral)."""
    rationale: str
    provenance: str = "rule"
    """``"rule"``, ``"model"`` or ``"fallback"``."""
    name_provenance: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))


class Analyst(Protocol):
    """Anything that argues: a deterministic persona or a language-model adapter."""

    @property
    def name(self) -> str: ...

    def propose(self, features: Features, others: dict[str, Proposal]) -> Proposal: ...


def portfolio_stress(f: Features) -> tuple[float, dict[str, float]]:
    """Non-negative stress score, increasing in every feature, with its parts."""
    parts = {
        "volatility regime": 1.5 * max(f.vol_regime - 1.0, 0.0),
        "drawdown": 1.0 * max(f.drawdown_ratio, 0.0),
        "state": 0.75 * f.state_level,
        "concentration": 0.3 * max(float(np.log(max(f.concentration, 1e-12))), 0.0),
        "liquidity stress": 0.15 * min(max(f.liquidity_stress, 0.0), 10.0),
        "gross utilization": 0.5 * max(f.gross_utilization - 0.8, 0.0),
    }
    return float(sum(parts.values())), parts


def name_stress(f: Features) -> np.ndarray:
    """Per-name stress, increasing in volatility, spread, %ADV, crowding and doubt."""
    sigma_ref = float(np.median(f.volatility)) if f.volatility.size else 0.3
    sigma_ref = sigma_ref if sigma_ref > 0 else 0.3
    return (
        0.8 * np.maximum(f.volatility / sigma_ref - 1.0, 0.0)
        + 0.01 * np.maximum(f.spread_bps, 0.0)
        + 1.0 * np.minimum(np.maximum(f.pct_adv, 0.0), 5.0)
        + 0.5 * np.clip(1.0 - f.confidence, 0.0, 1.0)
        + 1.0 * np.clip(f.crowding, 0.0, 1.0)
    )


def _drivers(parts: dict[str, float], k: int = 2) -> str:
    top = [name for name, value in sorted(parts.items(), key=lambda kv: -kv[1]) if value > 0][:k]
    return ", ".join(top) if top else "a calm book"


@dataclass(frozen=True)
class Persona:
    """A deterministic analyst: ``log γ = intercept + slope · stress``, answering the others."""

    name: str
    intercept: float
    slope: float
    name_slope: float
    give: float
    """Share of the gap to the others' mean proposal it concedes in later rounds."""
    stance: str

    def propose(self, features: Features, others: dict[str, Proposal]) -> Proposal:
        stress, parts = portfolio_stress(features)
        s_i = name_stress(features)
        log_gamma = self.intercept + self.slope * stress
        log_gamma_i = self.name_slope * s_i
        rationale = f"{self.stance}; driven by {_drivers(parts)} (stress {stress:.2f})"
        answered = [p for k, p in others.items() if k != self.name]
        if answered:
            mean = float(np.mean([p.log_gamma for p in answered]))
            mean_i = np.mean([p.log_gamma_i for p in answered], axis=0)
            log_gamma = log_gamma + self.give * (mean - log_gamma)
            log_gamma_i = log_gamma_i + self.give * (mean_i - log_gamma_i)
            rationale += (
                f"; answers the others' {np.exp(mean):.2f}× by moving {self.give:.0%} toward it"
            )
        return Proposal(
            speaker=self.name,
            log_gamma=float(log_gamma),
            log_gamma_i=np.asarray(log_gamma_i, dtype=float),
            rationale=rationale,
            provenance="rule",
            name_provenance=np.full(len(s_i), "rule", dtype=object),
        )


RISKY_ANALYST = Persona(
    RISKY,
    intercept=-0.7,
    slope=0.4,
    name_slope=0.2,
    give=0.15,
    stance="the proposals carry the alpha; keep risk aversion low",
)
SAFE_ANALYST = Persona(
    SAFE,
    intercept=0.4,
    slope=1.2,
    name_slope=0.6,
    give=0.10,
    stance="protect the book first; raise risk aversion with every sign of stress",
)
NEUTRAL_ANALYST = Persona(
    NEUTRAL,
    intercept=0.0,
    slope=0.8,
    name_slope=0.4,
    give=0.35,
    stance="weigh return against stress evenly",
)
DEFAULT_ANALYSTS: dict[str, Persona] = {
    RISKY: RISKY_ANALYST,
    SAFE: SAFE_ANALYST,
    NEUTRAL: NEUTRAL_ANALYST,
}
