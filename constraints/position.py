"""Per-name caps: ``|h_i| ≤ cap_i`` with per-ticker overrides (policy, name scope)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, model_validator

from riskopt.constraints.base import NO_LIMIT, Limit, LinearLimit, ProgramData
from riskopt.constraints.family import BookNames, Family, Section, Tier, not_in_book, scale

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet, StateSOP


class PositionConfig(Section):
    """Per-name cap on the absolute ticker weight ``|h_i|`` (policy)."""

    max_weight: float | None = Field(0.05, gt=0)
    tier: Tier = Field(2, ge=1)
    overrides: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _positive_overrides(self) -> PositionConfig:
        bad = [k for k, v in self.overrides.items() if not v >= 0]
        if bad:
            raise ValueError(f"overrides must be >= 0: {', '.join(bad)}")
        return self

    @model_validator(mode="after")
    def _fractions_of_nav(self) -> PositionConfig:
        """A per-name cap above 100% of NAV is a cap given in percent (``5`` for 5%),
        which would leave every name uncapped: refused, never guessed."""
        big = [f"max_weight = {self.max_weight:g}"] if (self.max_weight or 0) > 1 else []
        big += [f"overrides.{k} = {v:g}" for k, v in self.overrides.items() if v > 1]
        if big:
            raise ValueError(
                f"{', '.join(big)} is above 100% of NAV: weights are fractions of NAV "
                "(0.05 for 5%), not percent"
            )
        return self


def name_caps(cs: ConstraintSet, data: ProgramData) -> np.ndarray:
    """Each name's cap under the set's position section: its override, else
    ``max_weight``, at most :data:`~riskopt.constraints.base.NO_LIMIT`."""
    cfg = cs.position
    default = cfg.max_weight if cfg.max_weight is not None else NO_LIMIT
    return np.minimum(data.by_name(cfg.overrides, default), NO_LIMIT)


class PositionCaps(Family):
    name = "position"
    key = "position"
    section = PositionConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
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

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [("position.tier", cs.position.tier)]

    def book_warnings(self, cs: ConstraintSet, book: BookNames) -> list[str]:
        return not_in_book("position.overrides", cs.position.overrides, book.tickers, "tickers")

    def tightened(self, raw: Any, sop: StateSOP) -> Any:
        """The cap and every override shrink by the state's ``position`` multiplier."""
        scale(raw, "max_weight", sop.position)
        raw["overrides"] = {k: v * sop.position for k, v in raw["overrides"].items()}
        return raw
