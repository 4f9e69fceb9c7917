"""Loaders of a book directory (CSV or Parquet) and of decision files.

A book directory holds, each table as ``NAME.csv`` or ``NAME.parquet``:

=================  ========  ==========================================================
file               required  contents
=================  ========  ==========================================================
``book.toml``      yes       ``as_of`` (date) and ``nav`` (> 0); optional ``[risk_model]``
``positions``      yes       ``strategy_id, ticker, quantity``
``market``         yes       ``ticker, price, adv_shares, spread_bps, volatility, sector,
                             country`` and optional ``cluster, lot_size, tick_size``
``loadings``       no        ``ticker`` then one column per factor
``factor_cov``     no        ``factor`` then one column per factor (annualized)
``specific_var``   no        ``ticker, specific_var`` (annualized)
``nav_history``    no        ``date, nav``
``returns``        no        ``date`` then one column per ticker (daily returns)
``strategy_nav``   no        ``date, strategy_id, nav`` (per-strategy drawdown)
=================  ========  ==========================================================

Without ``loadings`` the risk model is estimated from ``returns``
(:func:`riskopt.data.risk_model.estimate_risk_model`) with the settings of ``book.toml``'s
``[risk_model]`` table (``factors``, ``half_life``, ``min_history``; each optional, any
other key an error); with neither, the book has no risk model and the gate's risk terms
are off. Rows of the dated tables after ``as_of`` are dropped with a warning.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from riskopt.data.book import Book, RiskModel
from riskopt.data.config_files import ConfigFileError, read_toml
from riskopt.data.contracts import (
    DecisionsInput,
    check_decision_columns,
    decisions_from_weights,
)
from riskopt.data.errors import BookLoadError, ValidationError
from riskopt.data.risk_model import RiskModelSettings

TABLE_SUFFIXES = (".parquet", ".csv")
IDENTIFIER_COLUMNS = frozenset(
    {"ticker", "decision_id", "strategy_id", "sector", "country", "cluster", "factor"}
)
"""Columns read as text, never as numbers or NA guesses: ticker ``0700`` stays ``0700``
and ``NA`` stays ``NA``; only an empty cell is missing."""
DEFAULT_NA = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", "#N/A", "-NaN", "-nan", "None")
"""What counts as missing in a number or date column of a CSV table."""


def read_table(path: Path) -> pd.DataFrame:
    """Read one CSV or Parquet table, identifiers as text; an unreadable file is a
    BookLoadError and a column named twice a ValidationError."""
    try:
        if path.suffix == ".parquet":
            return _identifiers_as_text(_unique_columns(path, pd.read_parquet(path)))
        return _read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        if isinstance(err, ValidationError):
            raise
        raise BookLoadError(f"cannot read {path}: {' '.join(str(err).split())}") from err


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV table whose identifier columns are text and whose header names each column once."""
    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    _unique_columns(path, pd.DataFrame(columns=header))
    text = [c for c in header if c in IDENTIFIER_COLUMNS]
    na_values = {c: [""] if c in text else list(DEFAULT_NA) for c in header}
    return pd.read_csv(
        path,
        dtype=dict.fromkeys(text, str),
        keep_default_na=False,
        na_values=na_values,
        encoding="utf-8",
    )


def _unique_columns(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if twice:
        raise ValidationError(
            path.stem, [f"{path.name}: column {c!r} appears twice" for c in twice]
        )
    return frame


def _identifiers_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Identifier columns of a Parquet table as text (a numeric ticker column included)."""
    for column in IDENTIFIER_COLUMNS & set(frame.columns):
        values = frame[column]
        if values.dtype != object:
            frame[column] = values.astype(object).where(values.isna(), values.astype(str))
    return frame


def _find(directory: Path, name: str) -> Path | None:
    for suffix in TABLE_SUFFIXES:
        candidate = directory / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _table(directory: Path, name: str, *, required: bool) -> pd.DataFrame | None:
    path = _find(directory, name)
    if path is None:
        if required:
            raise BookLoadError(f"book directory {directory} has no {name}.csv or {name}.parquet")
        return None
    return read_table(path)


def load_book(directory: str | Path, *, risk_model: RiskModelSettings | None = None) -> Book:
    """Load and validate the book in ``directory`` (layout in this module's docstring).

    Parameters
    ----------
    directory
        A book directory: ``book.toml`` and one CSV or Parquet file per table.
    risk_model
        How a risk model is estimated from ``returns`` when the directory gives no
        ``loadings``; it replaces the ``[risk_model]`` table of ``book.toml``. Default:
        that table, else the defaults of :class:`RiskModelSettings`.

    Returns
    -------
    Book
        The validated book; rows of the dated tables after ``as_of`` dropped, with a
        warning in ``Book.warnings``.

    Raises
    ------
    BookLoadError
        The directory, ``book.toml`` or a required table is missing or cannot be read.
    ValidationError
        A table breaks its contract; every problem is listed.
    """
    directory = Path(directory)
    try:
        return _load_book(directory, risk_model)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as err:
        # A table that reads but cannot be shaped (text among numbers, duplicated rows,
        # unparseable dates): the book cannot be loaded, which callers handle by kind.
        message = " ".join(str(err).split()) or type(err).__name__
        raise BookLoadError(f"cannot load book {directory}: {message}") from err


def _load_book(directory: Path, risk_model: RiskModelSettings | None) -> Book:
    """:func:`load_book`'s work; its untyped errors are turned into ``BookLoadError``."""
    meta = _meta(directory)
    settings = risk_model if risk_model is not None else _settings(meta.get("risk_model"))
    positions = _table(directory, "positions", required=True)
    market = _table(directory, "market", required=True)
    nav_history = _table(directory, "nav_history", required=False)
    returns = _table(directory, "returns", required=False)
    if returns is not None:
        # Book.create reads the index as dates and reports it when it is not.
        returns = returns.set_index(returns.columns[0])
    model = _given_risk_model(directory)
    if settings is None and model is None:
        settings = RiskModelSettings()  # a book without loadings: estimated, with defaults
    return Book.create(
        as_of=meta["as_of"],
        nav=meta["nav"],
        positions=positions,  # type: ignore[arg-type]
        market=market,  # type: ignore[arg-type]
        risk_model=model,
        nav_history=nav_history,
        returns=returns,
        strategy_nav=_strategy_nav(directory),
        risk_model_settings=settings,
    )


def book_date(directory: str | Path) -> dt.date | None:
    """The ``as_of`` that ``directory``'s ``book.toml`` states, where it can be read even if
    the rest of the book cannot; ``None`` where it cannot (never today's date)."""
    try:
        return pd.Timestamp(_meta(Path(directory))["as_of"]).date()
    except (BookLoadError, ValidationError, ValueError, TypeError):
        return None


def _meta(directory: Path) -> dict[str, Any]:
    """``book.toml``, with its required keys."""
    if not directory.is_dir():
        raise BookLoadError(f"book directory not found: {directory}")
    meta_path = directory / "book.toml"
    if not meta_path.exists():
        raise BookLoadError(f"book directory {directory} has no book.toml")
    try:
        meta = read_toml(meta_path)
    except (OSError, ConfigFileError) as err:
        raise BookLoadError(f"cannot read {meta_path}: {err}") from err
    missing = [key for key in ("as_of", "nav") if key not in meta]
    if missing:
        raise ValidationError("book", [f"book.toml: missing key {k!r}" for k in missing])
    return meta


def _strategy_nav(directory: Path) -> pd.DataFrame | None:
    """The per-strategy NAV paths, dates × strategies, from the long table on disk."""
    strategy_nav = _table(directory, "strategy_nav", required=False)
    if strategy_nav is None:
        return None
    missing_cols = {"date", "strategy_id", "nav"} - set(strategy_nav.columns)
    if missing_cols:
        raise ValidationError(
            "strategy_nav", [f"missing column {c!r}" for c in sorted(missing_cols)]
        )
    return strategy_nav.assign(date=pd.to_datetime(strategy_nav["date"])).pivot(
        index="date", columns="strategy_id", values="nav"
    )


def _given_risk_model(directory: Path) -> RiskModel | None:
    """The risk model the directory gives (``loadings`` and its two companions), if any."""
    loadings = _table(directory, "loadings", required=False)
    if loadings is None:
        return None
    cov = _table(directory, "factor_cov", required=True)
    spec = _table(directory, "specific_var", required=True)
    assert cov is not None and spec is not None
    return RiskModel(
        loadings=loadings.set_index(loadings.columns[0]),
        factor_cov=cov.set_index(cov.columns[0]),
        specific_var=spec.set_index(spec.columns[0]).iloc[:, 0],
    )


def _settings(table: object) -> RiskModelSettings | None:
    """The ``[risk_model]`` table of a ``book.toml``, checked; ``None`` when absent."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ValidationError("book", ["book.toml: risk_model must be a table ([risk_model])"])
    return RiskModelSettings.from_mapping(table)


def save_book(book: Book, directory: str | Path, *, returns_format: str = "parquet") -> Path:
    """Write ``book`` in the directory layout that :func:`load_book` reads."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "book.toml").write_text(f"as_of = {book.as_of.isoformat()}\nnav = {book.nav!r}\n")
    book.positions.to_csv(directory / "positions.csv", index=False)
    book.market.reset_index().to_csv(directory / "market.csv", index=False)
    if len(book.nav_history):
        book.nav_history.rename_axis("date").reset_index().to_csv(
            directory / "nav_history.csv", index=False, date_format="%Y-%m-%d"
        )
    if book.risk_model is not None:
        book.risk_model.loadings.rename_axis("ticker").reset_index().to_csv(
            directory / "loadings.csv", index=False
        )
        book.risk_model.factor_cov.rename_axis("factor").reset_index().to_csv(
            directory / "factor_cov.csv", index=False
        )
        book.risk_model.specific_var.rename_axis("ticker").reset_index().to_csv(
            directory / "specific_var.csv", index=False
        )
    if book.strategy_nav is not None:
        long = (
            book.strategy_nav.rename_axis("date")
            .reset_index()
            .melt(id_vars="date", var_name="strategy_id", value_name="nav")
        )
        long.dropna().to_csv(directory / "strategy_nav.csv", index=False, date_format="%Y-%m-%d")
    if book.returns is not None:
        frame = book.returns.rename_axis("date").reset_index()
        if returns_format == "parquet":
            frame.to_parquet(directory / "returns.parquet", index=False)
        else:
            frame.to_csv(directory / "returns.csv", index=False)
    return directory


def load_decisions(source: DecisionsInput, *, strategy: str | None = None) -> pd.DataFrame:
    """The decisions of one rebalance, from a table, a file or one strategy's weights.

    Rows of a table or file are only checked for their columns here: a bad row is
    ``REJECTED`` by the gate while the rest proceed. A Series is one strategy's whole
    proposal and is refused as a whole (:func:`~riskopt.data.contracts.decisions_from_weights`).

    Parameters
    ----------
    source
        A DataFrame with columns ``decision_id, ticker, strategy_id, target_weight`` and
        optional ``confidence`` (default 1); a path to such a CSV or Parquet file; or a
        Series of target weights indexed by ticker, for the single strategy ``strategy``.
    strategy
        The ``strategy_id`` given to a Series' decisions (their ids are
        ``"{strategy}:{ticker}"``); by default the Series' ``name``, and an unnamed Series
        with no ``strategy`` is refused. Ignored for a table or a file, whose rows name
        their own.

    Returns
    -------
    pandas.DataFrame
        The decisions table, identifiers as text and weights as floats, indexed 0…n-1.

    Raises
    ------
    BookLoadError
        The file does not exist or cannot be read.
    ValidationError
        A required column is missing or named twice; for a Series, a weight that is not
        a finite number, a ticker given twice, or an index that is not ticker text.
    """
    if isinstance(source, pd.Series):
        return check_decision_columns(decisions_from_weights(source, strategy=strategy))
    if isinstance(source, pd.DataFrame):
        return check_decision_columns(source)
    if not isinstance(source, str | Path):
        return check_decision_columns(source)  # names what it got
    path = Path(source)
    if not path.exists():
        raise BookLoadError(f"decisions file not found: {path}")
    return check_decision_columns(read_table(path))
