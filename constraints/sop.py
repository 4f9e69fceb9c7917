"""The SOP's own limits under the active black-swan state: forced de-risking (a policy
row), de-risk only and no new positions (hard boxes).

The SOPs themselves are the set's ``[states]`` section (:class:`~riskopt.constraints.config.StatesConfig`);
how a state is resolved and how it scales the other families is :mod:`.states`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import HardBound, Limit, LinearLimit, ProgramData, toward_zero_box
from riskopt.constraints.family import STATES, Family
from riskopt.constraints.liquidity import reduce_only_bound

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


class StateRestrictions(Family):
    """The SOP's own limits: no new positions, de-risk only, forced de-risking."""

    name = "state"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        sop = cs.states.sop(cs.active_state)
        if sop.forced_derisk <= 0 or data.n == 0:
            return []
        current_gross = float(np.abs(data.h0).sum())
        return [
            LinearLimit(
                name="state.forced_derisk",
                family=self.name,
                transform="abs",
                rhs=np.array([(1.0 - sop.forced_derisk) * current_gross]),
                labels=("portfolio",),
                tier=sop.forced_derisk_tier,
                scope="portfolio",
                description=f"{cs.active_state} forced de-risking (gross −{sop.forced_derisk:.0%})",
                A=sp.csr_matrix(np.ones((1, data.n))),
            )
        ]

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        """De-risk-only and no-new-positions, each held by every (strategy, ticker) pair:
        one sleeve may not open or grow what another's total would hide."""
        sop = cs.states.sop(cs.active_state)
        out = []
        toward_zero = toward_zero_box(data.w0)
        if sop.derisk_only:
            every = np.ones(data.n, dtype=bool)
            out.append(
                reduce_only_bound(
                    "state.derisk_only", f"{cs.active_state}: de-risk only", data, every
                )
            )
        if sop.no_new_positions:
            # A pair keeps its sign: a held one may grow, an empty one stays empty.
            lo, hi = toward_zero
            out.append(
                HardBound.on_pairs(
                    "state.no_new_positions",
                    f"{cs.active_state}: no new positions",
                    data,
                    np.where(data.w0 < 0, -np.inf, lo),
                    np.where(data.w0 > 0, np.inf, hi),
                )
            )
        return out

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [
            (f"states.{state}.forced_derisk_tier", cs.states.sop(state).forced_derisk_tier)
            for state in STATES
        ]
