"""Book directories round-trip, and loading failures are typed errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data.errors import BookLoadError, ValidationError
from data.loaders import load_book, save_book
from data.risk_model import estimate_risk_model
from data.synthetic import make_universe
from optimizer import rebalance


def test_saved_book_loads_back_to_the_same_result(tmp_path: Path) -> None:
    universe = make_universe(60, 3, 5, years=0.5)
    save_book(universe.book, tmp_path / "book")
    loaded = load_book(tmp_path / "book")
    assert loaded.nav == universe.book.nav and loaded.as_of == universe.book.as_of
    a = rebalance(universe.book, universe.decisions, "default", risk_aversion=1.0, state="NORMAL")
    b = rebalance(loaded, universe.decisions, "default", risk_aversion=1.0, state="NORMAL")
    pd.testing.assert_series_equal(a.targets["target_position"], b.targets["target_position"])


def test_parquet_tables_are_read(tmp_path: Path) -> None:
    universe = make_universe(30, 2, 1, years=0.2)
    directory = save_book(universe.book, tmp_path / "book")
    market = pd.read_csv(directory / "market.csv")
    market.to_parquet(directory / "market.parquet")
    (directory / "market.csv").unlink()
    assert len(load_book(directory).market) == 30


def test_risk_model_is_estimated_from_returns_when_absent(tmp_path: Path) -> None:
    universe = make_universe(40, 3, 2, years=1.0)
    directory = save_book(universe.book, tmp_path / "book")
    for name in ("loadings", "factor_cov", "specific_var"):
        (directory / f"{name}.csv").unlink()
    book = load_book(directory)
    assert book.risk_model is not None
    model = estimate_risk_model(universe.book.returns, n_factors=3)  # type: ignore[arg-type]
    # The estimated total variance tracks the realized variance of each name.
    b = model.loadings.to_numpy()
    total = (b @ model.factor_cov.to_numpy() * b).sum(axis=1) + model.specific_var.to_numpy()
    realized = universe.book.returns.var().to_numpy() * 252  # type: ignore[union-attr]
    assert abs(total.mean() / realized.mean() - 1) < 0.35


def test_missing_directory_and_tables_are_load_errors(tmp_path: Path) -> None:
    with pytest.raises(BookLoadError, match="not found"):
        load_book(tmp_path / "nope")
    (tmp_path / "b").mkdir()
    with pytest.raises(BookLoadError, match=r"book\.toml"):
        load_book(tmp_path / "b")
    (tmp_path / "b" / "book.toml").write_text("as_of = 2026-11-20\nnav = 1e6\n")
    with pytest.raises(BookLoadError, match="positions"):
        load_book(tmp_path / "b")


def test_bad_book_toml_is_a_validation_error(tmp_path: Path) -> None:
    universe = make_universe(20, 2, 3, years=0.2, with_returns=False)
    directory = save_book(universe.book, tmp_path / "book")
    (directory / "book.toml").write_text("as_of = 2026-11-20\n")
    with pytest.raises(ValidationError, match="nav"):
        load_book(directory)


def test_synthetic_universe_is_deterministic_and_realistic() -> None:
    a = make_universe(300, 5, 11)
    b = make_universe(300, 5, 11)
    pd.testing.assert_frame_equal(a.decisions, b.decisions)
    pd.testing.assert_frame_equal(a.book.market, b.book.market)
    dollar_adv = a.book.market["adv_shares"] * a.book.market["price"]
    assert dollar_adv.max() / dollar_adv.min() > 1e3  # mega caps to illiquid small caps
    assert (a.decisions["target_weight"].abs() > 0.05).any()  # some decisions breach a 5% cap


def test_a_position_worth_a_thousand_navs_is_rejected_by_name() -> None:
    universe = make_universe(30, 2, 1, years=0.2)
    book = universe.book
    positions = book.positions.copy()
    positions.loc[0, "quantity"] = 1e30
    with pytest.raises(ValidationError, match=str(positions.loc[0, "ticker"])) as err:
        type(book).create(
            as_of=book.as_of, nav=book.nav, positions=positions, market=book.market.reset_index()
        )
    assert "NAV" in str(err.value)
