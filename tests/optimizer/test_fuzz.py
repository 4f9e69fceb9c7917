"""Fuzzing malformed books, decisions, constraint sets and state declarations: every call
returns a result whose hard limits hold and whose numbers are finite, or raises one of
the project's typed errors. Nothing else escapes.

``RISKOPT_FUZZ_EXAMPLES`` sets how many inputs each fuzz test draws (default 300; under
CI one fixed sequence of them). A thorough local run: ``RISKOPT_FUZZ_EXAMPLES=10000``.
"""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.states import BlackSwanState
from riskopt.data.book import Book
from riskopt.data.errors import RiskoptError
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance

BASE = make_universe(15, 2, 3, years=0.3, with_returns=False)
BAD_VALUES = [
    np.nan,
    np.inf,
    -np.inf,
    -1.0,
    0.0,
    1e30,
    -1e30,
    1e-300,
    1e308,
    2.9,
    "abc",
    None,
    True,
    ("A", "B"),
    ["x"],
]
EXAMPLES = int(os.environ.get("RISKOPT_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def corruptions(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    market = BASE.book.market.reset_index()
    positions = BASE.book.positions.copy()
    dec = BASE.decisions.copy()
    nav: object = BASE.book.nav
    tables = {"market": market, "positions": positions, "decisions": dec}
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                [
                    "cell",
                    "duplicate",
                    "drop_column",
                    "unknown",
                    "empty",
                    "nav",
                    "types",
                    "repeat_label",
                ]
            )
        )
        name = draw(st.sampled_from(sorted(tables)))
        table = tables[name]
        if kind == "cell" and len(table) and len(table.columns):
            row = draw(st.integers(0, len(table) - 1))
            col = draw(st.integers(0, len(table.columns) - 1))  # by place: labels may repeat
            values = table.iloc[:, col].astype(object).tolist()
            values[row] = draw(st.sampled_from(BAD_VALUES))
            table = table.copy()
            table.isetitem(col, pd.Series(values, index=table.index, dtype=object))
            tables[name] = table
        elif kind == "duplicate" and len(table):
            tables[name] = pd.concat([table, table.iloc[[0]]], ignore_index=True)
        elif kind == "drop_column" and len(table.columns):
            col = draw(st.sampled_from(list(table.columns)))
            tables[name] = table.drop(columns=[col])
        elif kind == "unknown" and len(table) and "ticker" in table.columns:
            table = table.copy()
            table["ticker"] = table["ticker"].astype(object)
            table.loc[table.index[0], "ticker"] = "NOT_A_TICKER"
            tables[name] = table
        elif kind == "empty":
            tables[name] = table.iloc[0:0]
        elif kind == "nav":
            nav = draw(st.sampled_from([np.nan, -1.0, 0.0, "lots", np.inf, 1e308, 1e-300]))
        elif kind == "repeat_label" and len(table.columns):
            col = draw(st.sampled_from(list(table.columns)))
            tables[name] = pd.concat([table, table[[col]]], axis=1)
        elif kind == "types" and len(table) and len(table.columns):
            col = draw(st.sampled_from(list(table.columns)))
            tables[name] = table.assign(**{col: "x"})
    return tables["market"], tables["positions"], tables["decisions"], nav


def _finite_and_within_limits(book: Book, result, trade_pct: float | None = 0.10) -> None:  # type: ignore[no-untyped-def]
    """Every number a result carries is finite; the hard trade limit and the trim hull hold."""
    assert result.status in ("OPTIMAL", "RELAXED", "FALLBACK", "DEGRADED")
    t = result.targets.set_index("ticker")
    priced = t[t["target_weight"].notna()]
    for column in ("target_position", "target_weight", "current_position", "delta_position"):
        assert np.isfinite(priced[column].to_numpy(dtype=float)).all(), column
    mk = book.market.loc[priced.index]
    traded = (priced["target_position"] - priced["current_position"]).abs()
    if trade_pct is not None:
        assert (traded <= trade_pct * mk["adv_shares"] * (1 + 1e-9) + 1e-7).all()
    s = result.sleeve_targets
    assert np.isfinite(s[["target_weight", "target_position"]].to_numpy(dtype=float)).all()
    lot_w = (mk["lot_size"] * mk["price"] / book.nav).reindex(s["ticker"]).fillna(0).to_numpy()
    c, p, f = s["current_weight"], s["proposed_weight"], s["target_weight"]
    assert (f >= np.minimum(0, np.minimum(c, p)) - lot_w - 1e-9).all()
    assert (f <= np.maximum(0, np.maximum(c, p)) + lot_w + 1e-9).all()
    for key, value in result.run.exposures_after.items():
        assert np.isfinite(value), key


@FUZZ
@given(corruptions())
def test_malformed_inputs_give_a_result_or_a_typed_error(case) -> None:  # type: ignore[no-untyped-def]
    market, positions, dec, nav = case
    try:
        book = Book.create(
            as_of=BASE.book.as_of,
            nav=nav,
            positions=positions,
            market=market,
            risk_model=BASE.book.risk_model,
        )
        result = rebalance(book, dec, "default", state="NORMAL")
    except RiskoptError:
        return
    _finite_and_within_limits(book, result)


SET_VALUES = [np.nan, np.inf, -np.inf, -1.0, 0.0, 1e-12, 1e12, "x", None, [], {}]
SET_KEYS = [
    ("position", "max_weight"),
    ("trading", "max_trade_pct_adv"),
    ("exposure", "gross"),
    ("risk", "max_volatility"),
    ("drawdown", "budget"),
    ("solver", "chain"),
    ("solver", "max_iters"),
    ("debate", "max_risk_aversion"),
    ("tiers", "penalty_ratio"),
    ("states", "default_state"),
    ("factors", "bands"),
    ("liquidity", "max_spread_bps"),
]
STATE_ROWS = [
    "NORMAL",
    "emergency",
    None,
    3,
    ["ELEVATED"],
    "PANIC",
    BlackSwanState("EMERGENCY", as_of=dt.datetime(2026, 11, 20, 12)),  # naive clock
    BlackSwanState("ELEVATED", overrides={"derisk_only": "yes"}),
    BlackSwanState("NORMAL", overrides={"gross": [0.5]}),
    BlackSwanState("NORMAL", overrides={"forced_derisk": 0.3}),
    BlackSwanState("NORMAL", overrides="not a table"),  # type: ignore[arg-type]
]


@st.composite
def policies(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    raw = ConstraintSet.load("default").model_dump()
    for _ in range(draw(st.integers(1, 3))):
        section, key = draw(st.sampled_from(SET_KEYS))
        raw[section][key] = draw(st.sampled_from(SET_VALUES))
    return raw, draw(st.sampled_from(STATE_ROWS))


@FUZZ
@given(policies())
def test_malformed_constraint_sets_and_state_rows_give_a_result_or_a_typed_error(
    case,  # type: ignore[no-untyped-def]
) -> None:
    raw, state = case
    try:
        cs = ConstraintSet.from_dict(raw)
        result = rebalance(BASE.book, BASE.decisions, cs, state=state)
    except RiskoptError:
        return
    # A set that loads keeps the gate on: every hard limit still holds.
    _finite_and_within_limits(BASE.book, result, cs.trading.max_trade_pct_adv)
    assert result.status != "FALLBACK" or result.run.solver_chain


def test_an_infinite_price_is_no_price() -> None:
    """A decision on a name quoted at ``inf`` is rejected as unpriced, not handed to the
    solver as a NaN weight (found by the fuzz above)."""
    market = BASE.book.market.reset_index()
    market["price"] = market["price"].astype(object)
    ticker = str(market.loc[8, "ticker"])
    market.loc[8, "price"] = np.inf
    book = Book.create(
        as_of=BASE.book.as_of,
        nav=BASE.book.nav,
        positions=BASE.book.positions,
        market=market,
        risk_model=BASE.book.risk_model,
    )
    dec = pd.DataFrame(
        {
            "decision_id": ["D1"],
            "ticker": [ticker],
            "strategy_id": ["value"],
            "target_weight": [-0.005],
        }
    )
    result = rebalance(book, dec, "default", state="NORMAL")
    assert result.status in ("OPTIMAL", "RELAXED")
    action = result.actions.set_index("decision_id").loc["D1"]
    assert action["action_type"] == "REJECTED" and "no valid price" in action["reason"]
    _finite_and_within_limits(book, result)
