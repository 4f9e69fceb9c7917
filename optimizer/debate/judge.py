"""The Risk Judge: combines the analysts' last proposals into ``γ`` and ``γ_i``.

Weights depend on the regime: as stress grows the judge leans from Risky toward Safe.
Because Safe ≥ Neutral ≥ Risky at any stress, that shift can only raise γ, so more
stress never lowers it. γ is clipped to the set's bounds and never below the state's
floor, so EMERGENCY never lowers it below ELEVATED's for the same book.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskopt.constraints.config import DebateConfig
from riskopt.optimizer.debate.analysts import Proposal, portfolio_stress
from riskopt.optimizer.debate.features import Features
from riskopt.optimizer.debate.routing import NEUTRAL, RISKY, SAFE


@dataclass(frozen=True)
class Verdict:
    gamma: float
    gamma_i: np.ndarray
    weights: dict[str, float]
    rationale: str


def judge_weights(stress: float) -> dict[str, float]:
    t = stress / (1.0 + stress)
    safe = 0.2 + 0.6 * t
    risky = 0.3 * (1.0 - t)
    return {RISKY: risky, SAFE: safe, NEUTRAL: 1.0 - safe - risky}


MAX_EXPONENT = 50.0
"""exp(50) is far beyond any bound of γ: larger log proposals cannot overflow."""


def decide(
    last: dict[str, Proposal], features: Features, cfg: DebateConfig, floor: float
) -> Verdict:
    stress, _ = portfolio_stress(features)
    weights = judge_weights(stress)
    log_gamma = sum(weights[k] * last[k].log_gamma for k in weights)
    log_gamma_i = sum(weights[k] * last[k].log_gamma_i for k in weights)
    # Clamped in log space first: a proposal beyond ±MAX_EXPONENT is at a bound anyway.
    raw = cfg.base_risk_aversion * float(np.exp(np.clip(log_gamma, -MAX_EXPONENT, MAX_EXPONENT)))
    gamma = float(np.clip(raw, cfg.min_risk_aversion, cfg.max_risk_aversion))
    gamma = max(gamma, floor)
    gamma_i = np.clip(
        np.exp(np.clip(np.asarray(log_gamma_i, dtype=float), -MAX_EXPONENT, MAX_EXPONENT)),
        cfg.min_name_risk_aversion,
        cfg.max_name_risk_aversion,
    )
    lean = max(weights, key=lambda k: weights[k])
    rationale = (
        f"γ = {gamma:.3g} (stress {stress:.2f}; weights Risky {weights[RISKY]:.0%}, Safe {weights[SAFE]:.0%}, "
        f"Neutral {weights[NEUTRAL]:.0%}; leaning {lean})"
        + (f"; state floor {floor:g}" if gamma == floor else "")
    )
    return Verdict(gamma=gamma, gamma_i=gamma_i, weights=weights, rationale=rationale)
