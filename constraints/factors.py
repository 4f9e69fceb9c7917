"""Factor exposure bands: ``lower_k ≤ (Bᵀh)_k ≤ upper_k`` for each banded factor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from riskopt.constraints.base import Limit, LinearLimit, ProgramData
from riskopt.constraints.family import BookNames, Family, Section, Tier, not_in_book

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


class FactorsConfig(Section):
    """Exposure bands ``lower ≤ (Bᵀh)_k ≤ upper`` per factor of the risk model."""

    tier: Tier = Field(3, ge=1)
    bands: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> FactorsConfig:
        bad = [k for k, (lo, hi) in self.bands.items() if lo > hi]
        if bad:
            raise ValueError(f"band lower above upper: {', '.join(sorted(bad))}")
        return self


class FactorBands(Family):
    """Factor bands; states do not scale them (a band is not a cap toward zero)."""

    name = "factors"
    key = "factors"
    section = FactorsConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        bands = cs.factors.bands
        if not bands or data.loadings is None:
            return []
        names = [f for f in data.factors if f in bands]
        if not names:
            return []
        cols = [data.factors.index(f) for f in names]
        a = sp.csr_matrix(data.loadings[:, cols].T)
        lower = np.array([bands[f][0] for f in names])
        upper = np.array([bands[f][1] for f in names])
        return [
            LinearLimit(
                name=name,
                family=self.name,
                transform="id",
                rhs=rhs,
                labels=tuple(names),
                tier=cs.factors.tier,
                scope="portfolio",
                description=text,
                A=matrix,
                sense=sense,  # type: ignore[arg-type]
            )
            for name, rhs, matrix, sense, text in (
                ("factors.upper", upper, a, "max", "factor exposure cap"),
                ("factors.lower", -lower, sp.csr_matrix(-a), "min", "factor exposure floor"),
            )
        ]

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [("factors.tier", cs.factors.tier)]

    def book_problems(self, cs: ConstraintSet, book: BookNames) -> list[str]:
        problems = not_in_book("factors.bands", cs.factors.bands, book.factors, "factors")
        if cs.factors.bands and not book.has_risk_model:
            problems.append("factors.bands: the book has no risk model (loadings or returns)")
        return problems
