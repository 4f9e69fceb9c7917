"""The restricted list: names that may only be reduced, and names that must be closed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from riskopt.constraints.base import HardBound, Limit, LinearLimit, ProgramData
from riskopt.constraints.family import BookNames, Family, Section, Tier, not_in_book
from riskopt.constraints.liquidity import reduce_only_bound

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


class RestrictedConfig(Section):
    """Restricted names: ``reduce_only`` may only shrink (hard); ``close`` must go to zero
    as fast as the trade limit allows (hard reduce-only plus a tier-``close_tier`` cap of 0)."""

    reduce_only: list[str] = Field(default_factory=list)
    close: list[str] = Field(default_factory=list)
    close_tier: Tier = Field(1, ge=1)


class RestrictedList(Family):
    name = "restricted"
    key = "restricted"
    section = RestrictedConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
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

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [("restricted.close_tier", cs.restricted.close_tier)]

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        both = sorted(set(cs.restricted.reduce_only) & set(cs.restricted.close))
        if both:
            return [f"restricted: listed as both reduce_only and close: {', '.join(both)}"]
        return []

    def book_warnings(self, cs: ConstraintSet, book: BookNames) -> list[str]:
        return [
            warning
            for key, names in (
                ("restricted.reduce_only", cs.restricted.reduce_only),
                ("restricted.close", cs.restricted.close),
            )
            for warning in not_in_book(key, names, book.tickers, "tickers")
        ]
