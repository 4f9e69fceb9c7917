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


def test_decision_text_columns_come_out_as_text_whatever_they_came_in_as() -> None:
    """Ids given as numbers or as pandas' nullable strings are read as text, a column
    that already is text is kept as it is, and a missing value stays missing."""
    from data.contracts import check_decision_columns

    given = pd.DataFrame(
        {
            "decision_id": ["d1", None, "d3"],  # already text
            "ticker": pd.array(["AAA", "BBB", None], dtype="string"),  # missing is pd.NA
            "strategy_id": [7, 8, None],  # numbers (float with a NaN)
            "target_weight": ["0.1", "x", 0.3],
            "confidence": [1, 0.5, 1],
        },
        index=[10, 11, 12],
    )
    out = check_decision_columns(given)
    text = pd.Series(["x", None]).dtype
    for column in ("decision_id", "ticker", "strategy_id"):
        assert out[column].dtype == text, column
    assert out["decision_id"].tolist()[::2] == ["d1", "d3"] and pd.isna(out["decision_id"][1])
    assert out["ticker"].tolist()[:2] == ["AAA", "BBB"] and pd.isna(out["ticker"][2])
    assert out["strategy_id"].tolist()[:2] == ["7.0", "8.0"] and pd.isna(out["strategy_id"][2])
    assert out["target_weight"].tolist()[::2] == [0.1, 0.3] and pd.isna(out["target_weight"][1])
    assert list(out.index) == [0, 1, 2]
    assert given["ticker"].dtype == "string"  # the caller's frame is left alone
