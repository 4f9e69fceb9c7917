"""Turnover: ``Σ_i |h_i − h0_i| ≤ T`` for the book and ``Σ_{p∈s} |w_p − w0_p| ≤ T_s`` per
strategy; its section, checks and tier, its rows, and (where the program can state rows
on the trade) a solve."""

from __future__ import annotations

import numpy as np
import pytest

from riskopt.constraints import FAMILIES
from riskopt.constraints.base import ProgramData
from riskopt.constraints.config import SETS_DIR, ConstraintSet
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.turnover import TurnoverConfig, TurnoverLimits
from riskopt.optimizer import rebalance
from tests.constraints.families.conftest import set_with
from tests.helpers import decisions, hand_book

TURNOVER = {"max": 0.1, "tier": 2}


def test_registered_once_with_its_section_and_tier() -> None:
    assert [f for f in FAMILIES if f.name == "turnover"] != []
    cs = set_with(turnover=TURNOVER)
    assert TurnoverLimits().own(cs) == TurnoverConfig(**TURNOVER)
    assert TurnoverLimits().tiers(cs) == [("turnover.tier", 2)]


@pytest.mark.parametrize("path", sorted(SETS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_a_set_without_the_section_has_no_turnover_limit(path: object, data: ProgramData) -> None:
    cs = ConstraintSet.load(str(path))
    assert TurnoverLimits().own(cs) == TurnoverConfig()
    assert TurnoverLimits().limits(cs, data) == []


def test_bad_settings_are_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        set_with(turnover={"max": -0.1, "tier": 9, "strategies": {"s1": -1.0}, "typo": 1})
    text = "\n".join(err.value.problems)
    assert "turnover.max: Input should be greater than or equal to 0" in text
    assert "turnover.strategies.s1: Input should be greater than or equal to 0" in text
    assert "turnover.typo: unknown key" in text
    with pytest.raises(ConfigError, match=r"turnover\.tier: tier 9 is past tiers.lowest"):
        set_with(turnover={"max": 0.1, "tier": 9})


def test_zero_turnover_contradicts_a_forced_derisk() -> None:
    with pytest.raises(ConfigError) as err:
        set_with(
            turnover={"max": 0.0, "strategies": {"s2": 0.0, "s1": 0.1}},
            states={"EMERGENCY": {"forced_derisk": 0.25}},
        )
    assert err.value.problems == [
        "turnover.max: 0 forbids the forced de-risking of states.EMERGENCY (0.25 of gross)",
        "turnover.strategies.s2: 0 forbids the forced de-risking of states.EMERGENCY "
        "(0.25 of gross)",
    ]
    assert TurnoverLimits().own(set_with(turnover={"max": 0.0})).max == 0.0


def test_the_book_row_and_its_residuals(data: ProgramData) -> None:
    (book,) = TurnoverLimits().limits(set_with(turnover=TURNOVER), data)
    assert (book.name, book.transform, book.on, book.tier) == ("turnover.max", "abs", "trade", 2)
    assert book.labels == ("portfolio",) and book.rhs == pytest.approx([0.1])
    # h0 = (0.10, 0.03, 0.03, 0): trades 0.05, 0, 0.07, 0.02 add up to 0.14.
    h = np.array([0.05, 0.03, 0.10, 0.02])
    assert book.lhs(h) == pytest.approx([0.14]) and book.residual(h) == pytest.approx([0.04])
    assert book.residual(data.h0) == pytest.approx([0.0])


def test_each_strategy_row_sums_its_own_pair_trades(data: ProgramData) -> None:
    """Pairs: s1 A .10, s1 B .05, s2 B −.02, s2 C .03, s1 D 0. A strategy named in the set
    but absent from the book has no row; the rows read pair trades before netting."""
    caps = {"s2": 0.04, "s1": 0.05, "gone": 0.01}
    (sleeves,) = TurnoverLimits().limits(set_with(turnover={"strategies": caps}), data)
    assert (sleeves.name, sleeves.on, sleeves.labels) == (
        "turnover.strategies",
        "pair_trade",
        ("s1", "s2"),
    )
    assert sleeves.rhs == pytest.approx([0.05, 0.04]) and sleeves.tier == 3
    # s1 trades A +.02, B −.03, D +.01 (0.06); s2 trades B +.02 and C +.03 (0.05). The
    # ticker B nets to −.01: the book's turnover would see 0.01 there, each sleeve its own.
    w = np.array([0.12, 0.02, 0.0, 0.06, 0.01])
    h = np.asarray(data.M @ w)
    assert sleeves.lhs(h, w) == pytest.approx([0.06, 0.05])
    assert sleeves.residual(h, w) == pytest.approx([0.01, 0.01])
    assert sleeves.residual(data.h0, data.w0) == pytest.approx([0.0, 0.0])
    both = TurnoverLimits().limits(set_with(turnover={"max": 0.2, "strategies": caps}), data)
    assert [limit.name for limit in both] == ["turnover.max", "turnover.strategies"]


def test_states_leave_turnover_as_it_is() -> None:
    cs = set_with(turnover=TURNOVER, states={"EMERGENCY": {"position": 0.5, "gross": 0.5}})
    raw = TurnoverLimits().own(cs).model_dump()
    assert TurnoverLimits().tightened(raw, cs.states.EMERGENCY) == raw


def test_the_solve_keeps_turnover_within_its_caps() -> None:
    prices = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}
    cs = set_with(
        position={"max_weight": 0.5},
        trading={"max_trade_pct_adv": None},
        turnover={"max": 0.06},
    )
    dec = decisions(
        [("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", 0.04), ("D3", "s2", "CCC", 0.04)]
    )
    result = rebalance(hand_book(prices), dec, cs, risk_aversion=0.0)
    w = result.targets.set_index("ticker")["target_weight"]
    assert float(w.abs().sum()) == pytest.approx(0.06, abs=1e-6)  # from an empty book
    assert float(w.abs().max()) <= 0.04 + 1e-6  # trimmed, never beyond a proposal


def test_the_solve_keeps_each_sleeve_within_its_own_turnover() -> None:
    """A capped sleeve trades its cap, split by the tracking objective; a sleeve without a
    cap trades as proposed."""
    prices = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0, "DDD": 10.0}
    cs = set_with(
        position={"max_weight": 0.5},
        trading={"max_trade_pct_adv": None},
        turnover={"strategies": {"s1": 0.03}},
    )
    dec = decisions(
        [
            ("D1", "s1", "AAA", 0.04),
            ("D2", "s1", "BBB", 0.04),
            ("D3", "s2", "CCC", 0.04),
            ("D4", "s2", "DDD", -0.03),
        ]
    )
    result = rebalance(hand_book(prices), dec, cs, risk_aversion=0.0)
    sleeves = result.sleeve_targets.groupby("strategy_id")["target_weight"].apply(
        lambda w: w.abs().sum()
    )
    assert sleeves["s1"] == pytest.approx(0.03, abs=1e-6)  # capped from an empty book
    s1 = result.sleeve_targets.query("strategy_id == 's1'")["target_weight"]
    np.testing.assert_allclose(s1, [0.015, 0.015], atol=1e-6)  # equal cuts, equal weights
    assert sleeves["s2"] == pytest.approx(0.07, abs=1e-6)  # uncapped: as proposed
    assert not result.breaches
