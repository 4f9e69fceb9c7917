"""Book-level exposure: gross ``Σ|h|``, net ``Σh`` (band), long ``Σh⁺``, short ``Σh⁻``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from riskopt.constraints.base import Limit, LinearLimit, ProgramData, Transform
from riskopt.constraints.drawdown import risk_budget_multiplier
from riskopt.constraints.family import Family, Section, Tier, scale

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet, StateSOP


class MaxLimit(Section):
    max: float | None = Field(None, ge=0)
    tier: Tier = Field(1, ge=1)


class BandLimit(Section):
    min: float | None = None
    max: float | None = None
    tier: Tier = Field(1, ge=1)


class ExposureConfig(Section):
    """Gross ``Σ|h|``, net ``Σh``, long ``Σh⁺`` and short ``Σh⁻`` exposure (policy)."""

    gross: MaxLimit = MaxLimit(max=2.0)
    net: BandLimit = BandLimit(min=-0.5, max=0.5)
    long: MaxLimit = MaxLimit()
    short: MaxLimit = MaxLimit()


SIDES = ("gross", "net", "long", "short")


class ExposureLimits(Family):
    name = "exposure"
    key = "exposure"
    section = ExposureConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        ones = sp.csr_matrix(np.ones((1, data.n)))
        cfg = cs.exposure
        out: list[Limit] = []

        def add(
            key: str,
            transform: Transform,
            a: sp.csr_matrix,
            value: float,
            tier: int,
            description: str,
            sense: str = "max",
        ) -> None:
            out.append(
                LinearLimit(
                    name=f"exposure.{key}",
                    family=self.name,
                    transform=transform,
                    rhs=np.array([value if sense == "max" else -value]),
                    labels=("portfolio",),
                    tier=tier,
                    scope="portfolio",
                    description=description,
                    A=a,
                    sense="max" if sense == "max" else "min",
                )
            )

        if cfg.gross.max is not None:
            m = risk_budget_multiplier(data.drawdown, cs.drawdown.budget, cs.drawdown.floor)
            label = "gross exposure cap" + (f" (drawdown-scaled ×{m:.2f})" if m < 1 else "")
            add("gross.max", "abs", ones, cfg.gross.max * m, cfg.gross.tier, label)
        if cfg.net.max is not None:
            add("net.max", "id", ones, cfg.net.max, cfg.net.tier, "net exposure cap")
        if cfg.net.min is not None:
            add("net.min", "id", -ones, cfg.net.min, cfg.net.tier, "net exposure floor", "min")
        if cfg.long.max is not None:
            add("long.max", "pos", ones, cfg.long.max, cfg.long.tier, "long exposure cap")
        if cfg.short.max is not None:
            add("short.max", "neg", ones, cfg.short.max, cfg.short.tier, "short exposure cap")
        return out

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [(f"exposure.{side}.tier", getattr(cs.exposure, side).tier) for side in SIDES]

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        """Signs of the caps, the net band's order, and the band against gross, long and
        short."""
        problems: list[str] = []
        gross = cs.exposure.gross.max
        net = cs.exposure.net
        if gross is not None and gross < 0:
            problems.append(f"exposure.gross.max: must be >= 0, got {gross}")
        if net.min is not None and net.max is not None and net.min > net.max:
            problems.append(f"exposure.net: min {net.min} > max {net.max}")
        if gross is not None:
            for key, value in (("min", net.min), ("max", net.max)):
                if value is not None and abs(value) > gross:
                    problems.append(f"exposure.net.{key}: {value} lies outside ±gross ({gross})")
        for side in ("long", "short"):
            limit = getattr(cs.exposure, side).max
            if limit is not None and limit < 0:
                problems.append(f"exposure.{side}.max: must be >= 0, got {limit}")
        long_max, short_max = cs.exposure.long.max, cs.exposure.short.max
        if net.min is not None and long_max is not None and net.min > long_max:
            problems.append(f"exposure.net.min: {net.min} exceeds exposure.long.max ({long_max})")
        if net.max is not None and short_max is not None and -net.max > short_max:
            problems.append(
                f"exposure.net.max: {net.max} needs more short than exposure.short.max ({short_max})"
            )
        return problems

    def tightened(self, raw: Any, sop: StateSOP) -> Any:
        """Gross, long and short caps shrink by ``gross``; the net band by the smaller of
        ``net`` and ``gross``: it shrinks at least as much as the gross it must lie within."""
        for key in ("gross", "long", "short"):
            scale(raw[key], "max", sop.gross)
        net_m = min(sop.net, sop.gross)
        scale(raw["net"], "min", net_m)
        scale(raw["net"], "max", net_m)
        return raw
