"""Risk-model settings: from a book's ``book.toml`` or the API, checked, and recorded in
the run (and in its stored record)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from riskopt.data.book import Book
from riskopt.data.errors import ValidationError
from riskopt.data.loaders import load_book, save_book
from riskopt.data.risk_model import RiskModelSettings, estimate_risk_model
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance
from riskopt.optimizer.store import store_result

UNIVERSE = make_universe(40, 3, 6, years=1.0)
DATES = len(UNIVERSE.book.returns)  # type: ignore[arg-type]


def _book_dir(directory: Path, risk_model_table: str = "") -> Path:
    """The universe's book on disk without loadings, ``risk_model_table`` in its book.toml."""
    save_book(UNIVERSE.book, directory)
    for name in ("loadings", "factor_cov", "specific_var"):
        (directory / f"{name}.csv").unlink()
    toml = directory / "book.toml"
    toml.write_text(toml.read_text() + risk_model_table)
    return directory


def test_book_toml_sets_the_estimation_and_the_run_records_it(tmp_path: Path) -> None:
    directory = _book_dir(
        tmp_path / "book", "[risk_model]\nfactors = 2\nhalf_life = 63\nmin_history = 100\n"
    )
    book = load_book(directory)
    assert book.risk_model is not None and book.risk_model.factors == ["PC1", "PC2"]
    expected = estimate_risk_model(book.returns, 2, halflife_days=63)  # type: ignore[arg-type]
    pd.testing.assert_series_equal(
        book.risk_model.specific_var, expected.specific_var.loc[book.tickers]
    )
    result = rebalance(book, UNIVERSE.decisions, "default", state="NORMAL", risk_aversion=1.0)
    assert result.run.risk_model == {
        "source": "estimated",
        "factors": 2,
        "half_life": 63.0,
        "min_history": 100,
        "dates": DATES,
    }
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    store_result(result, url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        record = conn.execute(sa.text("select record from risk_runs")).scalar_one()
    engine.dispose()
    stored = record if isinstance(record, dict) else json.loads(record)
    assert stored["risk_model"] == result.run.risk_model


def test_defaults_without_a_table_and_inf_for_equal_weights(tmp_path: Path) -> None:
    default = load_book(_book_dir(tmp_path / "a"))
    assert default.risk_model_record() == {
        "source": "estimated",
        "factors": 10,
        "half_life": 126.0,
        "min_history": 60,
        "dates": DATES,
    }
    equal = load_book(_book_dir(tmp_path / "b", "[risk_model]\nhalf_life = inf\n"))
    assert equal.risk_model_record()["half_life"] is None
    assert equal.risk_model is not None and default.risk_model is not None
    assert not equal.risk_model.specific_var.equals(default.risk_model.specific_var)


def test_the_api_argument_replaces_the_table(tmp_path: Path) -> None:
    directory = _book_dir(tmp_path / "book", "[risk_model]\nfactors = 2\n")
    book = load_book(directory, risk_model=RiskModelSettings(factors=1, half_life=None))
    assert book.risk_model is not None and book.risk_model.factors == ["PC1"]
    assert book.risk_model_record()["half_life"] is None
    assert book.risk_model_record()["min_history"] == 60


def test_unknown_keys_and_bad_values_are_one_error(tmp_path: Path) -> None:
    directory = _book_dir(
        tmp_path / "book", "[risk_model]\nfactors = 0\nhalflife = 20\nmin_history = 1.5\n"
    )
    with pytest.raises(ValidationError) as err:
        load_book(directory)
    problems = err.value.problems
    assert "book.toml: [risk_model] unknown key 'halflife'" in problems
    assert any(p.startswith("book.toml: risk_model.factors: must be") for p in problems)
    assert any(p.startswith("book.toml: risk_model.min_history: must be") for p in problems)
    assert len(problems) == 3
    with pytest.raises(ValidationError, match="half_life"):
        RiskModelSettings(half_life=-3)


def test_too_short_a_history_is_a_book_error(tmp_path: Path) -> None:
    directory = _book_dir(tmp_path / "book", f"[risk_model]\nmin_history = {DATES + 1}\n")
    with pytest.raises(ValidationError) as err:
        load_book(directory)
    assert err.value.problems == [
        f"returns: {DATES} dates, fewer than the {DATES + 1} (risk_model.min_history) "
        "a risk model is estimated from"
    ]


def test_book_create_estimates_only_when_asked_and_no_model_is_given() -> None:
    book = UNIVERSE.book
    common = {
        "as_of": book.as_of,
        "nav": book.nav,
        "positions": book.positions,
        "market": book.market.reset_index(),
        "returns": book.returns,
    }
    assert Book.create(**common).risk_model_record() == {"source": "none"}
    estimated = Book.create(**common, risk_model_settings=RiskModelSettings(factors=3))
    assert estimated.risk_model is not None and len(estimated.risk_model.factors) == 3
    given = Book.create(
        **common, risk_model=book.risk_model, risk_model_settings=RiskModelSettings()
    )
    assert given.risk_model_record() == {"source": "given"}
    assert given.warnings == ("risk-model settings ignored: the book gives its own risk model",)
    result = rebalance(given, UNIVERSE.decisions, "default", state="NORMAL", risk_aversion=1.0)
    assert given.warnings[0] in result.run.warnings
