"""The active state's own limits: forced de-risking (a row), de-risk only and no new
positions (boxes over the pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.sop import StateRestrictions
from tests.constraints.families.conftest import set_with

EMERGENCY = {"forced_derisk": 0.5, "forced_derisk_tier": 2}


def test_forced_derisk_row(data: ProgramData) -> None:
    cs = set_with(states={"EMERGENCY": EMERGENCY}, active_state="EMERGENCY")
    (row,) = StateRestrictions().limits(cs, data)
    # Σ|h0| = 0.10 + 0.03 + 0.03 = 0.16; gross must fall by half.
    assert row.name == "state.forced_derisk" and row.tier == 2 and row.transform == "abs"
    assert row.rhs == pytest.approx([0.08])
    assert row.residual(data.h0) == pytest.approx([0.08])
    assert StateRestrictions().limits(set_with(states={"EMERGENCY": EMERGENCY}), data) == []


def test_derisk_only_and_no_new_positions_boxes(data: ProgramData) -> None:
    sop = {"derisk_only": True, "no_new_positions": True}
    cs = set_with(states={"EMERGENCY": sop}, active_state="EMERGENCY")
    derisk, no_new = StateRestrictions().bounds(cs, data)
    assert derisk.name == "state.derisk_only"
    assert derisk.lo == pytest.approx([0.0, 0.0, 0.0, 0.0])
    assert derisk.hi == pytest.approx([0.10, 0.03, 0.03, 0.0])
    assert derisk.pair_lo == pytest.approx([0.0, 0.0, -0.02, 0.0, 0.0])
    assert derisk.pair_hi == pytest.approx([0.10, 0.05, 0.0, 0.03, 0.0])
    # A held pair may grow on its own side; the empty one (s1 D) stays empty.
    assert no_new.pair_lo == pytest.approx([0.0, 0.0, -np.inf, 0.0, 0.0])
    assert no_new.pair_hi == pytest.approx([np.inf, np.inf, 0.0, np.inf, 0.0])
    # Names held by one pair carry its box (A, C, D); B's two pairs stay per pair.
    assert no_new.lo == pytest.approx([0.0, -np.inf, 0.0, 0.0])
    assert no_new.hi == pytest.approx([np.inf, np.inf, np.inf, 0.0])


def test_every_states_forced_derisk_tier_is_a_tier_setting() -> None:
    assert StateRestrictions().tiers(set_with(states={"EMERGENCY": EMERGENCY})) == [
        ("states.NORMAL.forced_derisk_tier", 1),
        ("states.ELEVATED.forced_derisk_tier", 1),
        ("states.EMERGENCY.forced_derisk_tier", 2),
    ]
