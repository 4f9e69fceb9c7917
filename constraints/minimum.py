"""Minimum sizes: no dust trade, no tail of tiny holdings, at most so many names.

```toml
[minimum]
trade = 0.0005          # a name's trade |h − h0| is 0 or at least this (weight) ...
trade_notional = 50000  # ... or at least this much currency (NAV is the book's)
holding = 0.001         # a name's final weight is 0 or at least this in size
holding_notional = 0    # ... or at least this much currency
max_names = 40          # at most this many names with a non-zero final weight
rounds = 5              # re-solves at most (each fixes more names)
```

These limits are not convex, so they are not rows of the program (this family adds no
limit and no bound): ``optimizer/minimum.py`` applies them as a stage after the solve,
fixing the names that break them and solving the rest again (README, "Minimum sizes").
A trade that closes a position is always allowed, however small. States do not scale
them: a state's de-risking must not be held back by a larger minimum trade.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from pydantic import Field, StrictInt

from riskopt.constraints.family import Family, Section

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet


class MinimumConfig(Section):
    """Minimum trade and holding sizes (weight, or currency), and the most names held."""

    trade: float | None = Field(None, ge=0)
    trade_notional: float | None = Field(None, ge=0)
    holding: float | None = Field(None, ge=0)
    holding_notional: float | None = Field(None, ge=0)
    max_names: StrictInt | None = Field(None, ge=1)
    rounds: StrictInt = Field(5, ge=1, le=50)
    """Re-solves at most: each round fixes the names the last solve left breaking a
    minimum, so the stage ends after at most this many solves beyond the first."""


class Minimums(NamedTuple):
    """The minimums of one book, in weight (0: no minimum; ``max_names`` ``None``: none)."""

    trade: float
    holding: float
    max_names: int | None
    rounds: int

    @property
    def active(self) -> bool:
        """Whether any minimum applies."""
        return self.trade > 0 or self.holding > 0 or self.max_names is not None


def minimums(cs: ConstraintSet, nav: float) -> Minimums:
    """The set's minimums in weight for a book of ``nav``: a currency minimum is divided
    by NAV, and where both are given the larger applies."""
    cfg: MinimumConfig = MinimumSizes().own(cs)

    def larger(weight: float | None, notional: float | None) -> float:
        return max(weight or 0.0, (notional or 0.0) / nav)

    return Minimums(
        trade=larger(cfg.trade, cfg.trade_notional),
        holding=larger(cfg.holding, cfg.holding_notional),
        max_names=cfg.max_names,
        rounds=cfg.rounds,
    )


class MinimumSizes(Family):
    """The ``[minimum]`` section; applied after the solve, never as rows of the program."""

    name = "minimum"
    key = "minimum"
    section = MinimumConfig

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        """A minimum holding above the largest position a name may take leaves no
        holding at all: said, since every name would be closed."""
        cfg: MinimumConfig = self.own(cs)
        cap = cs.position.max_weight
        largest = max([cap or 0.0, *cs.position.overrides.values()])
        if cfg.holding is not None and cap is not None and cfg.holding > largest:
            return [
                f"minimum.holding: {cfg.holding:g} is above position.max_weight ({cap:g}): "
                "every name would be closed"
            ]
        return []
