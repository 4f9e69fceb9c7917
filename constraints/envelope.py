"""The calmer state's envelope: under a stricter state, exposures not above what the
calmer state reached on the same inputs (gross, |net|, per-name |w|; the volatility
family reads ``envelope.volatility``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from riskopt.constraints.base import NO_LIMIT, Limit, LinearLimit, ProgramData
from riskopt.constraints.family import Family, Section, Tier
from riskopt.constraints.position import name_caps

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


class EnvelopeConfig(Section):
    """The calmer state's outcome, which a stricter state may not exceed (set by the gate).

    Under ELEVATED the gate first solves the same inputs under NORMAL, and under
    EMERGENCY under ELEVATED; that outcome's gross, |net|, per-name |weight| and ex-ante
    volatility become tier-``tier`` limits here (the lowest), so exposures never increase
    from one state to the next whenever the stricter state can reach them.
    """

    source_state: str | None = None
    gross: float | None = Field(None, ge=0)
    abs_net: float | None = Field(None, ge=0)
    volatility: float | None = Field(None, ge=0)
    per_name: dict[str, float] = Field(default_factory=dict)
    tier: Tier = Field(4, ge=1)
    """The lowest tier by default: the state's own limits come first, and a small
    penalty keeps the many near-active rows well conditioned."""


class CalmerStateEnvelope(Family):
    """Limits from the calmer state's outcome: gross, |net|, per-name |w|, volatility."""

    name = "envelope"
    key = "envelope"
    section = EnvelopeConfig

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        env = cs.envelope
        if env.source_state is None or data.n == 0:
            return []
        source = env.source_state
        ones = sp.csr_matrix(np.ones((1, data.n)))
        out: list[Limit] = []

        def add(
            key: str,
            transform: str,
            rhs: np.ndarray,
            a: sp.csr_matrix | None,
            labels: tuple[str, ...],
            scope: str,
            what: str,
            sense: str = "max",
        ) -> None:
            out.append(
                LinearLimit(
                    name=f"state.envelope.{key}",
                    family=self.name,
                    transform=transform,  # type: ignore[arg-type]
                    rhs=rhs,
                    labels=labels,
                    tier=env.tier,
                    scope=scope,  # type: ignore[arg-type]
                    description=f"{cs.active_state}: {what} not above its {source} outcome",
                    A=a,
                    sense=sense,  # type: ignore[arg-type]
                )
            )

        # Rows already implied by the set's own caps are left out: duplicate active rows
        # make the program degenerate and interior-point solvers lose accuracy.
        gross_cap = cs.exposure.gross.max
        if env.gross is not None and (gross_cap is None or env.gross < gross_cap):
            add("gross", "abs", np.array([env.gross]), ones, ("portfolio",), "portfolio", "gross")
        if env.abs_net is not None:
            add("net", "id", np.array([env.abs_net]), ones, ("portfolio",), "portfolio", "net")
            add(
                "net_short",
                "id",
                np.array([env.abs_net]),
                sp.csr_matrix(-ones),
                ("portfolio",),
                "portfolio",
                "short net",
                "min",
            )
        if env.per_name:
            cap = data.by_name(env.per_name, NO_LIMIT)
            cap = np.where(cap < name_caps(cs, data) - 1e-12, cap, NO_LIMIT)
            add("per_name", "abs", cap, None, tuple(map(str, data.tickers)), "name", "position")
        return out

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [("envelope.tier", cs.envelope.tier)]
