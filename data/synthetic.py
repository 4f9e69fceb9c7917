"""Deterministic synthetic universes: a realistic multi-strategy book for any N, K, seed.

The universe spans mega caps to illiquid small caps (lognormal market caps), so that a
$1bn book meets real liquidity limits: some proposed trades exceed the %ADV limit and
some proposed weights exceed the per-name cap. Everything is drawn from one
``numpy.random.Generator`` seeded by ``seed``; the same arguments give the same book.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskopt.data.book import Book, RiskModel

SECTORS = (
    ("Information Technology", 0.16),
    ("Financials", 0.13),
    ("Health Care", 0.12),
    ("Industrials", 0.12),
    ("Consumer Discretionary", 0.10),
    ("Communication Services", 0.07),
    ("Consumer Staples", 0.07),
    ("Energy", 0.06),
    ("Materials", 0.06),
    ("Utilities", 0.06),
    ("Real Estate", 0.05),
)
COUNTRIES = (
    ("US", 0.55, 1),
    ("JP", 0.10, 100),
    ("GB", 0.08, 1),
    ("DE", 0.06, 1),
    ("FR", 0.06, 1),
    ("CA", 0.05, 1),
    ("CH", 0.04, 1),
    ("HK", 0.03, 100),
    ("AU", 0.03, 1),
)
STYLE_FACTORS = ("MARKET", "SIZE", "VALUE", "MOMENTUM", "QUALITY", "LOWVOL")
STRATEGIES = ("momentum", "value", "stat_arb")
TRADING_DAYS = 252


@dataclass(frozen=True)
class SyntheticUniverse:
    """A generated book with the decisions its strategies propose for this rebalance."""

    book: Book
    decisions: pd.DataFrame


def make_universe(
    n: int = 500,
    k: int = 10,
    seed: int = 0,
    *,
    nav: float = 1e9,
    years: float = 3.0,
    as_of: dt.date = dt.date(2026, 11, 20),
    coverage: float = 0.7,
    decision_share: float = 0.35,
    with_returns: bool = True,
) -> SyntheticUniverse:
    """Generate a universe of ``n`` names with a ``k``-factor risk model.

    ``coverage`` is the share of names held by at least one strategy and
    ``decision_share`` the share of held names with a new decision.
    """
    if n < 10 or k < 1:
        raise ValueError("need n >= 10 and k >= 1")
    rng = np.random.default_rng(seed)
    market, model = _market(rng, n, k)
    dates = pd.bdate_range(end=pd.Timestamp(as_of), periods=round(years * TRADING_DAYS))
    returns = _returns(rng, model, dates) if with_returns else None

    positions, weights0 = _positions(rng, market, nav, coverage)
    decisions = _decisions(rng, market, weights0, decision_share)
    nav_history = _nav_history(rng, dates, nav)
    strategy_nav = pd.DataFrame(
        {s: _nav_history(rng, dates, nav / len(STRATEGIES)).to_numpy() for s in STRATEGIES},
        index=dates,
    )

    book = Book.create(
        as_of=as_of,
        nav=nav,
        positions=positions,
        market=market,
        risk_model=model,
        nav_history=nav_history,
        returns=returns,
        strategy_nav=strategy_nav,
    )
    return SyntheticUniverse(book=book, decisions=decisions)


def _market(rng: np.random.Generator, n: int, k: int) -> tuple[pd.DataFrame, RiskModel]:
    """Per-name market data, and the risk model whose total variance gives each name's
    volatility."""
    sector_names = np.array([s for s, _ in SECTORS])
    sector_p = np.array([p for _, p in SECTORS])
    sector = rng.choice(len(sector_names), size=n, p=sector_p / sector_p.sum())
    country_names = np.array([c for c, _, _ in COUNTRIES])
    country_p = np.array([p for _, p, _ in COUNTRIES])
    country = rng.choice(len(country_names), size=n, p=country_p / country_p.sum())
    lot_size = np.array([lot for _, _, lot in COUNTRIES])[country]

    prefix = np.array([s[:3].upper() for s in sector_names])[sector]
    tickers = np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), 5))

    market_cap = np.exp(rng.normal(np.log(8e9), 1.4, n)).clip(1.5e8, 2.5e12)
    price = np.round(np.exp(rng.normal(np.log(60.0), 0.8, n)).clip(2.0, 3000.0), 2)
    turnover = np.exp(rng.normal(np.log(0.006), 0.5, n))
    adv_shares = np.round(market_cap * turnover / price, 0)
    spread_bps = np.round((1.5 + 25.0 * np.sqrt(1e9 / market_cap)).clip(1.0, 150.0), 2)
    tick_size = np.where(price < 1.0, 0.0001, 0.01)

    model = _risk_model(rng, tickers, k, market_cap, sector)
    b = model.loadings.to_numpy()
    cov = model.factor_cov.to_numpy()
    total_var = np.einsum("ik,kl,il->i", b, cov, b) + model.specific_var.to_numpy()
    volatility = np.sqrt(total_var)

    clusters = _clusters(b, sector)
    market = pd.DataFrame(
        {
            "ticker": tickers,
            "price": price,
            "adv_shares": adv_shares,
            "spread_bps": spread_bps,
            "volatility": np.round(volatility, 6),
            "sector": sector_names[sector],
            "country": country_names[country],
            "cluster": clusters,
            "lot_size": lot_size,
            "tick_size": tick_size,
        }
    )
    return market, model


def _risk_model(
    rng: np.random.Generator,
    tickers: np.ndarray,
    k: int,
    market_cap: np.ndarray,
    sector: np.ndarray,
) -> RiskModel:
    n = len(tickers)
    names = list(STYLE_FACTORS[:k]) + [f"STAT{i}" for i in range(max(0, k - len(STYLE_FACTORS)))]
    loadings = rng.normal(0.0, 0.6, (n, k))
    loadings[:, 0] = rng.normal(1.0, 0.25, n)  # market beta
    if k > 1:
        size = -np.log(market_cap)
        loadings[:, 1] = (size - size.mean()) / size.std()
    # Statistical factors carry sector structure, which gives realistic clusters.
    for j in range(len(STYLE_FACTORS), k):
        loadings[:, j] += np.where(
            sector % (k - len(STYLE_FACTORS)) == j - len(STYLE_FACTORS), 1.0, 0.0
        )
    factor_vol = np.array([0.16] + [0.04] * (k - 1))
    corr = np.eye(k)
    if k > 2:
        corr[1, 2] = corr[2, 1] = -0.2
    cov = np.outer(factor_vol, factor_vol) * corr
    spec_vol = (0.12 + 0.25 * np.sqrt(5e9 / market_cap).clip(0.2, 2.0)) * np.exp(
        rng.normal(0, 0.15, n)
    )
    return RiskModel(
        loadings=pd.DataFrame(loadings, index=tickers, columns=names),
        factor_cov=pd.DataFrame(cov, index=names, columns=names),
        specific_var=pd.Series(spec_vol**2, index=tickers, name="specific_var"),
    )


def _clusters(loadings: np.ndarray, sector: np.ndarray) -> np.ndarray:
    # Correlation clusters: sector and the sign of the dominant non-market loading.
    if loadings.shape[1] < 2:
        return np.char.add("C", sector.astype(str))
    dominant = np.argmax(np.abs(loadings[:, 1:]), axis=1)
    return np.char.add(np.char.add("C", sector.astype(str)), np.char.add("_", dominant.astype(str)))


def _returns(rng: np.random.Generator, model: RiskModel, dates: pd.DatetimeIndex) -> pd.DataFrame:
    b = model.loadings.to_numpy()
    cov = model.factor_cov.to_numpy() / TRADING_DAYS
    t = len(dates)
    # A calmer past and a more volatile last quarter: a realistic regime shift.
    regime = np.where(np.arange(t) >= t - 63, 1.35, 1.0)[:, None]
    f = rng.multivariate_normal(np.zeros(len(cov)), cov, size=t) * regime
    e = rng.standard_normal((t, b.shape[0])) * np.sqrt(model.specific_var.to_numpy() / TRADING_DAYS)
    r = f @ b.T + e
    return pd.DataFrame(r.astype(np.float64), index=dates, columns=model.loadings.index)


def _positions(
    rng: np.random.Generator, market: pd.DataFrame, nav: float, coverage: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(market)
    held = rng.random(n) < coverage
    # Each held name belongs to one or two strategies.
    owner = rng.integers(0, len(STRATEGIES), n)
    second = rng.random(n) < 0.15
    frames = []
    # (share long, mean |weight|) per strategy: momentum L/S, value long-biased, stat_arb neutral.
    profile = {"momentum": (0.5, 0.004), "value": (0.65, 0.0045), "stat_arb": (0.5, 0.0015)}
    liquidity = market["adv_shares"].to_numpy() * market["price"].to_numpy()
    # Sized for 500 names; a broader book holds proportionally smaller weights, so its
    # gross stays where a real book's is (about 1.5) at any size.
    breadth = min(1.0, 500 / n)
    for s_idx, strategy in enumerate(STRATEGIES):
        mine = held & ((owner == s_idx) | (second & ((owner + 1) % len(STRATEGIES) == s_idx)))
        idx = np.flatnonzero(mine)
        long_share, mean_abs = profile[strategy]
        sign = np.where(rng.random(len(idx)) < long_share, 1.0, -1.0)
        # Larger weights in more liquid names, as a real PM would size them.
        size = rng.exponential(mean_abs * breadth, len(idx)) * np.sqrt(
            liquidity[idx] / np.median(liquidity)
        )
        weight = sign * np.minimum(size, 0.045)
        frames.append(
            pd.DataFrame(
                {
                    "strategy_id": strategy,
                    "ticker": market["ticker"].to_numpy()[idx],
                    "weight": weight,
                }
            )
        )
    w = pd.concat(frames, ignore_index=True)
    px = market.set_index("ticker").loc[w["ticker"], ["price", "lot_size"]].to_numpy()
    lots = np.round(w["weight"].to_numpy() * nav / px[:, 0] / px[:, 1])
    w["quantity"] = (lots * px[:, 1]).astype(float)
    w = w[w["quantity"] != 0].reset_index(drop=True)
    return w[["strategy_id", "ticker", "quantity"]], w[["strategy_id", "ticker", "weight"]]


def _decisions(
    rng: np.random.Generator, market: pd.DataFrame, weights0: pd.DataFrame, share: float
) -> pd.DataFrame:
    chosen = weights0[rng.random(len(weights0)) < share].copy()
    # Outsized proposals (5–9% of NAV, above any per-name cap) come from a handful of
    # names, not from a fixed share of a broad book.
    big = 0.15 * min(1.0, 500 / len(market))
    move = rng.choice(
        ["add", "trim", "close", "flip", "big"],
        size=len(chosen),
        p=[0.35 + 0.15 - big, 0.3, 0.15, 0.05, big],
    )
    w = chosen["weight"].to_numpy()
    target = np.select(
        [move == "add", move == "trim", move == "close", move == "flip", move == "big"],
        [
            w * rng.uniform(1.3, 2.5, len(w)),
            w * rng.uniform(0.2, 0.8, len(w)),
            0.0 * w,
            -w,
            np.sign(w) * rng.uniform(0.05, 0.09, len(w)),
        ],
    )
    chosen["target_weight"] = np.round(target, 6) + 0.0
    held = set(weights0["ticker"])
    fresh_pool = market.loc[~market["ticker"].isin(held), "ticker"].to_numpy()
    n_new = min(len(fresh_pool), max(3, len(chosen) // 6))
    fresh = pd.DataFrame(
        {
            "strategy_id": rng.choice(STRATEGIES, n_new),
            "ticker": rng.choice(fresh_pool, n_new, replace=False),
            "target_weight": np.round(
                rng.choice([-1.0, 1.0], n_new) * rng.uniform(0.003, 0.02, n_new), 6
            ),
        }
    )
    out = pd.concat([chosen[["strategy_id", "ticker", "target_weight"]], fresh], ignore_index=True)
    out["confidence"] = np.round(rng.uniform(0.3, 1.0, len(out)), 3)
    out = out.sort_values(["strategy_id", "ticker"]).reset_index(drop=True)
    out.insert(0, "decision_id", [f"D{i:06d}" for i in range(len(out))])
    return out[["decision_id", "ticker", "strategy_id", "target_weight", "confidence"]]


def _nav_history(rng: np.random.Generator, dates: pd.DatetimeIndex, nav: float) -> pd.Series:
    daily = rng.normal(0.0004, 0.006, len(dates))
    daily[-30:] -= 0.0015  # a recent drawdown of a few percent
    path = np.exp(np.cumsum(daily))
    return pd.Series(nav * path / path[-1], index=dates, name="nav")
