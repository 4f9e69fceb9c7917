"""The base of a constraint family: everything a family states about itself, with defaults.

A family is one module of ``constraints/``: its config section model (a :class:`Section`
stored on the ``ConstraintSet`` under :attr:`Family.key`), the limits and hard bounds it
adds to the program, the dotted keys of its tier settings, the contradictions between
its settings, the names it needs the book to have, what it derives from the book's
numbers (its own market columns arrive in ``ProgramData.columns``), and how a black-swan
state scales it.
``config.py`` and ``states.py`` loop over the registered families
(:data:`riskopt.constraints.registry.FAMILIES`); a family that has nothing to say about
one of these keeps the default here (no rows, no tiers, no problems, unchanged).

Family modules import ``ConstraintSet`` under ``TYPE_CHECKING`` only: ``config.py`` builds
it from their section models, so it cannot be imported while they load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict

from riskopt.constraints.base import HardBound, Limit, ProgramData

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet, StateSOP

Tier = int
STATES = ("NORMAL", "ELEVATED", "EMERGENCY")
"""The black-swan states, calmest first."""
"""A priority tier: 1 is the highest, the last to give way."""


class Section(BaseModel):
    """A table of a constraint set: unknown keys are errors, values finite and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass(frozen=True)
class BookNames:
    """The groups, factors and tickers one book has, against which a set's names are
    checked (:meth:`Family.book_problems`, :meth:`Family.book_warnings`)."""

    sectors: set[str]
    countries: set[str]
    clusters: set[str]
    factors: set[str]
    has_risk_model: bool
    tickers: set[str]


def scale(section: dict[str, Any], key: str, m: float) -> None:
    """Multiply ``section[key]`` by ``m`` in place where it is set (``None`` is no limit)."""
    if section.get(key) is not None:
        section[key] = section[key] * m


def not_in_book(key: str, names: Any, known: set[str], what: str) -> list[str]:
    """``key: <what> not in the book: …`` for the names the book lacks (at most ten named)."""
    missing = sorted(set(names) - known)
    if not missing:
        return []
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return [f"{key}: {what} not in the book: {', '.join(missing[:10])}{more}"]


def strategy_rows(data: ProgramData, named: Any) -> tuple[list[str], sp.csr_matrix]:
    """The strategies of ``named`` the book has, sorted, and a row per strategy summing
    its own pairs (``len × P``)."""
    names, codes = data.strategy_codes
    wanted = set(named)
    present = [name for name in names if name in wanted]  # sorted, as ``names`` are
    position = np.full(len(names) + 1, -1)
    position[[k for k, name in enumerate(names) if name in wanted]] = np.arange(len(present))
    row = position[codes]
    pairs = np.flatnonzero(row >= 0)
    a = sp.csr_matrix((np.ones(len(pairs)), (row[pairs], pairs)), shape=(len(present), data.p))
    return present, a


def zero_cap_problems(cs: ConstraintSet, keys: list[str]) -> list[str]:
    """``KEY: 0 forbids the forced de-risking of states.S`` for each zero cap on what a
    rebalance trades, against each state that must trade to de-risk."""
    return [
        f"{key}: 0 forbids the forced de-risking of states.{state} ({sop.forced_derisk:g} of gross)"
        for key in keys
        for state in STATES
        if (sop := cs.states.sop(state)).forced_derisk > 0
    ]


class Family:
    """One constraint family. Subclasses set :attr:`name` and, where the family has a
    config section of its own, :attr:`key` and :attr:`section`; every method has a
    default that adds nothing."""

    name: ClassVar[str]
    """The family's name in each :class:`LinearLimit` it writes (``limit.family``)."""
    key: ClassVar[str | None] = None
    """The ``ConstraintSet`` attribute (and TOML table) of its section; ``None``: the
    family reads other sections only."""
    section: ClassVar[Any] = None
    """The section's type: a :class:`Section` model (its default is ``section()``)."""

    def field(self) -> tuple[Any, Any]:
        """The section's ``(annotation, default)`` for the ``ConstraintSet`` model."""
        return self.section, self.section()

    def own(self, cs: ConstraintSet) -> Any:
        """The family's section of ``cs``, for a family whose section the ``ConstraintSet``
        declaration for mypy does not name (the caller annotates its type)."""
        return getattr(cs, str(self.key))

    def derive(
        self, cs: ConstraintSet, data: ProgramData, returns: pd.DataFrame | None
    ) -> tuple[ProgramData, list[str]]:
        """The book's numbers with what the family derives from them before its limits are
        built (clusters from returns, say), and warnings of what it could not derive;
        unchanged by default. ``returns`` is the book's daily returns, up to ``as_of``."""
        return data, []

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        """Policy rows ``A · T(h) ≤ b`` of this rebalance."""
        return []

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        """Hard boxes on the weights of this rebalance."""
        return []

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        """Each tier setting of the family: ``(dotted TOML key, tier)``."""
        return []

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        """Contradictions between the family's settings (and the set's), each named by
        its TOML key."""
        return []

    def book_problems(self, cs: ConstraintSet, book: BookNames) -> list[str]:
        """Names the family's settings give that the book lacks, where a typo would
        silently switch a limit off: errors."""
        return []

    def book_warnings(self, cs: ConstraintSet, book: BookNames) -> list[str]:
        """Names the family's settings give that the book lacks, where a firm-wide list
        simply names more than one book holds: warnings."""
        return []

    def tightened(self, raw: Any, sop: StateSOP) -> Any:
        """The section (as ``model_dump`` gives it) under a state's SOP; unchanged by
        default. Scaling may only ever tighten."""
        return raw
