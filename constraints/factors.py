"""Factor exposure bands: ``lower_k ≤ (Bᵀh)_k ≤ upper_k`` for each banded factor."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import HardBound, LinearLimit, ProgramData
from riskopt.constraints.config import ConstraintSet


class FactorBands:
    name = "factors"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
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

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        return []
