"""Book directories round-trip, and loading failures are typed errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from riskopt.data.errors import BookLoadError, ValidationError
from riskopt.data.loaders import load_book, load_decisions, save_book
from riskopt.data.risk_model import estimate_risk_model
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance


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
    from riskopt.data.contracts import check_decision_columns

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


def _small_book(directory: Path, market_rows: str, *, header: str = "") -> Path:
    """A book directory of two names, without a risk model."""
    directory.mkdir()
    (directory / "book.toml").write_text("as_of = 2026-11-20\nnav = 1000000.0\n")
    (directory / "positions.csv").write_text(
        "strategy_id,ticker,quantity\n007,0700,100\nNA,NA,-50\n"
    )
    (directory / "market.csv").write_text(
        (header or "ticker,price,adv_shares,spread_bps,volatility,sector,country,lot_size\n")
        + market_rows
    )
    return directory


def test_identifiers_are_read_as_text_without_guessing_missing_values(tmp_path: Path) -> None:
    book = load_book(
        _small_book(
            tmp_path / "book",
            "0700,50.0,1e6,5,0.3,0123,NA,100\nNA,20.0,1e6,5,0.3,Energy,US,1\n",
        )
    )
    assert sorted(book.market.index) == ["0700", "NA"]
    assert book.market.loc["0700", "sector"] == "0123"
    assert book.market.loc["0700", "country"] == "NA"
    assert set(book.positions["strategy_id"]) == {"007", "NA"}
    assert set(book.positions["ticker"]) == {"0700", "NA"}
    decisions_file = tmp_path / "d.csv"
    decisions_file.write_text(
        "decision_id,ticker,strategy_id,target_weight\n0001,0700,007,0.01\nNA,NA,NA,NA\n"
    )
    decisions = load_decisions(decisions_file)
    assert list(decisions["decision_id"]) == ["0001", "NA"]
    assert list(decisions["ticker"]) == ["0700", "NA"]
    assert decisions["target_weight"].isna().tolist() == [False, True]  # a number column


def test_a_fractional_lot_size_is_refused_not_truncated(tmp_path: Path) -> None:
    directory = _small_book(
        tmp_path / "book", "0700,50.0,1e6,5,0.3,Tech,HK,2.9\nNA,20.0,1e6,5,0.3,Energy,US,1\n"
    )
    with pytest.raises(ValidationError, match=r"lot_size: not a whole number.*0700"):
        load_book(directory)


def test_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    directory = _small_book(
        tmp_path / "book",
        "0700,50.0,1e6,5,0.3,Tech,HK,51.0\nNA,20.0,1e6,5,0.3,Energy,US,21.0\n",
        header="ticker,price,adv_shares,spread_bps,volatility,sector,country,price\n",
    )
    with pytest.raises(ValidationError, match="column 'price' appears twice"):
        load_book(directory)
    decisions_file = tmp_path / "d.csv"
    decisions_file.write_text(
        "decision_id,ticker,strategy_id,target_weight,target_weight\nD1,0700,s,0.01,0.02\n"
    )
    with pytest.raises(ValidationError, match="'target_weight' appears twice"):
        load_decisions(decisions_file)


def test_a_broken_table_is_a_book_load_error(tmp_path: Path) -> None:
    directory = _small_book(
        tmp_path / "book", "0700,50.0,1e6,5,0.3,Tech,HK,1\nNA,20.0,1e6,5,0.3,Energy,US,1\n"
    )
    (directory / "strategy_nav.csv").write_text("date,strategy_id,nav\nsoon,007,1.0\n")
    with pytest.raises(BookLoadError, match="cannot load book"):
        load_book(directory)
    (directory / "book.toml").write_bytes(b"as_of = 2026-11-20\nnav = 1e6 # \xff\n")
    with pytest.raises(BookLoadError, match="not UTF-8"):
        load_book(directory)
