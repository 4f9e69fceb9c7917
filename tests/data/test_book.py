"""Book.create: history dated after ``as_of`` is never used, and tables in the wrong units
are one ValidationError naming table, column and tickers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from riskopt.data.book import Book
from riskopt.data.errors import ValidationError
from riskopt.data.loaders import load_book, save_book
from riskopt.data.risk_model import RiskModelSettings
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance
from riskopt.optimizer.cli import SAMPLES, app
from riskopt.optimizer.cli_support import EXIT_DEGRADED

UNIVERSE = make_universe(60, 3, 4, years=1.0)
FUTURE = pd.bdate_range("2026-11-23", periods=5)  # after the book's 2026-11-20


def _with_future_rows(directory: Path) -> None:
    """Append rows dated after ``as_of`` that would move the result if they were read: a
    NAV crash, wild returns, a strategy's collapse."""
    rng = np.random.default_rng(1)
    returns = pd.read_parquet(directory / "returns.parquet")
    later = pd.DataFrame(rng.normal(0, 0.08, (len(FUTURE), returns.shape[1] - 1)))
    later.columns = returns.columns[1:]
    later.insert(0, "date", FUTURE)
    pd.concat([returns, later]).to_parquet(directory / "returns.parquet", index=False)
    nav = pd.read_csv(directory / "nav_history.csv")
    crash = pd.DataFrame({"date": FUTURE.strftime("%Y-%m-%d"), "nav": np.linspace(8e8, 4e8, 5)})
    pd.concat([nav, crash]).to_csv(directory / "nav_history.csv", index=False)
    paths = pd.read_csv(directory / "strategy_nav.csv")
    collapse = pd.DataFrame(
        {"date": FUTURE.strftime("%Y-%m-%d"), "strategy_id": paths["strategy_id"].iloc[0]}
    ).assign(nav=1e6)
    pd.concat([paths, collapse]).to_csv(directory / "strategy_nav.csv", index=False)


def _estimated_book_dir(directory: Path) -> Path:
    """The universe's book on disk, without loadings: its risk model is estimated."""
    save_book(UNIVERSE.book, directory)
    for name in ("loadings", "factor_cov", "specific_var"):
        (directory / f"{name}.csv").unlink()
    return directory


def test_rows_after_as_of_change_nothing_but_the_warnings(tmp_path: Path) -> None:
    clean = load_book(_estimated_book_dir(tmp_path / "clean"))
    directory = _estimated_book_dir(tmp_path / "future")
    _with_future_rows(directory)
    future = load_book(directory)
    assert future.warnings == (
        "nav_history: 5 rows dated after as_of 2026-11-20 ignored",
        "returns: 5 rows dated after as_of 2026-11-20 ignored",
        "strategy_nav: 5 rows dated after as_of 2026-11-20 ignored",
    )
    a = rebalance(clean, UNIVERSE.decisions, "default", state="NORMAL")
    b = rebalance(future, UNIVERSE.decisions, "default", state="NORMAL")
    assert a.debate is not None and b.debate is not None
    assert b.run.gamma == a.run.gamma and b.debate.gamma == a.debate.gamma
    pd.testing.assert_frame_equal(a.targets, b.targets)
    assert b.run.exposures_before == a.run.exposures_before
    assert b.run.exposures_after == a.run.exposures_after
    assert set(future.warnings) <= set(b.run.warnings)
    assert not set(future.warnings) & set(a.run.warnings)


def test_book_create_cuts_every_dated_table_at_as_of() -> None:
    book = UNIVERSE.book
    assert book.returns is not None and book.strategy_nav is not None
    rng = np.random.default_rng(2)
    returns = pd.concat(
        [book.returns, pd.DataFrame(rng.normal(0, 0.3, (2, 60)), FUTURE[:2], book.returns.columns)]
    )
    nav = pd.concat([book.nav_history, pd.Series([1.0, 2.0, 3.0], index=FUTURE[:3])])
    paths = pd.concat([book.strategy_nav, book.strategy_nav.iloc[:1].set_axis(FUTURE[:1])])
    common = {
        "as_of": book.as_of,
        "nav": book.nav,
        "positions": book.positions,
        "market": book.market.reset_index(),
        "risk_model_settings": RiskModelSettings(factors=3),
    }
    cut = Book.create(**common, returns=returns, nav_history=nav, strategy_nav=paths)
    whole = Book.create(
        **common,
        returns=book.returns,
        nav_history=book.nav_history,
        strategy_nav=book.strategy_nav,
    )
    assert cut.warnings == (
        "nav_history: 3 rows dated after as_of 2026-11-20 ignored",
        "returns: 2 rows dated after as_of 2026-11-20 ignored",
        "strategy_nav: 1 row dated after as_of 2026-11-20 ignored",
    )
    assert whole.warnings == ()
    pd.testing.assert_frame_equal(cut.returns, whole.returns, check_freq=False)  # type: ignore[arg-type]
    pd.testing.assert_series_equal(cut.nav_history, whole.nav_history, check_freq=False)
    pd.testing.assert_frame_equal(cut.strategy_nav, whole.strategy_nav, check_freq=False)  # type: ignore[arg-type]
    assert cut.risk_model is not None and whole.risk_model is not None
    pd.testing.assert_frame_equal(cut.risk_model.loadings, whole.risk_model.loadings)
    # A row dated on as_of itself is today's, and kept.
    assert cut.nav_history.index.max() == pd.Timestamp(book.as_of)


def test_the_database_book_has_no_rows_after_its_date(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from riskopt.data.database import load_book as load_from_database
    from riskopt.data.database import seed_book

    book, dec = sample
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    seed_book(url, book, dec)
    later = dataclasses.replace(book, as_of=FUTURE[2].date(), nav=book.nav * 0.5)
    seed_book(url, later)
    loaded = load_from_database(url, book.as_of)
    assert loaded.nav_history.index.max() == pd.Timestamp(book.as_of)
    assert loaded.strategy_nav is not None
    assert loaded.strategy_nav.index.max() == pd.Timestamp(book.as_of)


# -- units ------------------------------------------------------------------------------------


def _create(book: Book, *, market: pd.DataFrame | None = None, **tables: object) -> Book:
    return Book.create(
        as_of=book.as_of,
        nav=book.nav,
        positions=book.positions,
        market=book.market.reset_index() if market is None else market,
        risk_model=book.risk_model,
        **tables,  # type: ignore[arg-type]
    )


def test_returns_in_percent_are_an_error_naming_the_tickers() -> None:
    book = UNIVERSE.book
    assert book.returns is not None
    returns = book.returns.copy()
    calm, wild = sorted(returns.columns[:2]), returns.columns[2]
    # Names in percent, clipped so that no day passes 100%: the median move gives them
    # away. A single day beyond ±100% is an error of its own.
    returns[calm] = (returns[calm] * 100).clip(-0.99, 0.99)
    returns.iloc[10, 2] = 1.5
    with pytest.raises(ValidationError) as err:
        _create(book, returns=returns)
    lines = err.value.problems
    assert any(
        line.startswith("returns: median |daily return| above 0.2")
        and f"{calm[0]}, {calm[1]}" in line
        for line in lines
    ), lines
    assert any(
        line.startswith("returns: daily returns beyond ±100%") and wild in line for line in lines
    )
    assert _create(book, returns=book.returns).returns is not None  # as it was: fine


def test_volatility_in_percent_is_an_error_naming_the_tickers() -> None:
    market = UNIVERSE.book.market.reset_index()
    market.loc[[3, 7], "volatility"] *= 100
    with pytest.raises(ValidationError) as err:
        _create(UNIVERSE.book, market=market)
    (line,) = err.value.problems
    assert line.startswith("market.volatility: above 5 (500% annualized")
    assert ", ".join(sorted(market.loc[[3, 7], "ticker"])) in line


def test_prices_that_are_returns_are_an_error() -> None:
    market = UNIVERSE.book.market.reset_index()
    rng = np.random.default_rng(3)
    market["price"] = rng.normal(0, 0.02, len(market))
    with pytest.raises(ValidationError) as err:
        _create(UNIVERSE.book, market=market)
    assert any("market.price: looks like returns" in p for p in err.value.problems)


def test_a_book_of_penny_stocks_and_a_realistic_book_pass(sample) -> None:  # type: ignore[no-untyped-def]
    book = UNIVERSE.book
    market = book.market.reset_index()
    rng = np.random.default_rng(4)
    market["price"] = rng.uniform(0.001, 0.9, len(market)).round(4)
    market["tick_size"] = 0.0001
    penny = Book.create(
        as_of=book.as_of,
        nav=book.nav,
        positions=book.positions,
        market=market,
        risk_model=book.risk_model,
        returns=book.returns,
    )
    assert penny.market["price"].max() < 1
    sample_book, _ = sample
    assert sample_book.warnings == () and sample_book.returns is not None


def test_every_units_problem_is_listed_at_once() -> None:
    book = UNIVERSE.book
    assert book.returns is not None
    market = book.market.reset_index().assign(volatility=lambda m: m["volatility"] * 100)
    with pytest.raises(ValidationError) as err:
        _create(book, market=market, returns=book.returns * 100)
    text = str(err.value)
    assert "market.volatility" in text and "returns: median |daily return|" in text


def test_the_command_line_runs_a_bad_book_degraded(tmp_path: Path) -> None:
    directory = save_book(UNIVERSE.book, tmp_path / "book")
    market = pd.read_csv(directory / "market.csv")
    market["volatility"] *= 100
    market.to_csv(directory / "market.csv", index=False)
    result = CliRunner().invoke(
        app,
        [
            "rebalance",
            "--book",
            str(directory),
            "--decisions",
            str(SAMPLES / "decisions.csv"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    # The portfolio state cannot be loaded: the DEGRADED run, no trade, the reason given.
    assert result.exit_code == EXIT_DEGRADED, result.output
    assert "invalid book: market.volatility: above 5" in result.output
    actions = pd.read_csv(tmp_path / "out" / "actions.csv")
    assert (actions["action_type"] == "REJECTED").all()
    assert actions["details_json"].str.contains("market.volatility").all()


def test_returns_in_any_row_order_give_the_same_risk_model() -> None:
    """The risk model weights recent days more: it must read them by date, not by row."""
    universe = make_universe(20, 2, 4, years=0.5)
    book = universe.book
    assert book.returns is not None
    shuffled = book.returns.sample(frac=1.0, random_state=1)
    assert not shuffled.index.is_monotonic_increasing
    settings = RiskModelSettings(factors=2, half_life=20.0, min_history=30)
    ordered = dataclasses.replace(book, risk_model=None)
    one = Book.create(
        as_of=book.as_of,
        nav=book.nav,
        positions=book.positions,
        market=book.market.reset_index(),
        returns=book.returns,
        risk_model_settings=settings,
    )
    two = Book.create(
        as_of=book.as_of,
        nav=book.nav,
        positions=book.positions,
        market=book.market.reset_index(),
        returns=shuffled,
        risk_model_settings=settings,
    )
    assert ordered.risk_model is None and one.risk_model is not None and two.risk_model is not None
    pd.testing.assert_series_equal(one.risk_model.specific_var, two.risk_model.specific_var)


def test_a_date_given_twice_in_returns_is_a_validation_error() -> None:
    book = make_universe(15, 2, 5, years=0.3).book
    assert book.returns is not None
    twice = pd.concat([book.returns, book.returns.iloc[[3]]])
    with pytest.raises(ValidationError, match="dates given twice"):
        Book.create(
            as_of=book.as_of,
            nav=book.nav,
            positions=book.positions,
            market=book.market.reset_index(),
            returns=twice,
        )
