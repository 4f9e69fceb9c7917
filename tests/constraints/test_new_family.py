"""A family that reads a market column of its own needs its module and its registration
only: the column reaches it through ``ProgramData.columns``, and what it derives from the
book goes through ``Family.derive``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from riskopt.constraints import FAMILIES
from riskopt.constraints.base import Limit, LinearLimit, ProgramData
from riskopt.constraints.family import Family
from riskopt.optimizer import rebalance
from riskopt.optimizer.inputs import prepare
from tests.constraints.families.conftest import set_with
from tests.helpers import decisions, hand_book

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet

PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}
DECISIONS = decisions(
    [("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", 0.04), ("D3", "s1", "CCC", 0.04)]
)


class CarbonCap(Family):
    """``Σ carbon_i · |h_i| ≤ 0.05``: the book's carbon-weighted gross, from a market column
    the contract does not know."""

    name = "carbon"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        carbon = data.column("carbon")
        return [
            LinearLimit(
                name="carbon.max",
                family=self.name,
                transform="abs",
                rhs=np.array([0.05]),
                labels=("portfolio",),
                tier=2,
                scope="portfolio",
                description="carbon-weighted gross cap",
                A=sp.csr_matrix(carbon[None, :]),
            )
        ]


def test_a_further_market_column_reaches_the_families() -> None:
    book = hand_book(PRICES, columns={"carbon": {"AAA": 2.0, "BBB": 0.5, "CCC": 0.0}})
    data = prepare(book, DECISIONS, set_with()).data
    order = pd.Index(data.tickers).get_indexer(["AAA", "BBB", "CCC"])
    np.testing.assert_array_equal(data.column("carbon")[order], [2.0, 0.5, 0.0])
    assert "sector" not in data.columns  # the contract's columns keep their own fields
    with pytest.raises(KeyError, match=r"no column 'water'.*carbon"):
        data.column("water")


def test_a_registered_family_is_applied_with_no_other_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = hand_book(PRICES, columns={"carbon": {"AAA": 2.0, "BBB": 0.5, "CCC": 0.0}})
    monkeypatch.setattr("riskopt.optimizer.assemble.FAMILIES", (*FAMILIES, CarbonCap()))
    result = rebalance(book, DECISIONS, set_with(), risk_aversion=0.0, state="NORMAL")
    h = result.targets.loc[["AAA", "BBB", "CCC"], "solved_weight"].to_numpy()  # before lots
    assert 2.0 * abs(h[0]) + 0.5 * abs(h[1]) == pytest.approx(0.05, abs=1e-7)
    assert h[2] == pytest.approx(0.04, abs=1e-7)  # no carbon: untouched
    assert "carbon.max" in set(result.binding["constraint"])
    assert "carbon-weighted gross cap" in result.targets.loc["AAA", "risk_reasoning_summary"]
