"""Turnover: ``Σ_i |h_i − h0_i| ≤ T`` for the book and ``Σ_{p∈s} |w_p − w0_p| ≤ T_s`` for
each strategy ``s`` over its own pairs (policy rows on the trade, not the weight).

```toml
[turnover]
max = 0.30            # the book's one-way turnover, a fraction of NAV
tier = 3
[turnover.strategies]
momentum = 0.10
```

States do not scale turnover: a stricter state must trade more, not less (de-risk only,
forced de-risking), and a smaller turnover cap would hold the book where it is.

The rows are ``|·|`` of the trade: :class:`LinearLimit` with ``transform="abs"`` and
``operand="trade"`` (``h − h0``, or ``w − w0`` for rows ``on="w"``). Until ``base.py`` and
the program carry that operand, :func:`trade_limit` builds a stand-in whose residual reads
the trade, and :meth:`TurnoverLimits.limits` refuses to hand rows to a program that would
read them as weights.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import scipy.sparse as sp
from pydantic import Field, field_validator

from riskopt.constraints.base import LinearLimit, ProgramData
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.family import Family, Section, Tier
from riskopt.constraints.sop import STATES

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet

TRADE_OPERAND = "operand" in {f.name for f in dataclasses.fields(LinearLimit)}
"""Whether :class:`LinearLimit` (and so the program) can state rows on the trade."""


class TurnoverConfig(Section):
    """One-way turnover caps in fractions of NAV: the book's ``max`` and each strategy's
    own, over its pairs; one tier for all."""

    max: float | None = Field(None, ge=0)
    tier: Tier = Field(3, ge=1)
    strategies: dict[str, float] = Field(default_factory=dict)

    @field_validator("strategies")
    @classmethod
    def _non_negative(cls, caps: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, v in caps.items() if v < 0)
        if bad:
            raise ValueError(f"caps must be >= 0: {', '.join(bad)}")
        return caps


@dataclasses.dataclass(frozen=True)
class _TradeRows(LinearLimit):
    """Stand-in for ``LinearLimit(operand="trade")``: rows on ``T(v − origin)``."""

    operand: str = "trade"
    origin: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    def lhs(self, h: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        v = h if self.on == "h" else w
        if v is None:
            raise ValueError(f"{self.name}: rows over pair weights need w")
        trade = np.abs(v - self.origin)
        return trade if self.A is None else np.asarray(self.A @ trade)


def trade_limit(origin: np.ndarray, **fields: Any) -> LinearLimit:
    """A ``|trade|`` block: ``LinearLimit(transform="abs", operand="trade", …)`` where
    the class has the operand, else the stand-in carrying ``origin`` (``h0`` or ``w0``)."""
    if TRADE_OPERAND:
        limit: LinearLimit = cast(Any, LinearLimit)(transform="abs", operand="trade", **fields)
        return limit
    return _TradeRows(transform="abs", origin=origin, **fields)


class TurnoverLimits(Family):
    name = "turnover"
    key = "turnover"
    section = TurnoverConfig

    def rows(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        """The book's row (over names) and one per strategy present (over its pairs)."""
        cfg: TurnoverConfig = self.own(cs)
        out: list[LinearLimit] = []
        if cfg.max is not None and data.n:
            out.append(
                trade_limit(
                    data.h0,
                    name="turnover.max",
                    family=self.name,
                    rhs=np.array([cfg.max]),
                    labels=("portfolio",),
                    tier=cfg.tier,
                    scope="portfolio",
                    description="book turnover cap",
                    A=sp.csr_matrix(np.ones((1, data.n))),
                )
            )
        present = sorted(set(map(str, data.pair_strategy)) & set(cfg.strategies))
        if present:
            row = {s: k for k, s in enumerate(present)}
            at = np.array([row.get(str(s), -1) for s in data.pair_strategy])
            cols = np.flatnonzero(at >= 0)
            out.append(
                trade_limit(
                    data.w0,
                    name="turnover.strategies",
                    family=self.name,
                    rhs=np.array([cfg.strategies[s] for s in present], dtype=float),
                    labels=tuple(present),
                    tier=cfg.tier,
                    scope="portfolio",
                    description="sleeve turnover cap",
                    A=sp.csr_matrix(
                        (np.ones(len(cols)), (at[cols], cols)), shape=(len(present), data.p)
                    ),
                    on="w",
                )
            )
        return out

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        rows = self.rows(cs, data)
        if rows and not TRADE_OPERAND:
            raise ConfigError(
                cs.name,
                ["turnover: limits on trades need LinearLimit's trade operand, not in this build"],
            )
        return rows

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        cfg: TurnoverConfig = self.own(cs)
        return [("turnover.tier", cfg.tier)]

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        """A zero book turnover cannot meet a state's forced de-risking, which must trade."""
        cfg: TurnoverConfig = self.own(cs)
        if cfg.max != 0:
            return []
        return [
            f"turnover.max: 0 forbids the forced de-risking of states.{state} "
            f"({sop.forced_derisk:g} of gross)"
            for state in STATES
            if (sop := cs.states.sop(state)).forced_derisk > 0
        ]
