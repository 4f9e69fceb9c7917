"""Book exposure: gross ``Σ|h|``, the net band ``Σh``, long ``Σh⁺``, short ``Σh⁻``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.exposure import ExposureLimits
from tests.constraints.families.conftest import set_with

H = np.array([0.15, -0.1, 0.1, 0.02])
"""Gross 0.37, net 0.17, long 0.27, short 0.10."""


def exposure(**overrides: object) -> dict[str, object]:
    return {
        "gross": {"max": 0.3, "tier": 1},
        "net": {"min": -0.1, "max": 0.1, "tier": 2},
        "long": {"max": 0.25, "tier": 3},
        "short": {"max": 0.05, "tier": 3},
        **overrides,
    }


def test_rows_and_residuals(data: ProgramData) -> None:
    limits = {lim.name: lim for lim in ExposureLimits().limits(set_with(exposure=exposure()), data)}
    assert list(limits) == [
        "exposure.gross.max",
        "exposure.net.max",
        "exposure.net.min",
        "exposure.long.max",
        "exposure.short.max",
    ]
    assert [lim.transform for lim in limits.values()] == ["abs", "id", "id", "pos", "neg"]
    assert [lim.tier for lim in limits.values()] == [1, 2, 2, 3, 3]
    floor = limits["exposure.net.min"]
    assert floor.sense == "min" and floor.rhs == pytest.approx([0.1])  # −Σh ≤ 0.1
    assert floor.A is not None and floor.A.toarray() == pytest.approx(-np.ones((1, 4)))
    residual = {k: float(lim.residual(H)[0]) for k, lim in limits.items()}
    assert residual == pytest.approx(
        {
            "exposure.gross.max": 0.07,
            "exposure.net.max": 0.07,
            "exposure.net.min": 0.0,
            "exposure.long.max": 0.02,
            "exposure.short.max": 0.05,
        }
    )
    assert float(floor.residual(-H)[0]) == pytest.approx(0.07)


def test_the_drawdown_scales_the_gross_cap(data: ProgramData) -> None:
    # d = 0.1 against a budget of 0.2: m = (0.2 − 0.1) / (0.2 · 0.9) = 5/9.
    cs = set_with(exposure=exposure(), drawdown={"budget": 0.2})
    (gross, *_) = ExposureLimits().limits(cs, dataclasses.replace(data, drawdown=0.1))
    assert gross.rhs == pytest.approx([0.3 * 5 / 9])


def test_contradictions_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        set_with(exposure=exposure(net={"min": 0.3, "max": 0.4}))
    assert set(err.value.problems) == {
        "exposure.net.max: 0.4 lies outside ±gross (0.3)",
        "exposure.net.min: 0.3 exceeds exposure.long.max (0.25)",
    }


def test_a_state_shrinks_the_net_band_at_least_as_much_as_gross() -> None:
    cs = set_with(
        exposure=exposure(),
        states={"ELEVATED": {"gross": 0.5, "net": 0.8}, "EMERGENCY": {"gross": 0.5, "net": 0.8}},
    )
    raw = ExposureLimits().tightened(cs.exposure.model_dump(), cs.states.ELEVATED)
    assert [raw[k]["max"] for k in ("gross", "long", "short")] == pytest.approx(
        [0.15, 0.125, 0.025]
    )
    assert (raw["net"]["min"], raw["net"]["max"]) == pytest.approx((-0.05, 0.05))
