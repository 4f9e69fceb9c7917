"""Per-name caps: ``|h_i| ≤ cap_i`` with per-ticker overrides (policy, name scope)."""

from __future__ import annotations

import numpy as np

from constraints.base import HardBound, LinearLimit, ProgramData
from constraints.config import ConstraintSet


class PositionCaps:
    name = "position"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        cfg = cs.position
        if cfg.max_weight is None and not cfg.overrides:
            return []
        cap = np.full(data.n, cfg.max_weight if cfg.max_weight is not None else np.inf)
        if cfg.overrides:
            cap = data.by_name(cfg.overrides, cap)
        cap = np.minimum(cap, 10.0)
        return [
            LinearLimit(
                name="position.max_weight",
                family=self.name,
                transform="abs",
                rhs=cap,
                labels=tuple(map(str, data.tickers)),
                tier=cfg.tier,
                scope="name",
                description="per-name cap",
            )
        ]

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        return []
