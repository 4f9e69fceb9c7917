"""The gate only trims: every (strategy, ticker) pair ends between the smallest and the
largest of {0, held, proposed}, and the states' rules hold for each pair.

* over random multi-sleeve books in every state, each pair's final weight lies in its
  hull (to one lot), and under ``no_new_positions`` / ``derisk_only`` no pair opens,
  flips or grows;
* sleeve targets are whole-lot trades that add up to their ticker's target;
* on the sample book no ticker flips and no decision is traded against its direction
  unless a named limit forces the cut;
* ``γ`` has one meaning: with nothing else acting the gate returns ``h̃ / (1 + γ)``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskopt.constraints.config import ConstraintSet
from riskopt.data.book import Book, RiskModel
from riskopt.data.loaders import load_book, load_decisions
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance
from riskopt.optimizer.result import RebalanceResult
from tests.optimizer.test_properties import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "samples"


def _lot_weight(book: Book, tickers: pd.Series) -> np.ndarray:
    market = book.market.loc[tickers]
    return (market["lot_size"] * market["price"] / book.nav).to_numpy()


@st.composite
def multi_sleeve_cases(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    n = draw(st.integers(15, 40))
    seed = draw(st.integers(0, 10_000))
    nav = draw(st.sampled_from([1e7, 1e9]))
    universe = make_universe(n, 3, seed, nav=nav, years=0.4, coverage=0.9)
    decisions = universe.decisions
    # Some decisions flip or open, some close: the hull must allow exactly those.
    flip = draw(st.lists(st.booleans(), min_size=len(decisions), max_size=len(decisions)))
    decisions = decisions.assign(
        target_weight=np.where(flip, -decisions["target_weight"], decisions["target_weight"])
    )
    cs = ConstraintSet.from_dict(
        {
            "name": "drawn",
            "position": {"max_weight": draw(st.floats(0.01, 0.1))},
            "exposure": {
                "gross": {"max": draw(st.floats(0.6, 2.0))},
                "net": {"min": draw(st.floats(-0.5, 0.0)), "max": draw(st.floats(0.0, 0.5))},
            },
            "trading": {"max_trade_pct_adv": draw(st.floats(0.01, 0.5))},
            "risk": {"max_volatility": draw(st.one_of(st.none(), st.floats(0.01, 0.2)))},
            "states": {
                "ELEVATED": {"no_new_positions": True, "gross": 0.8},
                "EMERGENCY": {
                    "no_new_positions": True,
                    "derisk_only": True,
                    "gross": 0.5,
                    "forced_derisk": 0.1,
                },
            },
        }
    )
    state = draw(st.sampled_from(["NORMAL", "ELEVATED", "EMERGENCY"]))
    gamma = draw(st.sampled_from([0.0, 0.25, 2.0]))
    return universe.book, decisions, cs, state, gamma


def _sleeves(book: Book, result: RebalanceResult) -> pd.DataFrame:
    s = result.sleeve_targets
    return s.assign(lot_w=_lot_weight(book, s["ticker"]))


@SETTINGS
@given(multi_sleeve_cases())
def test_every_pair_stays_in_its_hull_and_the_state_holds_per_pair(case) -> None:  # type: ignore[no-untyped-def]
    book, decisions, cs, state, gamma = case
    result = rebalance(book, decisions, cs, state=state, risk_aversion=gamma)
    assert result.status in ("OPTIMAL", "RELAXED")
    s = _sleeves(book, result)
    held, proposed, final = s["current_weight"], s["proposed_weight"], s["target_weight"]
    lo = np.minimum(0.0, np.minimum(held, proposed))
    hi = np.maximum(0.0, np.maximum(held, proposed))
    assert (final >= lo - s["lot_w"] - 1e-12).all()
    assert (final <= hi + s["lot_w"] + 1e-12).all()
    if state != "NORMAL":  # no_new_positions: nothing opens, nothing flips
        assert (final[held == 0] == 0).all()
        assert (final * held >= 0).all()
    if state == "EMERGENCY":  # derisk_only: nothing grows
        assert (final.abs() <= held.abs() + 1e-12).all()
    # Whole lots per sleeve (closing an odd lot aside), adding up to the ticker's target.
    lots = (s["target_position"] - s["current_position"]) / book.market.loc[
        s["ticker"], "lot_size"
    ].to_numpy()
    whole = np.isclose(lots, np.round(lots), atol=1e-6) | (s["target_position"] == 0)
    assert whole.mean() >= 0.99
    totals = s.groupby("ticker")["target_position"].sum()
    targets = result.targets.set_index("ticker")["target_position"].reindex(totals.index)
    np.testing.assert_allclose(totals, targets, atol=1e-6)


def _sample() -> RebalanceResult:
    book = load_book(SAMPLE / "book")
    decisions = load_decisions(SAMPLE / "decisions.csv")
    return rebalance(book, decisions, "default", state="NORMAL", cache=None)


def test_on_the_sample_book_no_name_flips_and_no_decision_is_traded_against_itself() -> None:
    result = _sample()
    book = load_book(SAMPLE / "book")
    t = result.targets.dropna(subset=["current_weight"])
    flipped = np.sign(t["target_weight"]) * np.sign(t["current_weight"]) < 0
    proposed_flip = np.sign(t["proposed_weight"]) * np.sign(t["current_weight"]) < 0
    assert not (flipped & ~proposed_flip).any()
    s = _sleeves(book, result)
    decided = s[s["has_decision"]]
    direction = np.sign(decided["proposed_weight"] - decided["current_weight"])
    moved = direction * (decided["target_weight"] - decided["current_weight"])
    against = decided[moved < -decided["lot_w"]]
    # Where a decision is traded the other way, a named limit forced it: not risk aversion.
    actions = result.actions.set_index(["strategy_id", "ticker"])
    for key in zip(against["strategy_id"], against["ticker"], strict=True):
        reason = str(actions.loc[key, "reason"])
        assert "by risk aversion" not in reason, reason


def _plain_book(n: int) -> tuple[Book, pd.DataFrame]:
    """A book of ``n`` names with equal specific risks, no factor risk, nothing held."""
    tickers = [f"N{i:03d}" for i in range(n)]
    market = pd.DataFrame(
        {
            "ticker": tickers,
            "price": 50.0,
            "adv_shares": 1e9,
            "spread_bps": 1.0,
            "volatility": 0.3,
            "sector": "S",
            "country": "US",
        }
    )
    model = RiskModel(
        loadings=pd.DataFrame({"MARKET": 0.0}, index=pd.Index(tickers, name="ticker")),
        factor_cov=pd.DataFrame([[0.0]], index=["MARKET"], columns=["MARKET"]),
        specific_var=pd.Series(0.09, index=pd.Index(tickers, name="ticker")),
    )
    book = Book.create(
        as_of=dt.date(2026, 11, 20),
        nav=1e9,
        positions=pd.DataFrame(columns=["strategy_id", "ticker", "quantity"]),
        market=market,
        risk_model=model,
    )
    rng = np.random.default_rng(n)
    decisions = pd.DataFrame(
        {
            "decision_id": [f"D{i}" for i in range(n)],
            "ticker": tickers,
            "strategy_id": "s",
            "target_weight": rng.uniform(-0.01, 0.01, n),
            "confidence": 1.0,
        }
    )
    return book, decisions


@pytest.mark.parametrize(("n", "gamma"), [(5, 0.25), (50, 1.0), (400, 0.05)])
@pytest.mark.parametrize(("only_trim", "accuracy"), [(False, 1e-9), (True, 1e-8)])
def test_gamma_alone_shrinks_the_proposal_by_one_over_one_plus_gamma(
    n: int, gamma: float, only_trim: bool, accuracy: float
) -> None:
    """Exact to 1e-9; the trim hull, though it does not bind, puts the interior-point
    answer of the smallest names (5e-6 of NAV from their bound) about 2e-9 off."""
    book, decisions = _plain_book(n)
    loose = ConstraintSet.from_dict(
        {
            "name": "loose",
            "position": {"max_weight": 1.0},
            "exposure": {"gross": {"max": 10.0}, "net": {"min": None, "max": None}},
            "trading": {"max_trade_pct_adv": None, "only_trim": only_trim},
        }
    )
    result = rebalance(book, decisions, loose, state="NORMAL", risk_aversion=gamma, cache=None)
    t = result.targets.set_index("ticker")
    expected = t["proposed_weight"] / (1.0 + gamma)
    np.testing.assert_allclose(t["solved_weight"], expected, rtol=0, atol=accuracy)
    assert f"shrink the book by {gamma / (1 + gamma):.0%}" in result.summary()
