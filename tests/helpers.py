"""Small books built by hand, where the right answer is known by construction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from riskopt.data.book import Book, RiskModel


def hand_book(
    prices: Mapping[str, float],
    holdings: Mapping[tuple[str, str], float] | None = None,
    *,
    nav: float = 1e7,
    adv_shares: Mapping[str, float] | float = 1e9,
    lot_size: Mapping[str, int] | int = 1,
    sectors: Mapping[str, str] | None = None,
    with_risk: bool = True,
    columns: Mapping[str, Mapping[str, object]] | None = None,
    loadings: Mapping[str, Sequence[float]] | None = None,
    factor_vol: Sequence[float] = (0.2,),
    nav_history: pd.Series | None = None,
    strategy_nav: pd.DataFrame | None = None,
    returns: pd.DataFrame | None = None,
) -> Book:
    """A book of the given names; ``holdings`` maps (strategy, ticker) to *weights*."""
    tickers = list(prices)
    price = np.array([prices[t] for t in tickers], dtype=float)

    def per_name(value: Mapping[str, float] | float, default: float) -> np.ndarray:
        if isinstance(value, Mapping):
            return np.array([value.get(t, default) for t in tickers], dtype=float)
        return np.full(len(tickers), float(value))

    market = pd.DataFrame(
        {
            "ticker": tickers,
            "price": price,
            "adv_shares": per_name(adv_shares, 1e9),
            "spread_bps": 5.0,
            "volatility": 0.3,
            "sector": [(sectors or {}).get(t, "Tech") for t in tickers],
            "country": "US",
            "lot_size": per_name(lot_size, 1).astype(int),
            "tick_size": 0.01,
        }
    )
    for column, values in (columns or {}).items():
        default = market[column] if column in market.columns else None
        market[column] = [
            values.get(t, None if default is None else default.iloc[k])
            for k, t in enumerate(tickers)
        ]
    rows = []
    for (strategy, ticker), weight in (holdings or {}).items():
        rows.append(
            {"strategy_id": strategy, "ticker": ticker, "quantity": weight * nav / prices[ticker]}
        )
    positions = pd.DataFrame(rows, columns=["strategy_id", "ticker", "quantity"])
    model = None
    if with_risk:
        n = len(tickers)
        k = len(factor_vol)
        names = ["MARKET", *[f"F{j}" for j in range(1, k)]]
        b = (
            np.ones((n, k))
            if loadings is None
            else np.array([loadings[t] for t in tickers], dtype=float)
        )
        model = RiskModel(
            loadings=pd.DataFrame(b, index=tickers, columns=names),
            factor_cov=pd.DataFrame(np.diag(np.square(factor_vol)), index=names, columns=names),
            specific_var=pd.Series(0.09, index=tickers),
        )
    return Book.create(
        as_of="2026-11-20",
        nav=nav,
        positions=positions,
        market=market,
        risk_model=model,
        nav_history=nav_history,
        returns=returns,
        strategy_nav=strategy_nav,
    )


def decisions(
    rows: Sequence[tuple[str, str, str, float] | tuple[str, str, str, float, float]],
) -> pd.DataFrame:
    """Rows of (decision_id, strategy_id, ticker, target_weight[, confidence])."""
    out = []
    for row in rows:
        conf = row[4] if len(row) == 5 else 1.0
        out.append(
            {
                "decision_id": row[0],
                "strategy_id": row[1],
                "ticker": row[2],
                "target_weight": row[3],
                "confidence": conf,
            }
        )
    return pd.DataFrame(out)


def with_price(book: Book, ticker: str, price: float) -> Book:
    """``book`` with ``ticker``'s market price set to ``price`` (0 or NaN for a name with
    no valid price), validated again as a new book."""
    market = book.market.reset_index()
    market.loc[market["ticker"] == ticker, "price"] = price
    return Book.create(
        as_of=book.as_of,
        nav=book.nav,
        positions=book.positions,
        market=market,
        risk_model=book.risk_model,
    )
