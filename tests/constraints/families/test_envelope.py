"""The calmer state's envelope: gross, |net| and per-name |w| not above its outcome."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints.base import NO_LIMIT, ProgramData
from riskopt.constraints.envelope import CalmerStateEnvelope
from tests.constraints.families.conftest import set_with

H = np.array([0.15, -0.1, 0.1, 0.02])
"""Gross 0.37, net 0.17."""


def test_rows_and_residuals(data: ProgramData) -> None:
    cs = set_with(
        active_state="ELEVATED",
        envelope={
            "source_state": "NORMAL",
            "gross": 0.2,
            "abs_net": 0.05,
            "per_name": {"A": 0.04, "B": 0.2},
        },
    )
    limits = {lim.name: lim for lim in CalmerStateEnvelope().limits(cs, data)}
    assert list(limits) == [
        "state.envelope.gross",
        "state.envelope.net",
        "state.envelope.net_short",
        "state.envelope.per_name",
    ]
    assert {lim.tier for lim in limits.values()} == {4}
    # B's 0.2 is above its position cap (0.05): no row needed; A's 0.04 is below it.
    per_name = limits["state.envelope.per_name"]
    assert per_name.rhs == pytest.approx([0.04, NO_LIMIT, NO_LIMIT, NO_LIMIT])
    residual = {k: lim.residual(H).tolist() for k, lim in limits.items()}
    assert residual == {
        "state.envelope.gross": [pytest.approx(0.17)],
        "state.envelope.net": [pytest.approx(0.12)],
        "state.envelope.net_short": [0.0],
        "state.envelope.per_name": [pytest.approx(0.11), 0.0, 0.0, 0.0],
    }


def test_a_gross_above_the_sets_own_cap_adds_no_row(data: ProgramData) -> None:
    cs = set_with(envelope={"source_state": "NORMAL", "gross": 2.5})
    assert CalmerStateEnvelope().limits(cs, data) == []
    assert CalmerStateEnvelope().limits(set_with(), data) == []
