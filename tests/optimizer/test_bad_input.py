"""Bad input: bad decisions are rejected one by one; a bad book is one ValidationError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskopt.constraints.config import ConstraintSet
from riskopt.data.book import Book
from riskopt.data.errors import ValidationError
from riskopt.optimizer import rebalance
from tests.helpers import decisions, hand_book, with_price

PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0, "ZERO": 10.0}


def reasons(result) -> pd.Series:  # type: ignore[no-untyped-def]
    return result.actions.set_index("decision_id")["reason"]


def test_bad_decisions_are_rejected_and_the_rest_proceed() -> None:
    book = hand_book(PRICES, {("s1", "AAA"): 0.01})
    book = with_price(book, "ZERO", 0.0)
    dec = decisions(
        [
            ("GOOD", "s1", "BBB", 0.02),
            ("UNKNOWN", "s1", "NOPE", 0.01),
            ("NAN", "s1", "CCC", float("nan")),
            ("ZEROPX", "s1", "ZERO", 0.01),
            ("DUP", "s1", "AAA", 0.02),
            ("DUP", "s2", "AAA", 0.01),
            ("HUGE", "s2", "CCC", 3.0),
            ("CONF", "s2", "BBB", 0.01, 1.5),
        ]
    )
    result = rebalance(book, dec, "default", state="NORMAL", risk_aversion=0.0)
    actions = result.actions.set_index("decision_id")
    assert actions.loc["GOOD", "action_type"] == "OK"
    why = reasons(result)
    assert "unknown ticker" in why["UNKNOWN"]
    assert "not a finite number" in why["NAN"]
    assert "no valid price" in why["ZEROPX"]
    assert why["DUP"].str.contains("duplicate decision_id").all()
    assert "absurd size" in why["HUGE"]
    assert "confidence" in why["CONF"]
    rejected = actions[actions.index != "GOOD"]
    assert (rejected["action_type"] == "REJECTED").all()
    # Rejected decisions leave their names where they were.
    targets = result.targets.set_index("ticker")
    assert targets.loc["AAA", "delta_position"] == 0
    assert targets.loc["BBB", "target_weight"] == pytest.approx(0.02, abs=1e-6)


def test_a_second_decision_for_the_same_sleeve_and_name_is_rejected() -> None:
    book = hand_book(PRICES)
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.01), ("D2", "s1", "AAA", 0.03)]),
        "default",
        state="NORMAL",
        risk_aversion=0.0,
    )
    why = reasons(result)
    assert result.actions.set_index("decision_id").loc["D1", "action_type"] == "OK"
    assert "same strategy and ticker came first: D1" in why["D2"]


def test_a_bad_book_lists_every_problem_at_once() -> None:
    book = hand_book(PRICES, {("s1", "AAA"): 0.01})
    market = book.market.reset_index()
    market.loc[market["ticker"] == "BBB", "adv_shares"] = -5.0
    market = market.drop(columns=["sector"])
    with pytest.raises(ValidationError) as err:
        Book.create(as_of="2026-11-20", nav=-1.0, positions=book.positions, market=market)
    text = str(err.value)
    assert len(err.value.problems) >= 3
    assert "adv_shares" in text and "BBB" in text
    assert "sector" in text
    assert "book.nav" in text


def test_positions_in_names_without_market_data_are_a_book_error() -> None:
    book = hand_book(PRICES)
    positions = pd.DataFrame({"strategy_id": ["s1"], "ticker": ["GHOST"], "quantity": [10.0]})
    with pytest.raises(ValidationError, match="GHOST"):
        Book.create(
            as_of="2026-11-20", nav=1e6, positions=positions, market=book.market.reset_index()
        )


def test_missing_decision_columns_are_one_error() -> None:
    book = hand_book(PRICES)
    with pytest.raises(ValidationError) as err:
        rebalance(
            book, pd.DataFrame({"ticker": ["AAA"]}), "default", state="NORMAL", risk_aversion=0.0
        )
    assert {"missing column 'decision_id'", "missing column 'target_weight'"} <= set(
        err.value.problems
    )


@pytest.mark.parametrize("gamma", [-1.0, float("nan"), float("inf"), "high"])
def test_bad_risk_aversion_is_a_validation_error(gamma: object) -> None:
    book = hand_book(PRICES)
    with pytest.raises(ValidationError, match="risk_aversion"):
        rebalance(book, decisions([("D1", "s1", "AAA", 0.01)]), "default", risk_aversion=gamma)  # type: ignore[arg-type]


def test_empty_decisions_keep_the_book() -> None:
    book = hand_book(PRICES, {("s1", "AAA"): 0.01, ("s1", "BBB"): -0.02})
    empty = pd.DataFrame(columns=["decision_id", "ticker", "strategy_id", "target_weight"])
    result = rebalance(book, empty, "default", state="NORMAL", risk_aversion=0.0)
    assert result.status == "OPTIMAL"
    assert (result.targets["delta_position"] == 0).all()
    assert len(result.actions) == 0


def test_unpriced_holdings_are_carried_and_reported() -> None:
    book = hand_book(PRICES, {("s1", "ZERO"): 0.01, ("s1", "AAA"): 0.01})
    book = with_price(book, "ZERO", np.nan)
    result = rebalance(
        book, decisions([("D1", "s1", "AAA", 0.02)]), "default", state="NORMAL", risk_aversion=0.0
    )
    zero = result.targets.set_index("ticker").loc["ZERO"]
    assert zero["target_position"] == zero["current_position"]
    assert any("ZERO" in w for w in result.run.warnings)


def test_holdings_beyond_what_liquidity_can_fix_give_a_relaxed_run() -> None:
    # AAA is held at 8% against a 5% cap; the trade limit lets it sell only 1% of NAV.
    book = hand_book(PRICES, {("s1", "AAA"): 0.08}, adv_shares={"AAA": 10_000})
    cs = ConstraintSet.load("default").replace(**{"trading.max_trade_pct_adv": 0.1})
    result = rebalance(
        book, decisions([("D1", "s1", "BBB", 0.01)]), cs, state="NORMAL", risk_aversion=0.0
    )
    assert result.status == "RELAXED"
    aaa = result.targets.set_index("ticker").loc["AAA"]
    assert aaa["target_weight"] == pytest.approx(0.07, abs=1e-9)
    assert aaa["action_type"] == "CAPPED"
    (breach,) = [
        b
        for b in result.breaches
        if b["label"] == "AAA" and b["constraint"] == "position.max_weight"
    ]
    assert breach["constraint"] == "position.max_weight"
    assert breach["breach"] == pytest.approx(0.02, abs=1e-6)
    # The name the gate moved without a decision gets its own action.
    auto = result.actions[result.actions["decision_id"].isna()]
    assert list(auto["ticker"]) == ["AAA"]


def test_weights_in_percent_are_refused_not_traded_a_hundredfold() -> None:
    """Weights written in percent: most rows above the absurd-size cap. One such row is
    rejected alone; a third of the rows or more is a typed error naming the unit."""
    prices = {f"N{i}": 10.0 for i in range(6)}
    book = hand_book(prices)
    in_percent = decisions([(f"D{i}", "s", f"N{i}", w) for i, w in enumerate([4, 3, 0.5, 2, 1, 5])])
    with pytest.raises(ValidationError, match=r"6 of 6 weights are above 25% of NAV.*percent\?"):
        rebalance(book, in_percent, "default", state="NORMAL")
    one_absurd = decisions([(f"D{i}", "s", f"N{i}", w) for i, w in enumerate([4, 0.03, 0.05])])
    result = rebalance(book, one_absurd, "default", state="NORMAL")
    reasons = result.actions.set_index("decision_id")["reason"]
    assert "absurd size" in reasons["D0"] and "absurd" not in reasons["D1"]
