"""Per-name caps: ``|h_i| ≤ cap_i`` with per-ticker overrides (policy, name scope)."""

from __future__ import annotations

import numpy as np

from riskopt.constraints.base import NO_LIMIT, HardBound, LinearLimit, ProgramData
from riskopt.constraints.config import ConstraintSet


def name_caps(cs: ConstraintSet, data: ProgramData) -> np.ndarray:
    """Each name's cap under the set's position section: its override, else
    ``max_weight``, at most :data:`~riskopt.constraints.base.NO_LIMIT`."""
    cfg = cs.position
    default = cfg.max_weight if cfg.max_weight is not None else NO_LIMIT
    return np.minimum(data.by_name(cfg.overrides, default), NO_LIMIT)


class PositionCaps:
    name = "position"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        cfg = cs.position
        if cfg.max_weight is None and not cfg.overrides:
            return []
        cap = name_caps(cs, data)
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
