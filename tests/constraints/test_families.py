"""One book built to breach each constraint family: the limit holds, the label is right,
and the attribution in details_json names the constraint (and group) with the largest share."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.drawdown import drawdown, risk_budget_multiplier
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.groups import membership
from riskopt.optimizer import rebalance
from riskopt.optimizer.inputs import prepare
from tests.helpers import decisions, hand_book

PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0, "DDD": 10.0, "EEE": 40.0}
LOT = 100.0 / 1e7
"""Weight of one share of the dearest name: rounding to shares moves exposures by this."""
SECTORS = {"AAA": "Tech", "BBB": "Tech", "CCC": "Energy", "DDD": "Energy", "EEE": "Health"}


def only(**sections: Any) -> ConstraintSet:
    """A set with loose book limits and only the given sections switched on."""
    raw: dict[str, Any] = {
        "name": "family",
        "position": {"max_weight": 0.5},
        "exposure": {"gross": {"max": 5.0}, "net": {"min": None, "max": None}},
        "trading": {"max_trade_pct_adv": None},
    }
    for key, value in sections.items():
        raw[key] = value
    return ConstraintSet.from_dict(raw)


def act(result, decision_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    row = result.actions.set_index("decision_id").loc[decision_id]
    details = json.loads(row["details_json"])
    return {**row.to_dict(), "top": details["attribution"][0] if details["attribution"] else {}}


def weights(result) -> pd.Series:  # type: ignore[no-untyped-def]
    return result.targets.set_index("ticker")["target_weight"]


def test_sector_net_cap_scales_down_with_its_group_named() -> None:
    book = hand_book(PRICES, sectors=SECTORS)
    cs = only(groups={"sector": {"max_net": 0.05, "tier": 2}})
    result = rebalance(
        book,
        decisions(
            [("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", 0.04), ("D3", "s1", "CCC", 0.04)]
        ),
        cs,
        risk_aversion=0.0,
    )
    w = weights(result)
    assert w["AAA"] + w["BBB"] == pytest.approx(0.05, abs=1e-7)
    for d in ("D1", "D2"):
        a = act(result, d)
        assert a["action_type"] == "SCALED_DOWN"
        assert a["top"]["constraint"] == "groups.sector.net" and a["top"]["group"] == "Tech"
    assert act(result, "D3")["action_type"] == "OK"


def test_sector_gross_cap_and_per_group_override() -> None:
    book = hand_book(PRICES, sectors=SECTORS)
    cs = only(groups={"sector": {"max_gross": 0.06, "gross_overrides": {"Energy": 0.02}}})
    dec = decisions(
        [("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", -0.04), ("D3", "s1", "CCC", 0.03)]
    )
    result = rebalance(book, dec, cs, risk_aversion=0.0)
    w = weights(result)
    assert abs(w["AAA"]) + abs(w["BBB"]) == pytest.approx(0.06, abs=1e-7)
    assert abs(w["CCC"]) == pytest.approx(0.02, abs=1e-7)
    a = act(result, "D3")
    assert a["action_type"] == "SCALED_DOWN"
    assert (a["top"]["constraint"], a["top"]["group"], a["top"]["limit"]) == (
        "groups.sector.gross",
        "Energy",
        0.02,
    )


def test_country_net_cap_on_the_short_side() -> None:
    book = hand_book(PRICES, columns={"country": {"AAA": "JP", "BBB": "JP"}})
    cs = only(groups={"country": {"max_net": 0.03}})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", -0.03), ("D2", "s1", "BBB", -0.03)]),
        cs,
        risk_aversion=0.0,
    )
    w = weights(result)
    assert w["AAA"] + w["BBB"] == pytest.approx(-0.03, abs=1e-7)
    a = act(result, "D1")
    assert a["action_type"] == "SCALED_DOWN"
    assert (a["top"]["constraint"], a["top"]["group"]) == ("groups.country.net_short", "JP")


def test_cluster_cap_with_clusters_estimated_from_returns() -> None:
    rng = np.random.default_rng(0)
    common = rng.normal(0, 0.01, 250)
    returns = pd.DataFrame(
        {
            "AAA": common + rng.normal(0, 0.002, 250),
            "BBB": common + rng.normal(0, 0.002, 250),
            "CCC": rng.normal(0, 0.01, 250),
            "DDD": rng.normal(0, 0.01, 250),
            "EEE": rng.normal(0, 0.01, 250),
        },
        index=pd.bdate_range("2025-11-20", periods=250),
    )
    book = hand_book(PRICES, returns=returns)
    cs = only(groups={"cluster": {"max_net": 0.05, "correlation": 0.8}})
    result = rebalance(
        book,
        decisions(
            [("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", 0.04), ("D3", "s1", "CCC", 0.04)]
        ),
        cs,
        risk_aversion=0.0,
    )
    w = weights(result)
    assert w["AAA"] + w["BBB"] == pytest.approx(0.05, abs=1e-7)
    a = act(result, "D1")
    assert a["action_type"] == "SCALED_DOWN"
    assert (a["top"]["constraint"], a["top"]["group"]) == ("groups.cluster.net", "CL:AAA")
    assert act(result, "D3")["action_type"] == "OK"


def test_factor_band() -> None:
    book = hand_book(
        PRICES, loadings={"AAA": [1.5], "BBB": [1.0], "CCC": [0.5], "DDD": [1.0], "EEE": [1.0]}
    )
    cs = only(factors={"bands": {"MARKET": [-0.02, 0.05]}})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.03), ("D2", "s1", "BBB", 0.03)]),
        cs,
        risk_aversion=0.0,
    )
    w = weights(result)
    exposure = 1.5 * w["AAA"] + 1.0 * w["BBB"]
    assert 0.05 - 3 * LOT <= exposure <= 0.05 + 1e-7  # rounding to shares only ever shrinks
    a = act(result, "D1")
    assert a["action_type"] == "SCALED_DOWN"
    assert (a["top"]["constraint"], a["top"]["group"]) == ("factors.upper", "MARKET")


def test_liquidity_position_cap_in_days_of_adv() -> None:
    # 20% of 10,000 shares × 5 days × $50 = $500k = 5% of a $10m book.
    book = hand_book(PRICES, adv_shares={"BBB": 10_000})
    cs = only(liquidity={"max_position_pct_adv": 0.2, "liquidation_days": 5})
    result = rebalance(book, decisions([("D1", "s1", "BBB", 0.08)]), cs, risk_aversion=0.0)
    assert weights(result)["BBB"] == pytest.approx(0.05, abs=1e-7)
    a = act(result, "D1")
    assert (
        a["action_type"] == "CAPPED" and a["top"]["constraint"] == "liquidity.max_position_pct_adv"
    )


def test_volatility_scaled_cap() -> None:
    book = hand_book(PRICES, columns={"volatility": {"CCC": 0.6}})
    cs = only(liquidity={"volatility_budget": 0.015})
    result = rebalance(book, decisions([("D1", "s1", "CCC", 0.04)]), cs, risk_aversion=0.0)
    assert weights(result)["CCC"] == pytest.approx(0.025, abs=1e-7)
    a = act(result, "D1")
    assert a["action_type"] == "CAPPED" and a["top"]["constraint"] == "liquidity.volatility_budget"


@pytest.mark.parametrize(
    ("gate", "columns", "key"),
    [
        ({"max_spread_bps": 50}, {"spread_bps": {"CCC": 120.0}}, "liquidity.max_spread_bps"),
        ({"max_tick_to_price": 0.001}, {"tick_size": {"CCC": 0.05}}, "liquidity.max_tick_to_price"),
        ({"min_price": 25.0}, {}, "liquidity.min_price"),
    ],
)
def test_gates_forbid_growth_but_allow_reduction(
    gate: dict[str, float], columns: dict, key: str
) -> None:
    book = hand_book(PRICES, {("s1", "CCC"): 0.02, ("s2", "CCC"): 0.01}, columns=columns)
    cs = only(liquidity=gate)
    result = rebalance(
        book,
        decisions([("UP", "s1", "CCC", 0.04), ("DOWN", "s2", "CCC", 0.0)]),
        cs,
        risk_aversion=0.0,
    )
    # Net proposal 4% against 3% held: no growth allowed, so the name stays at 3%.
    assert weights(result)["CCC"] <= 0.03 + 1e-9
    up = act(result, "UP")
    assert up["action_type"] in ("REJECTED", "CAPPED") and up["top"]["constraint"] == key
    # A decision that only reduces is not blocked by a gate.
    book2 = hand_book(PRICES, {("s1", "CCC"): 0.02}, columns=columns)
    result2 = rebalance(book2, decisions([("DOWN", "s1", "CCC", 0.005)]), cs, risk_aversion=0.0)
    assert act(result2, "DOWN")["action_type"] == "OK"


def test_volatility_cap_is_a_cone_and_holds() -> None:
    book = hand_book(
        PRICES,
        loadings={t: [1.0, (-1.0) ** k] for k, t in enumerate(PRICES)},
        factor_vol=(0.2, 0.1),
    )
    cs = only(risk={"max_volatility": 0.02})
    dec = decisions(
        [("D1", "s1", "AAA", 0.05), ("D2", "s1", "BBB", 0.05), ("D3", "s1", "CCC", -0.02)]
    )
    result = rebalance(book, dec, cs, risk_aversion=0.0)
    assert result.run.exposures_after["volatility"] <= 0.02 + 1e-7
    assert result.run.exposures_before["volatility"] == 0.0
    a = act(result, "D1")
    assert a["action_type"] == "SCALED_DOWN" and a["top"]["constraint"] == "risk.max_volatility"


def test_drawdown_scales_the_gross_cap() -> None:
    dates = pd.bdate_range("2026-01-01", periods=100)
    nav = pd.Series(np.r_[np.linspace(1.0, 1.1, 60), np.linspace(1.1, 0.99, 40)] * 1e7, index=dates)
    d = drawdown(nav.to_numpy())
    m = risk_budget_multiplier(d, 0.2, 0.25)
    assert d == pytest.approx(0.1, abs=1e-12) and m == pytest.approx((0.2 - 0.1) / (0.2 * 0.9))
    book = hand_book(PRICES, nav=nav.iloc[-1], nav_history=nav)
    cs = only(
        exposure={"gross": {"max": 0.10}, "net": {"min": None, "max": None}},
        drawdown={"budget": 0.2},
    )
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.05), ("D2", "s1", "BBB", 0.05)]),
        cs,
        risk_aversion=0.0,
    )
    assert 0.10 * m - 2 * LOT <= result.run.exposures_after["gross"] <= 0.10 * m + 1e-7
    a = act(result, "D1")
    assert a["action_type"] == "SCALED_DOWN" and a["top"]["constraint"] == "exposure.gross.max"
    assert "drawdown-scaled" in a["top"]["description"]


def test_todays_nav_is_the_books_nav_whatever_the_history_says() -> None:
    """The drawdown is ``1 − NAV/peak`` with NAV the book's: a history that disagrees about
    today (or runs past it) does not move it."""
    dates = pd.bdate_range("2026-11-02", "2026-11-27")  # runs past the book's 2026-11-20
    nav = pd.Series(np.linspace(1.2e7, 0.9e7, len(dates)), index=dates)
    book = hand_book(PRICES, nav=1e7, nav_history=nav)
    data = prepare(book, decisions([("D1", "s1", "AAA", 0.01)]), only()).data
    peak = nav[nav.index < "2026-11-20"].max()
    assert data.drawdown == pytest.approx(1 - 1e7 / peak, abs=1e-15)
    assert nav["2026-11-20"] != 1e7 and 1 - nav.iloc[-1] / peak != pytest.approx(data.drawdown)


def test_drawdown_multiplier_edges() -> None:
    assert risk_budget_multiplier(0.0, 0.2, 0.25) == 1.0
    assert risk_budget_multiplier(0.25, 0.2, 0.25) == 0.25
    assert risk_budget_multiplier(None, 0.2, 0.25) == 1.0
    values = [risk_budget_multiplier(d, 0.2, 0.1) for d in np.linspace(0, 0.3, 31)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_sleeve_budget_binds_one_strategy_only() -> None:
    book = hand_book(PRICES)
    cs = only(strategies={"s1": {"max_gross": 0.05}})
    dec = decisions(
        [("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", 0.04), ("D3", "s2", "CCC", 0.04)]
    )
    result = rebalance(book, dec, cs, risk_aversion=0.0)
    sleeves = result.sleeve_targets.set_index(["strategy_id", "ticker"])["target_weight"]
    assert sleeves[("s1", "AAA")] + sleeves[("s1", "BBB")] == pytest.approx(0.05, abs=1e-7)
    assert act(result, "D3")["action_type"] == "OK"
    a = act(result, "D1")
    assert a["action_type"] == "SCALED_DOWN"
    assert (a["top"]["constraint"], a["top"]["group"]) == ("strategies.gross", "s1")


def test_decisions_of_two_strategies_on_one_ticker_are_netted() -> None:
    book = hand_book(PRICES)
    cs = only(strategies={"s1": {"max_gross": 0.5}, "s2": {"max_gross": 0.5}})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.03), ("D2", "s2", "AAA", -0.01)]),
        cs,
        risk_aversion=0.0,
    )
    target = result.targets.set_index("ticker").loc["AAA"]
    assert target["target_weight"] == pytest.approx(0.02, abs=1e-7)
    assert target["target_position"] == pytest.approx(0.02 * 1e7 / 100.0)


def test_restricted_reduce_only_and_close() -> None:
    book = hand_book(PRICES, {("s1", "AAA"): 0.02, ("s1", "BBB"): 0.03}, adv_shares={"BBB": 2_000})
    cs = only(
        restricted={"reduce_only": ["AAA"], "close": ["BBB"]}, trading={"max_trade_pct_adv": 0.5}
    )
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.04), ("D2", "s1", "BBB", 0.03)]),
        cs,
        risk_aversion=0.0,
    )
    w = weights(result)
    assert w["AAA"] == pytest.approx(0.02, abs=1e-9)
    a1 = act(result, "D1")
    assert a1["action_type"] == "REJECTED" and a1["top"]["constraint"] == "restricted.reduce_only"
    # BBB must go to zero but may sell only 1,000 shares = $50k = 0.5% of NAV today.
    assert w["BBB"] == pytest.approx(0.025, abs=1e-9)
    a2 = act(result, "D2")
    assert a2["action_type"] == "CAPPED" and a2["top"]["constraint"] == "restricted.close"
    assert result.status == "RELAXED"
    assert [b["constraint"] for b in result.breaches] == ["restricted.close"]


def test_groups_and_factors_the_book_lacks_are_config_errors() -> None:
    book = hand_book(PRICES, sectors=SECTORS)
    cs = only(
        groups={"sector": {"max_net": 0.1, "net_overrides": {"Tehc": 0.2}}},
        factors={"bands": {"VALUE": [-0.1, 0.1]}},
        restricted={"close": ["ZZZ"]},
        position={"max_weight": 0.05, "overrides": {"QQQ": 0.1}},
    )
    with pytest.raises(ConfigError) as err:
        rebalance(book, decisions([("D1", "s1", "AAA", 0.01)]), cs, strict=True, risk_aversion=0.0)
    text = "\n".join(err.value.problems)
    for key in ("groups.sector.net_overrides", "Tehc", "factors.bands", "VALUE"):
        assert key in text
    assert "ZZZ" not in text and "QQQ" not in text  # tickers are warnings, not errors


def test_tickers_the_book_lacks_are_run_warnings() -> None:
    """A firm-wide restricted list or override table names more than one book holds: the
    run goes on under the caller's set, says which names it skipped, and applies the
    rest."""
    book = hand_book(PRICES, {("s1", "AAA"): 0.02, ("s1", "BBB"): 0.02}, sectors=SECTORS)
    cs = only(
        restricted={"reduce_only": ["AAA", "ZZZ"], "close": ["BBB", "YYY"]},
        position={"max_weight": 0.05, "overrides": {"QQQ": 0.1, "CCC": 0.01}},
    )
    dec = decisions([("D1", "s1", "AAA", 0.04), ("D2", "s1", "CCC", 0.03)])
    result = rebalance(book, dec, cs, state="NORMAL", risk_aversion=0.0, strict=True)
    assert result.status in ("OPTIMAL", "RELAXED") and result.run.constraint_set == "family"
    warnings = "\n".join(result.run.warnings)
    assert "restricted.reduce_only: tickers not in the book: ZZZ" in warnings
    assert "restricted.close: tickers not in the book: YYY" in warnings
    assert "position.overrides: tickers not in the book: QQQ" in warnings
    w = weights(result)
    assert w["AAA"] <= 0.02 + 1e-9 and w["BBB"] < 0.02 and w["CCC"] <= 0.01 + 1e-9


def test_contradictory_strategy_budget_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"strategies\.s1\.max_gross"):
        only(
            exposure={"gross": {"max": 1.0}, "net": {"min": None, "max": None}},
            strategies={"s1": {"max_gross": 2.0}},
        )


def test_group_caps_that_cannot_admit_the_net_floor_are_a_config_error() -> None:
    book = hand_book(PRICES, sectors=SECTORS)
    cs = only(
        exposure={"gross": {"max": 2.0}, "net": {"min": 0.4, "max": 0.9}},
        groups={"sector": {"max_net": 0.1}},  # three sectors: at most 30% net long
    )
    with pytest.raises(ConfigError, match=r"sector net caps add up to 0\.3"):
        rebalance(book, decisions([("D1", "s1", "AAA", 0.01)]), cs, strict=True, risk_aversion=0.0)


_LABELS = st.lists(
    st.one_of(
        st.sampled_from(["", "Tech", "tech", "Énergie", "None", "B"]), st.none(), st.integers(0, 3)
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(_LABELS)
def test_group_membership_reads_labels_as_str_does(labels: list[object]) -> None:
    """Groups are the labels as ``str`` reads them, sorted, without "" (no group); each
    name is in its own label's row and no other."""
    groups, a = membership(np.array(labels, dtype=object))
    text = [str(x) for x in labels]
    assert groups == sorted(set(text) - {""})
    expected = np.array([[t == g for t in text] for g in groups], dtype=float)
    np.testing.assert_array_equal(a.toarray(), expected.reshape(len(groups), len(labels)))


def test_per_name_settings_are_read_for_each_name_and_only_it() -> None:
    """``by_name`` and ``named`` read a ticker-keyed setting the way a dict lookup per
    name would; names absent from the setting keep the default (one per name, or one)."""
    book = hand_book({"AAA": 10.0, "BBB": 20.0, "CCC": 30.0, "DDD": 40.0})
    data = prepare(book, decisions([("D1", "s1", "AAA", 0.01)]), only()).data
    names = [str(t) for t in data.tickers]
    setting = {"CCC": 0.3, "AAA": 0.1, "ZZZ": 9.0, 1: 5.0}
    default = np.arange(data.n, dtype=float)
    expected = [setting.get(t, default[k]) for k, t in enumerate(names)]
    np.testing.assert_array_equal(data.by_name(setting, default), expected)  # type: ignore[arg-type]
    np.testing.assert_array_equal(data.by_name({}, 2.0), np.full(data.n, 2.0))
    assert data.named(["BBB", "ZZZ", "DDD"]).tolist() == [t in ("BBB", "DDD") for t in names]
    assert not data.named([]).any()
