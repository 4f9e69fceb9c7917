"""Minimum sizes: a section the gate reads after the solve, never rows of the program."""

from __future__ import annotations

import pytest

from riskopt.constraints import FAMILIES
from riskopt.constraints.base import ProgramData
from riskopt.constraints.config import SETS_DIR, ConstraintSet
from riskopt.constraints.minimum import MinimumConfig, MinimumSizes, minimums
from tests.constraints.families.conftest import set_with

MINIMUM = {"trade": 0.001, "holding_notional": 5_000.0, "max_names": 3}


def test_registered_once_with_its_section() -> None:
    assert len([f for f in FAMILIES if f.name == "minimum"]) == 1
    cs = set_with(minimum=MINIMUM)
    assert MinimumSizes().own(cs) == MinimumConfig(**MINIMUM)
    assert MinimumSizes().tiers(cs) == []


def test_no_rows_and_no_bounds(data: ProgramData) -> None:
    cs = set_with(minimum=MINIMUM)
    assert MinimumSizes().limits(cs, data) == []
    assert MinimumSizes().bounds(cs, data) == []


def test_in_weight_for_the_book(data: ProgramData) -> None:
    got = minimums(set_with(minimum=MINIMUM), data.nav)  # NAV 1,000,000
    assert (got.trade, got.holding, got.max_names) == (0.001, pytest.approx(0.005), 3)
    assert got.active


@pytest.mark.parametrize("path", sorted(SETS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_no_shipped_set_has_a_minimum(path: object) -> None:
    assert not minimums(ConstraintSet.load(str(path)), 1e7).active
