"""The real-price book through the March 2020 crash (data/fixtures/crash_2020, real prices
from skfolio's S&P 500 file): each state's caps are exactly what the set says, applied
once, and the states hold for every sleeve."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer import rebalance
from riskopt.optimizer.result import RebalanceResult

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "fixtures" / "crash_2020"
BASE_CAP = 0.25  # [risk] max_volatility in the fixture's set
STATE_MULTIPLIER = {"NORMAL": 1.0, "ELEVATED": 0.80, "EMERGENCY": 0.50}  # [states.*] volatility
BUDGET, FLOOR = 0.45, 0.30  # [drawdown]
FORCED = 0.20  # [states.EMERGENCY] forced_derisk


def _drawdown_multiplier() -> float:
    """Grossman–Zhou ``m(d)`` from the NAV file itself (the book's NAV is its last point)."""
    nav = pd.read_csv(FIXTURE / "book" / "nav_history.csv")["nav"].to_numpy()
    d = 1.0 - nav[-1] / nav.max()
    return max(FLOOR, (BUDGET - d) / (BUDGET * (1.0 - d)))


def _run(state: str, gamma: float | None) -> RebalanceResult:
    return rebalance(
        load_book(FIXTURE / "book"),
        load_decisions(FIXTURE / "decisions.csv"),
        FIXTURE / "constraints.toml",
        state=state,
        risk_aversion=gamma,
        cache=None,
    )


def test_the_book_is_in_a_real_drawdown() -> None:
    m = _drawdown_multiplier()
    assert 0.3 < m < 0.6  # a 30% drawdown against a 45% budget


@pytest.mark.parametrize("state", ["NORMAL", "ELEVATED", "EMERGENCY"])
def test_each_state_lands_on_its_stated_volatility_cap(state: str) -> None:
    """At γ = 0 (raised to the state's floor) the volatility cap binds, at base × state
    multiplier × m(d): once, the calmer state's envelope included."""
    result = _run(state, 0.0)
    cap = BASE_CAP * STATE_MULTIPLIER[state] * _drawdown_multiplier()
    assert result.status == "OPTIMAL"
    assert result.run.exposures_after["volatility"] == pytest.approx(cap, abs=2e-4)
    # The reasons print the cap that bound, as the set derives it.
    named = result.actions["reason"].str.extract(r"risk\.max_volatility ([0-9.]+)%")[0].dropna()
    assert len(named) and (named.astype(float) == round(100 * cap, 2)).all()


def test_emergency_cuts_at_least_the_forced_fraction_and_no_sleeve_opens_or_grows() -> None:
    result = _run("EMERGENCY", None)
    before, after = result.run.exposures_before, result.run.exposures_after
    assert after["gross"] <= (1 - FORCED) * before["gross"] + 1e-6
    s = result.sleeve_targets
    assert (s.loc[s["current_weight"] == 0, "target_weight"] == 0).all()
    assert (s["target_weight"].abs() <= s["current_weight"].abs() + 1e-12).all()
    assert (s["target_weight"] * s["current_weight"] >= 0).all()


@pytest.mark.parametrize("state", ["NORMAL", "ELEVATED"])
def test_no_sleeve_goes_short_in_a_long_only_book(state: str) -> None:
    s = _run(state, None).sleeve_targets
    assert (s["target_weight"] >= 0).all()
    assert (s["target_position"] >= 0).all()


def test_in_normal_the_limits_set_the_gross_not_the_debate() -> None:
    debated = _run("NORMAL", None)
    limits_alone = _run("NORMAL", 0.0)
    assert debated.run.gamma > 0
    gross = debated.run.exposures_after["gross"]
    assert gross == pytest.approx(limits_alone.run.exposures_after["gross"], rel=0.02)


def test_odd_lot_sleeves_close_exactly_and_never_flip(tmp_path: Path) -> None:
    """Both sleeves hold 16,188 HD, an odd number of 100-share lots: where the name goes to
    zero, each sleeve closes exactly (no sleeve is left short to make the total add up)."""
    book = load_book(FIXTURE / "book")
    market = book.market.copy()
    market.loc["HD", "lot_size"] = 100
    odd = dataclasses.replace(book, market=market)
    result = rebalance(
        odd,
        load_decisions(FIXTURE / "decisions.csv"),
        FIXTURE / "constraints.toml",
        state="EMERGENCY",
        cache=None,
    )
    s = result.sleeve_targets
    assert (s["target_position"] >= 0).all()
    hd = s[s["ticker"] == "HD"]
    assert set(hd["current_position"]) == {16_188.0}
    lots = (hd["target_position"] - hd["current_position"]) / 100
    assert ((lots == lots.round()) | (hd["target_position"] == 0)).all()
    total = result.targets.set_index("ticker").loc["HD", "target_position"]
    assert total == hd["target_position"].sum()
