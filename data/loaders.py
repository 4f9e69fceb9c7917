"""Loaders of a book directory (CSV or Parquet) and of decision files.

A book directory holds, each table as ``NAME.csv`` or ``NAME.parquet``:

=================  ========  ==========================================================
file               required  contents
=================  ========  ==========================================================
``book.toml``      yes       ``as_of`` (date) and ``nav`` (> 0)
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
(:func:`data.risk_model.estimate_risk_model`); with neither, the book has no risk model
and the gate's risk terms are off.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from data.book import Book, RiskModel
from data.contracts import check_decision_columns
from data.errors import BookLoadError, ValidationError
from data.risk_model import estimate_risk_model

TABLE_SUFFIXES = (".parquet", ".csv")


def read_table(path: Path) -> pd.DataFrame:
    """Read one CSV or Parquet table; an unreadable file is a BookLoadError."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=True)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise BookLoadError(f"cannot read {path}: {err}") from err


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


def load_book(directory: str | Path) -> Book:
    """Load and validate the book in ``directory`` (layout in this module's docstring)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BookLoadError(f"book directory not found: {directory}")
    meta_path = directory / "book.toml"
    if not meta_path.exists():
        raise BookLoadError(f"book directory {directory} has no book.toml")
    try:
        meta = tomllib.loads(meta_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise BookLoadError(f"cannot read {meta_path}: {err}") from err
    missing = [key for key in ("as_of", "nav") if key not in meta]
    if missing:
        raise ValidationError("book", [f"book.toml: missing key {k!r}" for k in missing])

    positions = _table(directory, "positions", required=True)
    market = _table(directory, "market", required=True)
    nav_history = _table(directory, "nav_history", required=False)
    returns = _table(directory, "returns", required=False)
    if returns is not None:
        returns = returns.set_index(returns.columns[0])
        returns.index = pd.to_datetime(returns.index)
        returns.columns = [str(c) for c in returns.columns]

    strategy_nav = _table(directory, "strategy_nav", required=False)
    if strategy_nav is not None:
        missing_cols = {"date", "strategy_id", "nav"} - set(strategy_nav.columns)
        if missing_cols:
            raise ValidationError(
                "strategy_nav", [f"missing column {c!r}" for c in sorted(missing_cols)]
            )
        strategy_nav = strategy_nav.assign(date=pd.to_datetime(strategy_nav["date"])).pivot(
            index="date", columns="strategy_id", values="nav"
        )
    loadings = _table(directory, "loadings", required=False)
    model: RiskModel | None = None
    if loadings is not None:
        cov = _table(directory, "factor_cov", required=True)
        spec = _table(directory, "specific_var", required=True)
        assert cov is not None and spec is not None
        model = RiskModel(
            loadings=loadings.set_index(loadings.columns[0]),
            factor_cov=cov.set_index(cov.columns[0]),
            specific_var=spec.set_index(spec.columns[0]).iloc[:, 0],
        )
    elif returns is not None:
        model = estimate_risk_model(returns)

    return Book.create(
        as_of=meta["as_of"],
        nav=meta["nav"],
        positions=positions,  # type: ignore[arg-type]
        market=market,  # type: ignore[arg-type]
        risk_model=model,
        nav_history=nav_history,
        returns=returns,
        strategy_nav=strategy_nav,
    )


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


def load_decisions(path: str | Path) -> pd.DataFrame:
    """Read a decisions file (CSV or Parquet) and check its columns."""
    path = Path(path)
    if not path.exists():
        raise BookLoadError(f"decisions file not found: {path}")
    return check_decision_columns(read_table(path))
