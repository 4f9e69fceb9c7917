"""The restricted list: reduce-only names (a box) and names to close (a row at 0)."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.family import BookNames
from riskopt.constraints.restricted import RestrictedList
from tests.constraints.families.conftest import set_with


def test_close_row_and_reduce_only_box(data: ProgramData) -> None:
    cs = set_with(restricted={"reduce_only": ["A"], "close": ["C", "ZZZ"], "close_tier": 2})
    (close,) = RestrictedList().limits(cs, data)
    assert close.name == "restricted.close" and close.labels == ("C",) and close.tier == 2
    assert close.A is not None and close.A.toarray() == pytest.approx(np.array([[0, 0, 1, 0]]))
    assert close.rhs == pytest.approx([0.0])
    assert close.residual(np.array([0.1, 0.1, -0.02, 0.1])) == pytest.approx([0.02])
    (box,) = RestrictedList().bounds(cs, data)
    # A (held 0.10) and C (held 0.03) may only move toward zero.
    assert box.lo == pytest.approx([0.0, -np.inf, 0.0, -np.inf])
    assert box.hi == pytest.approx([0.10, np.inf, 0.03, np.inf])


def test_tickers_the_book_lacks_are_warnings_and_overlap_is_a_problem() -> None:
    cs = set_with(restricted={"reduce_only": ["A", "Q"], "close": ["ZZZ"]})
    book = BookNames(set(), set(), set(), set(), False, {"A", "B"})
    assert RestrictedList().book_warnings(cs, book) == [
        "restricted.reduce_only: tickers not in the book: Q",
        "restricted.close: tickers not in the book: ZZZ",
    ]
    both = cs.restricted.model_copy(update={"close": ["A"]})
    assert RestrictedList().consistency_problems(cs.model_copy(update={"restricted": both})) == [
        "restricted: listed as both reduce_only and close: A"
    ]
