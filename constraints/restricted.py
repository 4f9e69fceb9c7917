"""The restricted list: names that may only be reduced, and names that must be closed."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from constraints.base import HardBound, LinearLimit, ProgramData
from constraints.config import ConstraintSet
from constraints.liquidity import reduce_only_box


class RestrictedList:
    name = "restricted"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        close = set(cs.restricted.close)
        rows = [i for i, t in enumerate(data.tickers) if str(t) in close]
        if not rows:
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
        names = set(cs.restricted.reduce_only) | set(cs.restricted.close)
        mask = np.array([str(t) in names for t in data.tickers], dtype=bool)
        if not mask.any():
            return []
        lo, hi = reduce_only_box(data, mask)
        return [
            HardBound(
                name="restricted.reduce_only", description="restricted: reduce only", lo=lo, hi=hi
            )
        ]
