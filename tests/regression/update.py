"""Create the fixed portfolios (if missing) and rewrite their golden outputs.

    python -m tests.regression.update            # rewrite golden outputs of every fixture
    python -m tests.regression.update --inputs   # also regenerate the fixtures' inputs

Run it only after a change whose effect on the fixtures you have reviewed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from riskopt.data.book import Book
from riskopt.data.loaders import save_book
from riskopt.data.synthetic import make_universe
from riskopt.optimizer.regression import fixtures, write_golden

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "fixtures"

DEFAULT_SET = (
    Path(__file__).resolve().parents[2] / "constraints" / "sets" / "default.toml"
).read_text()


def _long_short(directory: Path) -> None:
    universe = make_universe(80, 5, 21, years=1.0)
    save_book(universe.book, directory / "book")
    universe.decisions.to_csv(directory / "decisions.csv", index=False)
    (directory / "constraints.toml").write_text(
        DEFAULT_SET.replace('name = "default"', 'name = "long_short_small"')
    )
    (directory / "fixture.toml").write_text(
        '# A 130/30-like multi-strategy book under the default set.\nrisk_aversion = 1.0\nstate = "NORMAL"\n'
    )


def _breached(directory: Path) -> None:
    universe = make_universe(60, 4, 22, years=1.0)
    book = universe.book
    # Blow up three holdings far beyond the cap, in names too illiquid to fix in one day.
    pos = book.positions.copy()
    market = book.market
    adv_value = (market["adv_shares"] * market["price"]).reindex(pos["ticker"]).to_numpy()
    order = np.argsort(adv_value)
    for k in order[:3]:
        price = float(market.loc[pos.loc[k, "ticker"], "price"])
        pos.loc[k, "quantity"] = np.sign(pos.loc[k, "quantity"] or 1.0) * round(
            0.09 * book.nav / price
        )
    broken = Book.create(
        as_of=book.as_of,
        nav=book.nav,
        positions=pos,
        market=market.reset_index(),
        risk_model=book.risk_model,
        nav_history=book.nav_history,
        returns=book.returns,
    )
    save_book(broken, directory / "book")
    universe.decisions.to_csv(directory / "decisions.csv", index=False)
    text = DEFAULT_SET.replace('name = "default"', 'name = "breached_holdings"')
    text = text.replace("max_trade_pct_adv = 0.10", "max_trade_pct_adv = 0.05")
    (directory / "constraints.toml").write_text(text)
    (directory / "fixture.toml").write_text(
        '# Holdings breach the per-name cap by more than the trade limit allows to fix.\nrisk_aversion = 0.0\nstate = "NORMAL"\n'
    )


def _shipped(name: str, set_name: str) -> str:
    text = (
        Path(__file__).resolve().parents[2] / "constraints" / "sets" / f"{set_name}.toml"
    ).read_text()
    return text.replace(f'name = "{set_name}"', f'name = "{name}"')


def _write(directory: Path, book: Book, decisions, constraints: str, meta: str) -> None:  # type: ignore[no-untyped-def]
    save_book(book, directory / "book")
    decisions.to_csv(directory / "decisions.csv", index=False)
    (directory / "constraints.toml").write_text(constraints)
    (directory / "fixture.toml").write_text(meta)


def _rebuilt(book: Book, positions) -> Book:  # type: ignore[no-untyped-def]
    return Book.create(
        as_of=book.as_of,
        nav=book.nav,
        positions=positions,
        market=book.market.reset_index(),
        risk_model=book.risk_model,
        nav_history=book.nav_history,
        returns=book.returns,
        strategy_nav=book.strategy_nav,
    )


def _long_only(directory: Path) -> None:
    universe = make_universe(70, 5, 31, years=1.0)
    book = universe.book
    longs = book.positions[book.positions["quantity"] > 0].reset_index(drop=True)
    decisions = universe.decisions.assign(target_weight=universe.decisions["target_weight"].abs())
    _write(
        directory,
        _rebuilt(book, longs),
        decisions,
        _shipped("long_only_book", "long_only"),
        '# A long-only book under the long_only set.\nrisk_aversion = 1.0\nstate = "NORMAL"\n',
    )


ONE_THIRTY_THIRTY_SET = """# A 130/30 policy: long about 130%, short about 30%, net about 100% of NAV.
name = "one_thirty_thirty"

[position]
max_weight = 0.06
tier = 2

[exposure.gross]
max = 1.65
tier = 1
[exposure.net]
min = 0.95
max = 1.05
tier = 1
[exposure.long]
max = 1.32
tier = 1
[exposure.short]
max = 0.32
tier = 1

[trading]
max_trade_pct_adv = 0.10

[groups.sector]
max_net = 0.30
max_gross = 0.40
tier = 3

[liquidity]
max_spread_bps = 80
min_price = 1.0

[risk]                  # a net-long equity book carries market risk
max_volatility = 0.20
tier = 2
"""


def _one_thirty_thirty(directory: Path) -> None:
    universe = make_universe(80, 5, 32, years=1.0)
    book = universe.book
    pos = book.positions.copy()
    price = book.market.loc[pos["ticker"], "price"].to_numpy()
    w = pos["quantity"].to_numpy() * price / book.nav
    long_sum, short_sum = w[w > 0].sum(), -w[w < 0].sum()
    scaled = np.where(w > 0, w * 1.30 / long_sum, w * 0.30 / short_sum)
    pos["quantity"] = np.round(scaled * book.nav / price)
    text = ONE_THIRTY_THIRTY_SET
    _write(
        directory,
        _rebuilt(book, pos),
        universe.decisions,
        text,
        '# A 130/30 book: long 130%, short 30%, net 100%.\nrisk_aversion = 1.0\nstate = "NORMAL"\n',
    )


def _market_neutral(directory: Path) -> None:
    universe = make_universe(80, 6, 33, years=1.0)
    _write(
        directory,
        universe.book,
        universe.decisions,
        _shipped("market_neutral_book", "market_neutral"),
        "# A long/short book under the market-neutral set (MARKET beta band).\nrisk_aversion = 1.0\n"
        'state = "NORMAL"\n',
    )


def _emergency(directory: Path) -> None:
    universe = make_universe(70, 5, 34, years=1.0)
    _write(
        directory,
        universe.book,
        universe.decisions,
        _shipped("emergency_book", "default"),
        "# The default set under EMERGENCY: de-risk only, forced de-risking.\nrisk_aversion = 1.0\n"
        'state = "EMERGENCY"\n',
    )


BUILDERS = {
    "long_short_small": _long_short,
    "breached_holdings": _breached,
    "long_only": _long_only,
    "one_thirty_thirty": _one_thirty_thirty,
    "market_neutral": _market_neutral,
    "emergency": _emergency,
}


def main(argv: list[str]) -> None:
    for name, build in BUILDERS.items():
        directory = FIXTURES / name
        if "--inputs" in argv or not (directory / "fixture.toml").exists():
            directory.mkdir(parents=True, exist_ok=True)
            build(directory)
    for directory in fixtures(FIXTURES):
        write_golden(directory)
        print(f"wrote golden outputs of {directory.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
