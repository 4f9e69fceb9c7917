"""The program's numbers for one book: limits and boxes from every constraint family,
tracking, risk and cost weights, and the risk aversion the run uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from riskopt.constraints import FAMILIES
from riskopt.constraints.base import NO_LIMIT, HardBound, Limit, ProgramData
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.costs import cost_model
from riskopt.constraints.states import ResolvedState
from riskopt.data.book import Book
from riskopt.data.errors import ValidationError
from riskopt.optimizer.debate import DebateResult, compute_features, run_debate

RISKLESS = 1e-12
"""A proposal whose variance is below this share of its squared size has no risk to
scale the risk term by (a volatility under 1e-6)."""

NameGamma = float | Mapping[str, float] | np.ndarray | None


class Box(NamedTuple):
    """The hard limits as boxes: per ticker (``lo``, ``hi``) and per pair."""

    lo: np.ndarray
    hi: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray

    def holds(self, h: np.ndarray, w: np.ndarray) -> bool:
        """Whether ``h`` and ``w`` lie in the boxes, to the last bit."""
        return bool(
            np.all(self.lo <= h)
            and np.all(h <= self.hi)
            and np.all(self.w_lo <= w)
            and np.all(w <= self.w_hi)
        )


class RiskAversion(NamedTuple):
    """The run's ``γ``, the per-name ``γ_i``, and the debate that set them (if any)."""

    gamma: float
    gamma_i: np.ndarray
    debate: DebateResult | None


@dataclass(frozen=True)
class Assembled:
    """One book's program: policy rows, hard bounds and boxes, and the objective's weights."""

    data: ProgramData
    cs: ConstraintSet
    limits: list[Limit]
    bounds: list[HardBound]
    box: Box
    c: np.ndarray
    """Tracking weights."""
    risk_scale: float
    kappa: np.ndarray
    """Cost weights: each name's cost per unit traded."""
    rho: list[float]
    """Each policy row's penalty on its slack."""
    aversion: RiskAversion
    impact: np.ndarray | None = None
    """Each name's market-impact coefficient ``λ`` in the objective (``None``: none)."""

    @property
    def costs(self) -> bool:
        """Whether the objective charges trading costs."""
        return self.cs.objective.costs

    @property
    def has_impact(self) -> bool:
        """Whether the objective charges market impact ``λ |h − h0|^{3/2}``."""
        return self.impact is not None and bool(self.impact.any())


def check_gamma(value: float) -> float:
    """``value`` as a finite risk aversion ≥ 0; anything else is a ``ValidationError``."""
    try:
        gamma = float(value)
    except (TypeError, ValueError):
        raise ValidationError("risk_aversion", [f"not a number: {value!r}"]) from None
    if not np.isfinite(gamma) or gamma < 0:
        raise ValidationError("risk_aversion", [f"must be a finite number >= 0, got {value!r}"])
    return gamma


def name_gamma(value: NameGamma, data: ProgramData) -> np.ndarray:
    """Per-name multipliers ``γ_i`` on the program's names (scalar, mapping or array)."""
    if value is None:
        return np.ones(data.n)
    if isinstance(value, Mapping):
        arr = data.by_name(value, 1.0)
    elif np.isscalar(value):
        arr = np.full(data.n, float(value))  # type: ignore[arg-type]
    else:
        arr = np.asarray(value, dtype=float)
        if arr.shape != (data.n,):
            raise ValidationError(
                "name_risk_aversion", [f"expected {data.n} values, got shape {arr.shape}"]
            )
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValidationError("name_risk_aversion", ["values must be finite and >= 0"])
    return arr


def choose_risk_aversion(
    book: Book,
    data: ProgramData,
    cs: ConstraintSet,
    resolved: ResolvedState,
    user_gamma: float | None,
    name_risk_aversion: NameGamma,
) -> RiskAversion:
    """The caller's ``γ`` raised to the state's floor, or the risk debate's; the per-name
    ``γ_i`` as given, else the debate's, else 1."""
    debate: DebateResult | None = None
    if user_gamma is None:
        debate = run_debate(
            compute_features(book, data, cs, resolved.state),
            cs.debate,
            floor=resolved.sop.risk_aversion_floor,
        )
        gamma = debate.gamma
    else:
        gamma = max(user_gamma, resolved.sop.risk_aversion_floor)
    if name_risk_aversion is None and debate is not None:
        gamma_i = debate.gamma_i.to_numpy(dtype=float)
    else:
        gamma_i = name_gamma(name_risk_aversion, data)
    return RiskAversion(gamma, gamma_i, debate)


def assemble(data: ProgramData, cs: ConstraintSet, aversion: RiskAversion) -> Assembled:
    """Every family's policy rows and hard bounds, the boxes they make, and the
    objective's tracking, risk and cost weights."""
    limits: list[Limit] = []
    bounds: list[HardBound] = []
    for family in FAMILIES:
        limits.extend(family.limits(cs, data))
        bounds.extend(family.bounds(cs, data))
    lo, hi = hard_box(data, bounds)
    w_lo, w_hi = pair_box(data, bounds)
    c = tracking_weights(data, cs)
    rho = [
        cs.preference_penalty if limit.preference else cs.tier_penalty(limit.tier)
        for limit in limits
    ]
    return Assembled(
        data=data,
        cs=cs,
        limits=limits,
        bounds=bounds,
        box=Box(lo, hi, w_lo, w_hi),
        c=c,
        risk_scale=risk_scale(data, c, aversion.gamma_i),
        kappa=cost_weights(data, cs),
        rho=rho,
        aversion=aversion,
        impact=cost_model(cs, data)[1] if cs.objective.costs else None,
    )


def hard_box(data: ProgramData, bounds: list[HardBound]) -> tuple[np.ndarray, np.ndarray]:
    """Intersection of every hard box; each contains h0, so the result does too."""
    lo = np.full(data.n, -np.inf)
    hi = np.full(data.n, np.inf)
    for b in bounds:
        lo = np.maximum(lo, b.lo)
        hi = np.minimum(hi, b.hi)
    # Unbounded sides get a finite, harmless bound (1000% of NAV) for the solver.
    lo = np.minimum(np.maximum(lo, -10.0), data.h0)
    hi = np.maximum(np.minimum(hi, 10.0), data.h0)
    return lo, hi


def pair_box(data: ProgramData, bounds: list[HardBound]) -> tuple[np.ndarray, np.ndarray]:
    """Intersection of every per-pair box (each contains ``w0``), finite for the solver."""
    lo = np.full(data.p, -NO_LIMIT)
    hi = np.full(data.p, NO_LIMIT)
    for b in bounds:
        if b.pair_lo is not None and b.pair_hi is not None:
            lo = np.maximum(lo, b.pair_lo)
            hi = np.minimum(hi, b.pair_hi)
    return np.minimum(lo, data.w0), np.maximum(hi, data.w0)


def risk_scale(data: ProgramData, c: np.ndarray, gamma_i: np.ndarray) -> float:
    """``T / V``: the proposal's tracking size ``Σ c w̃²`` over its risk at ``h̃``.

    Scaling the risk term by it gives ``γ`` one meaning whatever the book's size or number
    of names: along the proposal's direction, tracking and risk trade one for one, so with
    no limit binding (and equal specific risks, no factors, ``c = 1``) the gate returns
    ``h̃ / (1 + γ)``. A proposal with (almost) no risk has nothing to scale: 0.
    """
    if data.specific_var is None:
        return 0.0
    h = data.h_tilde
    variance = float(np.sum(gamma_i * data.specific_var * h * h))
    if data.loadings is not None and data.factor_cov is not None:
        f = data.loadings.T @ h
        variance += float(f @ data.factor_cov @ f)
    tracking = float(np.sum(c * data.w_tilde * data.w_tilde))
    return tracking / variance if variance > RISKLESS * tracking else 0.0


def tracking_weights(data: ProgramData, cs: ConstraintSet) -> np.ndarray:
    """Each pair's weight in the tracking term: its confidence (floored), or the hold
    weight for a pair without a decision."""
    conf = np.maximum(data.confidence, cs.objective.confidence_floor)
    return np.where(data.has_decision, conf, cs.objective.hold_weight)


def cost_weights(data: ProgramData, cs: ConstraintSet) -> np.ndarray:
    """Each name's cost per unit of weight traded (half spread plus commission), or zero
    without costs."""
    if not cs.objective.costs:
        return np.zeros(data.n)
    return cost_model(cs, data)[0]
