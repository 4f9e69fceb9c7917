"""Per-name caps: one ``|h_i| ≤ cap_i`` row per name, overrides by ticker."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.position import PositionCaps
from tests.constraints.families.conftest import set_with


def test_one_row_per_name_with_its_override(data: ProgramData) -> None:
    cs = set_with(position={"max_weight": 0.05, "overrides": {"C": 0.02}, "tier": 2})
    (limit,) = PositionCaps().limits(cs, data)
    assert limit.name == "position.max_weight" and limit.transform == "abs"
    assert limit.labels == ("A", "B", "C", "D") and limit.tier == 2 and limit.A is None
    assert limit.rhs == pytest.approx([0.05, 0.05, 0.02, 0.05])
    h = np.array([0.08, -0.01, -0.03, 0.0])
    assert limit.residual(h) == pytest.approx([0.03, 0.0, 0.01, 0.0])
    assert PositionCaps().bounds(cs, data) == []


def test_no_cap_and_no_override_is_no_row(data: ProgramData) -> None:
    assert PositionCaps().limits(set_with(position={"max_weight": None}), data) == []


def test_a_state_shrinks_the_cap_and_the_overrides() -> None:
    cs = set_with(
        position={"max_weight": 0.05, "overrides": {"C": 0.02}},
        states={"ELEVATED": {"position": 0.5}, "EMERGENCY": {"position": 0.5}},
    )
    raw = PositionCaps().tightened(cs.position.model_dump(), cs.states.ELEVATED)
    assert raw["max_weight"] == pytest.approx(0.025)
    assert raw["overrides"] == {"C": pytest.approx(0.01)}
