"""The ex-ante volatility cone ``sqrt(hᵀ(B F Bᵀ + diag d)h) ≤ cap``."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.risk import VolatilityLimit
from tests.constraints.families.conftest import set_with


def test_the_cone_at_a_point(data: ProgramData) -> None:
    (cap,) = VolatilityLimit().limits(set_with(risk={"max_volatility": 0.1}), data)
    assert cap.name == "risk.max_volatility" and cap.transform == "vol" and cap.tier == 2
    # h = 0.5 in A: factor exposures (0.5, 0.25); 0.04·0.25 + 0.01·0.0625 + 0.01·0.25.
    h = np.array([0.5, 0.0, 0.0, 0.0])
    vol = np.sqrt(0.010625 + 0.0025)
    assert cap.lhs(h) == pytest.approx([vol])
    assert cap.residual(h) == pytest.approx([vol - 0.1])


def test_the_envelope_wins_where_lower(data: ProgramData) -> None:
    cs = set_with(
        risk={"max_volatility": 0.1}, envelope={"source_state": "NORMAL", "volatility": 0.05}
    )
    (cap,) = VolatilityLimit().limits(cs, data)
    assert cap.rhs == pytest.approx([0.05]) and "NORMAL outcome" in cap.description


def test_a_state_shrinks_the_cap() -> None:
    cs = set_with(
        risk={"max_volatility": 0.1},
        states={"ELEVATED": {"volatility": 0.8}, "EMERGENCY": {"volatility": 0.8}},
    )
    raw = VolatilityLimit().tightened(cs.risk.model_dump(), cs.states.ELEVATED)
    assert raw["max_volatility"] == pytest.approx(0.08)
