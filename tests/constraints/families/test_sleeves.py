"""Sleeve budgets over each strategy's own pairs: ``Σ|w|`` and the band on ``Σw``."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.sleeves import SleeveBudgets
from tests.constraints.families.conftest import set_with

W = np.array([0.06, 0.03, -0.02, 0.03, 0.02])
"""s1 (pairs 0, 1, 4): gross 0.11, net 0.11; s2 (pairs 2, 3): gross 0.05, net 0.01."""


def test_rows_over_pairs_and_residuals(data: ProgramData) -> None:
    cs = set_with(
        strategies={
            "s1": {"max_gross": 0.1, "min_net": -0.05, "max_net": 0.08},
            "s2": {"max_gross": 0.04, "tier": 1},
            "absent": {"max_gross": 0.01},
        }
    )
    gross, net, floor = SleeveBudgets().limits(cs, data)
    assert gross.on == "w" and gross.labels == ("s1", "s2") and gross.tier == 1
    assert gross.A is not None
    assert gross.A.toarray() == pytest.approx(np.array([[1, 1, 0, 0, 1], [0, 0, 1, 1, 0]]))
    assert gross.residual(np.zeros(4), W) == pytest.approx([0.01, 0.01])
    assert net.labels == ("s1",) and net.tier == 2
    assert net.residual(np.zeros(4), W) == pytest.approx([0.03])
    assert floor.sense == "min" and floor.rhs == pytest.approx([0.05])
    assert floor.residual(np.zeros(4), -W) == pytest.approx([0.06])


def test_a_budget_outside_the_books_gross_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        set_with(strategies={"s1": {"max_gross": 3.0, "max_net": 4.0}})
    assert set(err.value.problems) == {
        "strategies.s1.max_gross: 3.0 is above the book's exposure.gross.max (2.0)",
        "strategies.s1.max_net: 4.0 lies outside ±max_gross (3.0)",
    }


def test_a_state_shrinks_every_budget() -> None:
    cs = set_with(
        strategies={"s1": {"max_gross": 0.1, "min_net": -0.05}},
        states={"ELEVATED": {"strategies": 0.5}, "EMERGENCY": {"strategies": 0.5}},
    )
    raw = SleeveBudgets().tightened(cs.model_dump()["strategies"], cs.states.ELEVATED)
    assert raw["s1"]["max_gross"] == pytest.approx(0.05)
    assert raw["s1"]["min_net"] == pytest.approx(-0.025)
    assert raw["s1"]["max_net"] is None
