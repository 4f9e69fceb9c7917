"""Only trim: each pair between the least and the greatest of {0, w0, w̃}, and a
preference row that holds a growing position against risk aversion."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.trim import OnlyTrim
from tests.constraints.families.conftest import set_with


def test_hull_of_pairs_and_of_names(data: ProgramData) -> None:
    (box,) = OnlyTrim().bounds(set_with(), data)
    assert box.pair_lo == pytest.approx([0.0, 0.0, -0.02, 0.0, 0.0])
    assert box.pair_hi == pytest.approx([0.12, 0.05, 0.0, 0.06, 0.01])
    # Names: hull of {0, h0, h̃}; B nets 0.05 and −0.02 (h0 0.03, h̃ 0.00).
    assert box.lo == pytest.approx([0.0, 0.0, 0.0, 0.0])
    assert box.hi == pytest.approx([0.12, 0.03, 0.06, 0.01])


def test_an_exempt_sleeve_loses_its_pairs_and_the_names_they_share(data: ProgramData) -> None:
    (box,) = OnlyTrim().bounds(set_with(strategies={"s2": {"only_trim": False}}), data)
    assert box.pair_lo == pytest.approx([0.0, 0.0, -np.inf, -np.inf, 0.0])
    assert box.lo == pytest.approx([0.0, -np.inf, -np.inf, 0.0])
    assert OnlyTrim().bounds(set_with(trading={"only_trim": False}), data) == []


def test_preference_row_for_pairs_that_grow(data: ProgramData) -> None:
    (row,) = OnlyTrim().limits(set_with(), data)
    # s1 A grows 0.10 → 0.12, s2 C 0.03 → 0.06; s1 B shrinks, s2 B has no decision.
    assert row.labels == ("s1:A", "s2:C") and row.preference and row.tier == 4
    assert row.on == "w" and row.rhs == pytest.approx([-0.10, -0.03])
    w = np.array([0.08, 0.05, -0.02, 0.05, 0.0])
    assert row.residual(np.zeros(4), w) == pytest.approx([0.02, 0.0])
