"""The restricted list: names that may only be reduced, and names that must be closed."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import HardBound, LinearLimit, ProgramData
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.liquidity import reduce_only_bound


class RestrictedList:
    name = "restricted"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        rows = np.flatnonzero(data.named(cs.restricted.close))
        if not len(rows):
            return []
        a = sp.csr_matrix(
            (np.ones(len(rows)), (np.arange(len(rows)), rows)), shape=(len(rows), data.n)
        )
        return [
            LinearLimit(
                name="restricted.close",
                family=self.name,
                transform="abs",
                rhs=np.zeros(len(rows)),
                labels=tuple(str(data.tickers[i]) for i in rows),
                tier=cs.restricted.close_tier,
                scope="name",
                description="restricted: must close",
                A=a,
            )
        ]

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        mask = data.named([*cs.restricted.reduce_only, *cs.restricted.close])
        if not mask.any():
            return []
        return [reduce_only_bound("restricted.reduce_only", "restricted: reduce only", data, mask)]
