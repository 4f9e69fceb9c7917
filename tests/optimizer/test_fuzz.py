"""Fuzzing malformed books and decisions: every call returns a result whose hard limits
hold, or raises one of the project's typed errors. Nothing else escapes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.book import Book
from data.errors import RiskoptError
from data.synthetic import make_universe
from optimizer import rebalance

BASE = make_universe(15, 2, 3, years=0.3, with_returns=False)
BAD_VALUES = [np.nan, np.inf, -np.inf, -1.0, 0.0, 1e30, -1e30, "abc", None, True]


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
                ["cell", "duplicate", "drop_column", "unknown", "empty", "nav", "types"]
            )
        )
        name = draw(st.sampled_from(sorted(tables)))
        table = tables[name]
        if kind == "cell" and len(table) and len(table.columns):
            row = draw(st.integers(0, len(table) - 1))
            col = draw(st.sampled_from(list(table.columns)))
            table[col] = table[col].astype(object)
            table.loc[table.index[row], col] = draw(st.sampled_from(BAD_VALUES))
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
            nav = draw(st.sampled_from([np.nan, -1.0, 0.0, "lots", np.inf]))
        elif kind == "types" and len(table) and len(table.columns):
            col = draw(st.sampled_from(list(table.columns)))
            tables[name] = table.assign(**{col: "x"})
    return tables["market"], tables["positions"], tables["decisions"], nav


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    assert result.status in ("OPTIMAL", "RELAXED", "FALLBACK", "DEGRADED")
    t = result.targets.set_index("ticker")
    priced = t[t["target_weight"].notna()]
    mk = book.market.loc[priced.index]
    traded = (priced["target_position"] - priced["current_position"]).abs()
    assert (traded <= 0.10 * mk["adv_shares"] * (1 + 1e-9) + 1e-7).all()
    assert len(result.actions[result.actions["decision_id"].notna()]) >= 0
