"""Factor bands: ``lower_k ≤ (Bᵀh)_k ≤ upper_k`` for each banded factor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.factors import FactorBands
from riskopt.constraints.family import BookNames
from tests.constraints.families.conftest import set_with


def test_upper_and_lower_rows_of_the_banded_factor_only(data: ProgramData) -> None:
    cs = set_with(factors={"bands": {"MARKET": [-0.1, 0.2]}, "tier": 2})
    upper, lower = FactorBands().limits(cs, data)
    assert (upper.name, lower.name) == ("factors.upper", "factors.lower")
    assert upper.labels == ("MARKET",) and upper.tier == 2
    assert upper.A is not None and upper.A.toarray() == pytest.approx(np.array([[1, 1, 1, 0.5]]))
    assert lower.sense == "min" and lower.rhs == pytest.approx([0.1])
    # MARKET exposure 0.15 + 0.05 + 0.1 + 0.01 = 0.31; of −h, −0.31.
    h = np.array([0.15, 0.05, 0.1, 0.02])
    assert upper.residual(h) == pytest.approx([0.11]) and lower.residual(h) == pytest.approx([0])
    assert lower.residual(-h) == pytest.approx([0.21])


def test_no_risk_model_no_rows_and_a_book_problem(data: ProgramData) -> None:
    cs = set_with(factors={"bands": {"MARKET": [-0.1, 0.2], "SIZE": [0, 0]}})
    assert FactorBands().limits(cs, dataclasses.replace(data, loadings=None)) == []
    book = BookNames(set(), set(), set(), set(), False, set())
    assert FactorBands().book_problems(cs, book) == [
        "factors.bands: factors not in the book: MARKET, SIZE",
        "factors.bands: the book has no risk model (loadings or returns)",
    ]
