"""Per-strategy sleeve budgets over each strategy's own pairs (``w``, not the netted ``h``).

Decisions of several strategies on one ticker are netted at the ticker level for
execution; a sleeve's budget counts its own pairs only. With ``drawdown.strategy_budget``
each sleeve's gross budget is scaled by that strategy's own Grossman–Zhou multiplier.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import HardBound, LinearLimit, ProgramData
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.drawdown import risk_budget_multiplier


class SleeveBudgets:
    name = "strategies"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        present = sorted(set(map(str, data.pair_strategy)) & set(cs.strategies))
        if not present:
            return []
        index = {s: k for k, s in enumerate(present)}
        rows = np.array([index.get(str(s), -1) for s in data.pair_strategy])
        cols = np.flatnonzero(rows >= 0)
        a_all = sp.csr_matrix(
            (np.ones(len(cols)), (rows[cols], cols)), shape=(len(present), data.p)
        )
        out: list[LinearLimit] = []
        for key, attr, transform, sense in (
            ("gross", "max_gross", "abs", "max"),
            ("net", "max_net", "id", "max"),
            ("net_floor", "min_net", "id", "min"),
        ):
            chosen = [s for s in present if getattr(cs.strategies[s], attr) is not None]
            if not chosen:
                continue
            sel = [index[s] for s in chosen]
            a = a_all[sel]
            values = np.array([getattr(cs.strategies[s], attr) for s in chosen], dtype=float)
            if key == "gross":
                m = np.array(
                    [
                        risk_budget_multiplier(
                            data.strategy_drawdown.get(s),
                            cs.drawdown.strategy_budget,
                            cs.drawdown.floor,
                        )
                        for s in chosen
                    ]
                )
                values = values * m
            if sense == "min":
                a, values = -a, -values
            tiers = {cs.strategies[s].tier for s in chosen}
            out.append(
                LinearLimit(
                    name=f"strategies.{key}",
                    family=self.name,
                    transform=transform,  # type: ignore[arg-type]
                    rhs=values,
                    labels=tuple(chosen),
                    tier=min(tiers),
                    scope="portfolio",
                    description={
                        "gross": "sleeve gross budget",
                        "net": "sleeve net cap",
                        "net_floor": "sleeve net floor",
                    }[key],
                    A=sp.csr_matrix(a),
                    sense=sense,  # type: ignore[arg-type]
                    on="w",
                )
            )
        return out

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        return []
