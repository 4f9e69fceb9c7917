"""Per-strategy sleeve budgets over each strategy's own pairs (``w``, not the netted ``h``).

Decisions of several strategies on one ticker are netted at the ticker level for
execution; a sleeve's budget counts its own pairs only. With ``drawdown.strategy_budget``
each sleeve's gross budget is scaled by that strategy's own Grossman–Zhou multiplier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from riskopt.constraints.base import Limit, LinearLimit, ProgramData
from riskopt.constraints.drawdown import risk_budget_multiplier
from riskopt.constraints.family import Family, Section, Tier, scale, strategy_rows

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet, StateSOP


class StrategyBudget(Section):
    """A strategy sleeve's own budget, over its pairs: ``Σ|w|`` and ``Σw``."""

    max_gross: float | None = Field(None, ge=0)
    min_net: float | None = None
    max_net: float | None = None
    tier: Tier = Field(2, ge=1)
    only_trim: bool | None = None
    """``false``: this sleeve is a hedging overlay the gate may open, flip or extend
    (unset: the book's ``[trading] only_trim``)."""


class SleeveBudgets(Family):
    """Sleeve budgets; the section is a table of strategies, ``[strategies.NAME]``."""

    name = "strategies"
    key = "strategies"
    section = dict[str, StrategyBudget]

    def field(self) -> tuple[Any, Any]:
        return self.section, Field(default_factory=dict)

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        present, a_all = strategy_rows(data, cs.strategies)
        if not present:
            return []
        index = {s: k for k, s in enumerate(present)}
        out: list[Limit] = []
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

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [(f"strategies.{k}.tier", v.tier) for k, v in cs.strategies.items()]

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        """Each budget's net band in order and within its own gross, and its gross within
        the book's."""
        problems: list[str] = []
        gross = cs.exposure.gross.max
        for name, budget in cs.strategies.items():
            key = f"strategies.{name}"
            if (
                budget.min_net is not None
                and budget.max_net is not None
                and budget.min_net > budget.max_net
            ):
                problems.append(f"{key}: min_net {budget.min_net} > max_net {budget.max_net}")
            if budget.max_gross is not None and gross is not None and budget.max_gross > gross:
                problems.append(
                    f"{key}.max_gross: {budget.max_gross} is above the book's "
                    f"exposure.gross.max ({gross})"
                )
            if budget.max_gross is not None:
                for side, value in (("min_net", budget.min_net), ("max_net", budget.max_net)):
                    if value is not None and abs(value) > budget.max_gross:
                        problems.append(
                            f"{key}.{side}: {value} lies outside ±max_gross ({budget.max_gross})"
                        )
        return problems

    def tightened(self, raw: Any, sop: StateSOP) -> Any:
        """Every budget (gross and the net band) shrinks by the state's ``strategies``."""
        for budget in raw.values():
            for key in ("max_gross", "min_net", "max_net"):
                scale(budget, key, sop.strategies)
        return raw
