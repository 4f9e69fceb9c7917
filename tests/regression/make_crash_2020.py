"""Build the inputs of the crash_2020 fixture from skfolio's S&P 500 price file.

    python -m tests.regression.make_crash_2020 PATH/TO/sp500_dataset.csv.gz [--out DIR]

The price file is ``skfolio/datasets/data/sp500_dataset.csv.gz`` from the skfolio 1.12.2
wheel (BSD-3-Clause): daily adjusted closes of 20 S&P 500 constituents, 1990-01-02 to
2022-12-28. ``pip download --no-deps skfolio==1.12.2`` and unzip the wheel to get it.

A $100m long-only book buys the 20 names in equal dollar amounts at the close of
2019-01-02, in two sleeves (``quality`` and ``cyclical``, three names held by both), and
holds them untouched through 2020-03-20, the Friday that closed the worst week of the
March 2020 crash. Prices, returns, NAV paths, drawdowns and realised volatilities are the
data's; ADV and spreads are rough approximations (the file has no volumes or quotes).
Everything is deterministic; the golden outputs are not written here.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "data" / "fixtures" / "crash_2020"

# sha256 of skfolio 1.12.2's skfolio/datasets/data/sp500_dataset.csv.gz.
SOURCE_SHA256 = "ee21cac28befb1d0a739a9ceb22184f995394726aa0cfde9a21941d1ac04ac0d"

START = pd.Timestamp("2019-01-02")  # first trading day of 2019: the book is bought here
AS_OF = pd.Timestamp("2020-03-20")  # Friday close of the week of 16-20 March 2020
RETURNS_FROM = pd.Timestamp("2018-03-21")  # two years of daily returns up to AS_OF
CAPITAL = 100_000_000.0
PER_NAME = CAPITAL / 20  # equal dollars per ticker; a shared ticker is split in half
VOL_WINDOW = 63  # trading days of realised volatility in market.csv

QUALITY = ["AAPL", "MSFT", "JPM", "HD", "JNJ", "LLY", "MRK", "PFE", "UNH", "KO", "PEP", "PG", "WMT"]
CYCLICAL = ["AMD", "BBY", "GE", "BAC", "CVX", "XOM", "RRC", "AAPL", "JPM", "HD"]
SLEEVES = {"quality": QUALITY, "cyclical": CYCLICAL}

# GICS sector of each name in early 2020 (before the 2023 GICS changes).
SECTOR = {
    "AAPL": "Information Technology",
    "AMD": "Information Technology",
    "MSFT": "Information Technology",
    "BAC": "Financials",
    "JPM": "Financials",
    "BBY": "Consumer Discretionary",
    "HD": "Consumer Discretionary",
    "CVX": "Energy",
    "XOM": "Energy",
    "RRC": "Energy",
    "GE": "Industrials",
    "JNJ": "Health Care",
    "LLY": "Health Care",
    "MRK": "Health Care",
    "PFE": "Health Care",
    "UNH": "Health Care",
    "KO": "Consumer Staples",
    "PEP": "Consumer Staples",
    "PG": "Consumer Staples",
    "WMT": "Consumer Staples",
}

# APPROXIMATIONS, not data: rough average daily traded value in USD millions in
# January-February 2020 (order of magnitude only; March 2020 volumes ran well above
# these). adv_shares is this divided by the file's price at AS_OF, so it is in the same
# adjusted share units as the prices and positions.
ADV_USD_M = {
    "AAPL": 10_000,
    "MSFT": 5_000,
    "AMD": 3_000,
    "BAC": 1_800,
    "JPM": 1_500,
    "HD": 1_000,
    "UNH": 1_000,
    "JNJ": 1_000,
    "XOM": 1_000,
    "PG": 900,
    "GE": 800,
    "CVX": 800,
    "WMT": 800,
    "PFE": 700,
    "MRK": 700,
    "KO": 700,
    "PEP": 600,
    "LLY": 400,
    "BBY": 200,
    "RRC": 30,
}

# APPROXIMATIONS, not data: a plausible quoted spread in basis points. Large caps 1-5 bps;
# GE and RRC traded at about $6-7 and $3 on the day, where one cent is 15 and 33 bps.
SPREAD_BPS = {
    "AAPL": 1.0,
    "MSFT": 1.0,
    "AMD": 3.0,
    "BAC": 5.0,
    "BBY": 4.0,
    "CVX": 2.0,
    "GE": 15.0,
    "HD": 2.0,
    "JNJ": 2.0,
    "JPM": 2.0,
    "KO": 3.0,
    "LLY": 2.0,
    "MRK": 2.0,
    "PEP": 2.0,
    "PFE": 4.0,
    "PG": 2.0,
    "RRC": 35.0,
    "UNH": 2.0,
    "WMT": 2.0,
    "XOM": 3.0,
}

# The sleeves' proposals at the close of AS_OF. Target weights are fractions of the
# book's NAV for that sleeve's own holding; the comment is the current weight.
DECISIONS = [
    # quality: buys quality on the fall, trims the names that held up, leaves banks,
    # and opens the strongest balance sheet in energy.
    ("QUA-01", "MSFT", "quality", 0.0800, 0.70),  # 0.0704
    ("QUA-02", "JNJ", "quality", 0.0600, 0.65),  # 0.0494
    ("QUA-03", "UNH", "quality", 0.0550, 0.60),  # 0.0441
    ("QUA-04", "AAPL", "quality", 0.0450, 0.55),  # 0.0376 (shared)
    ("QUA-05", "WMT", "quality", 0.0500, 0.50),  # 0.0637
    ("QUA-06", "PG", "quality", 0.0500, 0.45),  # 0.0591
    ("QUA-07", "JPM", "quality", 0.0000, 0.60),  # 0.0222 (shared): exit
    ("QUA-08", "CVX", "quality", 0.0200, 0.40),  # 0 (new for the sleeve)
    # cyclical: cuts the names whose solvency or dividend is in question and the winner
    # that drifted far over its cap, adds to JPM; says nothing on AAPL and HD.
    ("CYC-01", "RRC", "cyclical", 0.0000, 0.80),  # 0.0158: exit
    ("CYC-02", "XOM", "cyclical", 0.0150, 0.60),  # 0.0254
    ("CYC-03", "GE", "cyclical", 0.0250, 0.55),  # 0.0431
    ("CYC-04", "AMD", "cyclical", 0.0700, 0.50),  # 0.1071
    ("CYC-05", "JPM", "cyclical", 0.0350, 0.50),  # 0.0222 (shared)
]

CONSTRAINTS = """\
# The long_only set, fitted to a 20-name all-US book in the March 2020 drawdown.
#
# Changes from constraints/sets/long_only.toml: the drawdown budget is 45% (the book is
# 30.4% below its peak on 2020-03-20, so m(d) = 0.47 scales the gross and volatility
# caps), each sleeve's gross budget is scaled by its own drawdown (strategy_budget 40%),
# the volatility cap is 25% (the book's ex-ante volatility is far above it), a name may
# reach 8% (twenty equal names are 5% each before any drift), and there is no country
# cap (every name is US).

name = "crash_2020"
description = "Long only, 20 US large caps in the March 2020 crash: drawdown-scaled gross and volatility."

[position]
max_weight = 0.08
tier = 2

[exposure.gross]
max = 1.00
tier = 1
[exposure.net]
min = 0.0
max = 1.00
tier = 1
[exposure.long]
max = 1.00
tier = 1
[exposure.short]
max = 0.0                       # no shorts at all
tier = 1

[trading]
max_trade_pct_adv = 0.10

[groups.sector]
max_gross = 0.30                # for a long-only book gross = net per sector
tier = 3

[liquidity]
max_position_pct_adv = 0.25
liquidation_days = 5
position_tier = 2
max_spread_bps = 80
min_price = 1.0

[risk]
max_volatility = 0.25
tier = 2

[drawdown]
budget = 0.45                   # book: d = 0.304, m = 0.47
floor = 0.30
strategy_budget = 0.40          # quality: d = 0.236, m = 0.54; cyclical: d = 0.389, m = floor

[strategies.quality]
max_gross = 0.60
min_net = 0.0
[strategies.cyclical]
max_gross = 0.45
min_net = 0.0

[states]
default_state = "ELEVATED"
max_age_hours = 24

[states.ELEVATED]
position = 0.80
gross = 0.85
net = 0.85
groups = 0.85
volatility = 0.80
strategies = 0.85
risk_aversion_floor = 1.0

[states.EMERGENCY]
position = 0.50
gross = 0.60
net = 0.50
groups = 0.50
volatility = 0.50
strategies = 0.50
risk_aversion_floor = 5.0
no_new_positions = true
derisk_only = true
forced_derisk = 0.20
forced_derisk_tier = 1
"""

FIXTURE = """\
# Twenty real US stocks held long-only from 2019-01-02 into the March 2020 crash
# (skfolio's S&P 500 prices; see SOURCE.md).
risk_aversion = 0.0
state = "NORMAL"
"""


def load_prices(path: Path) -> pd.DataFrame:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{path}: sha256 {digest} is not skfolio 1.12.2's ({SOURCE_SHA256})")
    prices = pd.read_csv(path, index_col="Date", parse_dates=True)
    assert set(prices.columns) == set(SECTOR), sorted(prices.columns)
    return prices.sort_index()


def positions(prices: pd.DataFrame) -> pd.DataFrame:
    """Whole shares bought at the close of START, dollars equal per ticker."""
    held: dict[str, int] = {}
    for names in SLEEVES.values():
        for t in names:
            held[t] = held.get(t, 0) + 1
    start = prices.loc[START].astype(float).to_dict()
    rows = []
    for strategy, names in SLEEVES.items():
        for t in sorted(names):
            dollars = PER_NAME / held[t]
            quantity = int(np.floor(dollars / start[t]))
            rows.append({"strategy_id": strategy, "ticker": t, "quantity": quantity})
    return pd.DataFrame(rows)


def nav_paths(prices: pd.DataFrame, pos: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """Book and sleeve NAV from START to AS_OF: quantity times close, fully invested."""
    window = prices.loc[START:AS_OF]
    sleeves = {}
    for strategy, rows in pos.groupby("strategy_id", sort=False):
        q = rows.set_index("ticker")["quantity"].astype(float)
        sleeves[strategy] = window[q.index].mul(q, axis=1).sum(axis=1)
    by_sleeve = pd.DataFrame(sleeves).round(2)
    book = by_sleeve.sum(axis=1).round(2)
    return book, by_sleeve


def market(prices: pd.DataFrame, returns: pd.DataFrame) -> pd.DataFrame:
    price = prices.loc[AS_OF].astype(float).to_dict()
    vol = (returns.loc[:AS_OF].iloc[-VOL_WINDOW:].std(ddof=1) * np.sqrt(252)).to_dict()
    tickers = sorted(prices.columns)
    return pd.DataFrame(
        {
            "ticker": tickers,
            "price": [price[t] for t in tickers],
            "adv_shares": [float(round(ADV_USD_M[t] * 1e6 / price[t])) for t in tickers],
            "spread_bps": [SPREAD_BPS[t] for t in tickers],
            "volatility": [round(vol[t], 6) for t in tickers],
            "sector": [SECTOR[t] for t in tickers],
            "country": "US",
            "lot_size": 1,
            "tick_size": 0.01,
        }
    )


def build(source: Path, out: Path) -> None:
    prices = load_prices(source)
    assert START in prices.index and AS_OF in prices.index
    returns = prices.pct_change().loc[RETURNS_FROM:AS_OF]
    assert returns.notna().all().all() and returns.index[-1] == AS_OF

    pos = positions(prices)
    book_nav, sleeve_nav = nav_paths(prices, pos)
    nav = float(book_nav.loc[AS_OF])

    book_dir = out / "book"
    book_dir.mkdir(parents=True, exist_ok=True)
    (book_dir / "book.toml").write_text(f"as_of = {AS_OF.date().isoformat()}\nnav = {nav!r}\n")
    pos.to_csv(book_dir / "positions.csv", index=False)
    market(prices, returns).to_csv(book_dir / "market.csv", index=False)
    book_nav.rename("nav").rename_axis("date").reset_index().to_csv(
        book_dir / "nav_history.csv", index=False, date_format="%Y-%m-%d"
    )
    sleeve_nav.rename_axis("date").reset_index().melt(
        id_vars="date", var_name="strategy_id", value_name="nav"
    ).to_csv(book_dir / "strategy_nav.csv", index=False, date_format="%Y-%m-%d")
    frame = returns[sorted(returns.columns)].rename_axis("date").reset_index()
    frame["date"] = frame["date"].astype("datetime64[us]")
    frame.to_parquet(book_dir / "returns.parquet", index=False)

    pd.DataFrame(
        DECISIONS, columns=["decision_id", "ticker", "strategy_id", "target_weight", "confidence"]
    ).to_csv(out / "decisions.csv", index=False)
    (out / "constraints.toml").write_text(CONSTRAINTS)
    (out / "fixture.toml").write_text(FIXTURE)

    print(f"as_of {AS_OF.date()}  nav {nav:,.2f}")
    for name, path in [("book", book_nav), *sleeve_nav.items()]:
        top = int(np.argmax(path.to_numpy()))
        print(
            f"{name}: nav {path.iloc[-1]:,.2f}  peak {path.iloc[top]:,.2f} on "
            f"{book_nav.index[top]:%Y-%m-%d}  drawdown {1 - path.iloc[-1] / path.iloc[top]:.4f}"
        )
    weight = pos.assign(
        w=pos["quantity"] * pos["ticker"].map(prices.loc[AS_OF].astype(float).to_dict()) / nav
    )
    print(weight.round({"w": 4}).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="skfolio's sp500_dataset.csv.gz")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture directory")
    args = parser.parse_args()
    build(args.source, args.out)


if __name__ == "__main__":
    main()
