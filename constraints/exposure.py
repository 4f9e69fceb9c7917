"""Book-level exposure: gross ``Σ|h|``, net ``Σh`` (band), long ``Σh⁺``, short ``Σh⁻``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import HardBound, LinearLimit, ProgramData, Transform
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.drawdown import risk_budget_multiplier


class ExposureLimits:
    name = "exposure"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        ones = sp.csr_matrix(np.ones((1, data.n)))
        cfg = cs.exposure
        out: list[LinearLimit] = []

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

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        return []
