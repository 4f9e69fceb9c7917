"""Create the fixed portfolios (if missing) and rewrite their golden outputs.

    python -m tests.regression.update            # rewrite golden outputs of every fixture
    python -m tests.regression.update --inputs   # also regenerate the fixtures' inputs

Run it only after a change whose effect on the fixtures you have reviewed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from data.book import Book
from data.loaders import save_book
from data.synthetic import make_universe
from optimizer.regression import fixtures, write_golden

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


BUILDERS = {"long_short_small": _long_short, "breached_holdings": _breached}


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
