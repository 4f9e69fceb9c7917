"""The Book: portfolio state and market snapshot for one rebalance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from riskopt.data.contracts import (
    DEFAULT_LOT_SIZE,
    DEFAULT_TICK_SIZE,
    MARKET_SCHEMA,
    NAV_HISTORY_SCHEMA,
    POSITIONS_SCHEMA,
    validate,
)
from riskopt.data.errors import ValidationError
from riskopt.data.risk_model import RiskModel, RiskModelSettings

T = TypeVar("T")
Dated = TypeVar("Dated", pd.Series, pd.DataFrame)

__all__ = ["Book", "RiskModel", "RiskModelSettings"]


MAX_POSITION_NAV = 1000.0
"""A single position worth more than this many times NAV is a data error (shares given in
units, a NAV in millions), not a book: rejected, naming the tickers."""

MAX_ABS_DAILY_RETURN = 1.0
"""A daily return beyond ±100% is taken for a units error (returns in percent)."""
MAX_MEDIAN_ABS_DAILY_RETURN = 0.2
"""A name whose median |daily return| is above this gives its returns in percent. Real
names sit near 0.005–0.02; 0.2 is the median of a name with about 470% annualized
volatility (0.2 / 0.674 · √252), just below the volatility check below."""
MAX_NAV = 1e14
"""A NAV above 100 trillion is a unit error (cents, or a currency of tiny units), and
beyond it share counts lose their last digits in floating point."""
MIN_PRICE = 1e-6
"""A price below a millionth is a unit error, not a quote: shares would overflow."""
MAX_VOLATILITY = 5.0
"""An annualized volatility above 500% is taken for a volatility given in percent."""
MAX_MEDIAN_PRICE_OF_RETURNS = 0.5
"""A market with a negative price and a median |price| below this holds returns, not
prices. A book of penny stocks alone never trips it: prices are never negative."""


@dataclass(frozen=True)
class Book:
    """Portfolio state and market data for one rebalance, validated on construction.

    Build it with :meth:`Book.create` (or a loader in :mod:`riskopt.data.loaders`), which checks
    every table and raises one :class:`ValidationError` listing every problem; its
    parameters are documented there. The fields below hold the validated tables.
    """

    as_of: dt.date
    nav: float
    positions: pd.DataFrame
    """Columns ``strategy_id``, ``ticker``, ``quantity`` (shares, signed)."""
    market: pd.DataFrame
    """Indexed by ticker: ``price``, ``adv_shares``, ``spread_bps``, ``volatility``,
    ``sector``, ``country``, ``cluster`` (may be empty), ``lot_size``, ``tick_size``."""
    risk_model: RiskModel | None = None
    nav_history: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    """NAV by date, for drawdown; may be empty."""
    returns: pd.DataFrame | None = None
    """Daily returns, dates × tickers; optional (risk-model estimation, clustering)."""
    strategy_nav: pd.DataFrame | None = None
    """Per-strategy NAV paths, dates × strategies; optional (per-strategy drawdown)."""
    warnings: tuple[str, ...] = ()
    """What building the book set aside (rows dated after ``as_of``); a run repeats them."""
    risk_model_settings: RiskModelSettings | None = None
    """The settings the risk model was estimated with; ``None`` when it was given or absent."""

    @classmethod
    def create(
        cls,
        *,
        as_of: dt.date | str,
        nav: float,
        positions: pd.DataFrame,
        market: pd.DataFrame,
        risk_model: RiskModel | None = None,
        nav_history: pd.DataFrame | pd.Series | None = None,
        returns: pd.DataFrame | None = None,
        strategy_nav: pd.DataFrame | None = None,
        risk_model_settings: RiskModelSettings | None = None,
    ) -> Book:
        """Validate every table and assemble a Book (all problems reported at once).

        Parameters
        ----------
        as_of
            The date of the rebalance.
        nav
            Net asset value, finite and > 0; weights are fractions of it.
        positions
            Columns ``strategy_id, ticker, quantity`` (signed shares), one row per pair;
            every ticker must be in ``market``.
        market
            One row per ticker: ``ticker, price, adv_shares, spread_bps, volatility``
            (annualized), ``sector, country`` and optional ``cluster, lot_size, tick_size``.
        risk_model
            Factor loadings, factor covariance and specific variances (annualized) over
            ``market``'s tickers; ``None`` to estimate one or go without.
        nav_history
            NAV by date (a Series, or a table with ``date, nav``), for drawdown.
        returns
            Daily returns, dates × tickers, as fractions.
        strategy_nav
            Per-strategy NAV paths, dates × strategies, for per-strategy drawdown.
        risk_model_settings
            Without ``risk_model``: estimate one from ``returns`` with these settings.

        Returns
        -------
        Book
            Rows of ``returns``, ``nav_history`` and ``strategy_nav`` dated after
            ``as_of`` dropped, each drop named in ``warnings``.

        Raises
        ------
        ValidationError
            Every problem of every table, at once.
        """
        problems: list[str] = []
        as_of_date, nav_value = _header(problems, as_of, nav)
        market_v = _collect(problems, lambda: validate(MARKET_SCHEMA, market, key="ticker"))
        positions_v = _collect(
            problems, lambda: validate(POSITIONS_SCHEMA, positions, key="ticker")
        )
        problems.extend(_market_unit_problems(market))
        if market_v is not None:
            market_v = _normalize_market(market_v)
        if market_v is not None and positions_v is not None:
            problems.extend(_position_problems(positions_v, market_v, nav_value))
        if market_v is not None and risk_model is not None:
            problems.extend(_check_risk_model(risk_model, market_v.index))
        past = _History.of(problems, as_of_date, nav_history, returns, strategy_nav)
        warnings = list(past.warnings)
        settings = risk_model_settings if risk_model is None else None
        if risk_model is not None and risk_model_settings is not None:
            warnings.append("risk-model settings ignored: the book gives its own risk model")
        model = risk_model
        if settings is not None and past.returns is not None and past.returns_ok:
            model = _estimate(problems, settings, past.returns, market_v)
        if problems:
            raise ValidationError("book", problems)
        assert market_v is not None and positions_v is not None and as_of_date is not None
        positions_v = positions_v[["strategy_id", "ticker", "quantity"]].copy()
        return cls(
            as_of=as_of_date,
            nav=nav_value,
            positions=positions_v.reset_index(drop=True),
            market=market_v,
            risk_model=None if model is None else _align_risk_model(model, market_v.index),
            nav_history=past.nav_history,
            returns=past.returns,
            strategy_nav=past.strategy_nav,
            warnings=tuple(warnings),
            risk_model_settings=settings if model is not None else None,
        )

    @property
    def tickers(self) -> pd.Index:
        return self.market.index

    @property
    def strategies(self) -> list[str]:
        return sorted(set(self.positions["strategy_id"]))

    def risk_model_record(self) -> dict[str, Any]:
        """Where the risk model came from, for the run record: ``given``, ``none``, or
        ``estimated`` with the settings and the number of dates it was fitted on."""
        if self.risk_model is None:
            return {"source": "none"}
        if self.risk_model_settings is None:
            return {"source": "given"}
        dates = 0 if self.returns is None else len(self.returns)
        return {"source": "estimated", **self.risk_model_settings.record(), "dates": dates}


@dataclass(frozen=True)
class _History:
    """The dated tables of a book, cut at ``as_of``: what the rebalance could have known."""

    nav_history: pd.Series
    returns: pd.DataFrame | None
    strategy_nav: pd.DataFrame | None
    warnings: tuple[str, ...]
    returns_ok: bool
    """Whether ``returns`` passed its checks (a model may be estimated from them)."""

    @classmethod
    def of(
        cls,
        problems: list[str],
        as_of: dt.date | None,
        nav_history: pd.DataFrame | pd.Series | None,
        returns: pd.DataFrame | None,
        strategy_nav: pd.DataFrame | None,
    ) -> _History:
        """Check each table, drop its rows dated after ``as_of`` and say how many."""
        warnings: list[str] = []
        history = _nav_history(problems, nav_history)
        returns_d = _dated(problems, "returns", returns)
        paths = _dated(problems, "strategy_nav", strategy_nav)
        if as_of is not None:
            history = _drop_future(history, "nav_history", as_of, warnings)
            returns_d = (
                None if returns_d is None else _drop_future(returns_d, "returns", as_of, warnings)
            )
            paths = None if paths is None else _drop_future(paths, "strategy_nav", as_of, warnings)
        returns_problems = [] if returns_d is None else _returns_problems(returns_d)
        problems.extend(returns_problems)
        if paths is not None:
            problems.extend(_strategy_nav_problems(paths))
        return cls(
            nav_history=history,
            returns=returns_d,
            strategy_nav=paths,
            warnings=tuple(warnings),
            returns_ok=returns_d is not None and not returns_problems,
        )


def _header(problems: list[str], as_of: object, nav: object) -> tuple[dt.date | None, float]:
    """The book's date and NAV, each checked (``None`` / NaN when unusable)."""
    as_of_date: dt.date | None = None
    try:
        as_of_date = pd.Timestamp(as_of).date()  # type: ignore[arg-type]
    except (ValueError, TypeError):
        pass
    if as_of_date is None or pd.isna(as_of_date):
        as_of_date = None
        problems.append(f"book.as_of: not a date: {as_of!r}")
    try:
        nav_value = float(nav)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        nav_value = float("nan")
    if not np.isfinite(nav_value) or nav_value <= 0:
        problems.append(f"book.nav: must be a finite number > 0, got {nav!r}")
    elif nav_value > MAX_NAV:
        problems.append(f"book.nav: above {MAX_NAV:g} (a unit error?), got {nav!r}")
    return as_of_date, nav_value


def _numbers(table: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _market_unit_problems(market: object) -> list[str]:
    """Volatilities in percent and returns given as prices, read from the raw table so
    they are reported beside the schema's own problems."""
    if not isinstance(market, pd.DataFrame) or "ticker" not in market.columns:
        return []
    if market.columns.duplicated().any():
        return []  # the schema check names the repeated column
    tickers = market["ticker"].astype(str).to_numpy()
    problems: list[str] = []
    if "volatility" in market.columns:
        high = _numbers(market, "volatility") > MAX_VOLATILITY
        if high.any():
            problems.append(
                f"market.volatility: above {MAX_VOLATILITY:g} ({MAX_VOLATILITY:.0%} annualized; "
                f"given in percent?) for ticker {_show(sorted(tickers[high]))}"
            )
    if "price" in market.columns:
        price = _numbers(market, "price")
        tiny = (price > 0) & (price < MIN_PRICE)
        if tiny.any():
            problems.append(
                f"market.price: below {MIN_PRICE:g} (a unit error, not a quote) for ticker "
                f"{_show(sorted(tickers[tiny]))}"
            )
        known = np.isfinite(price)
        negative = known & (price < 0)
        if negative.any() and np.median(np.abs(price[known])) < MAX_MEDIAN_PRICE_OF_RETURNS:
            problems.append(
                f"market.price: looks like returns, not prices (negative, and the median "
                f"|price| is below {MAX_MEDIAN_PRICE_OF_RETURNS:g}) for ticker "
                f"{_show(sorted(tickers[negative]))}"
            )
    if "lot_size" in market.columns:
        lots = _numbers(market, "lot_size")
        fractional = np.isfinite(lots) & (lots != np.round(lots))
        if fractional.any():
            problems.append(
                "market.lot_size: not a whole number of shares for ticker "
                f"{_show(sorted(tickers[fractional]))}"
            )
    return problems


def _position_problems(positions: pd.DataFrame, market: pd.DataFrame, nav: float) -> list[str]:
    """Positions in names without market data, and positions too large to be shares."""
    unknown = sorted(set(positions["ticker"]) - set(market.index))
    if unknown:
        return [f"positions.ticker: not in market: {_show(unknown)}"]
    if not (np.isfinite(nav) and nav > 0):
        return []
    with np.errstate(over="ignore"):  # an overflow is an absurd size, reported below
        notional = positions["quantity"].abs().to_numpy(dtype=float) * market["price"].reindex(
            positions["ticker"]
        ).to_numpy(dtype=float)
    absurd = positions.loc[notional > MAX_POSITION_NAV * nav, "ticker"]
    if len(absurd):
        return [
            f"positions.quantity: worth more than {MAX_POSITION_NAV:g}× NAV "
            f"(a units or scale error?): {_show(sorted(set(absurd)))}"
        ]
    return []


def _dated(problems: list[str], name: str, table: object) -> pd.DataFrame | None:
    """``table`` indexed by date, in date order, with text column labels; an index that is
    not dates, or a date given twice, is a problem (numbers are not taken for dates)."""
    if table is None:
        return None
    if not isinstance(table, pd.DataFrame):
        problems.append(f"{name}: expected a DataFrame, got {type(table).__name__}")
        return None
    index = table.index
    if not isinstance(index, pd.DatetimeIndex):
        if pd.api.types.is_numeric_dtype(index) and len(index):
            problems.append(f"{name}: the index must be dates, got numbers")
            return None
        try:
            index = pd.DatetimeIndex(pd.to_datetime(index))
        except (ValueError, TypeError) as err:
            problems.append(f"{name}: the index must be dates: {err}")
            return None
    if index.tz is not None:
        index = index.tz_convert(None)
    if index.has_duplicates:
        problems.append(
            f"{name}: dates given twice: {_show(sorted(map(str, index[index.duplicated()].date)))}"
        )
        return None
    columns = [str(c) for c in table.columns]
    if not (index is table.index and columns == list(table.columns)):
        table = table.set_axis(index, axis=0).set_axis(columns, axis=1)
    # In date order whatever the file's order: estimates weight recent rows by position.
    return table if table.index.is_monotonic_increasing else table.sort_index(kind="stable")


def _drop_future(table: Dated, name: str, as_of: dt.date, warnings: list[str]) -> Dated:
    """``table`` without its rows dated after ``as_of``, which the rebalance could not have
    known; a warning counts them."""
    if table.empty:
        return table
    later = np.asarray(table.index > pd.Timestamp(as_of))
    count = int(later.sum())
    if not count:
        return table
    rows = "row" if count == 1 else "rows"
    warnings.append(f"{name}: {count} {rows} dated after as_of {as_of.isoformat()} ignored")
    return table.loc[~later]


def _returns_problems(returns: pd.DataFrame) -> list[str]:
    """Returns in percent rather than fractions: a move beyond ±100% in a day, or a
    median daily move no real name has (thresholds above)."""
    try:
        magnitude = np.abs(returns.to_numpy(dtype=float))
    except (TypeError, ValueError):
        return ["returns: values must be numbers"]
    tickers = returns.columns.to_numpy(dtype=object)
    problems: list[str] = []
    beyond = (magnitude > MAX_ABS_DAILY_RETURN).any(axis=0)
    if beyond.any():
        problems.append(
            f"returns: daily returns beyond ±{MAX_ABS_DAILY_RETURN:.0%} (given in percent?) "
            f"for ticker {_show(sorted(map(str, tickers[beyond])))}"
        )
    median = pd.DataFrame(magnitude, copy=False).median(axis=0).to_numpy()
    percent_like = median > MAX_MEDIAN_ABS_DAILY_RETURN
    if percent_like.any():
        problems.append(
            f"returns: median |daily return| above {MAX_MEDIAN_ABS_DAILY_RETURN:g} (given in "
            f"percent?) for ticker {_show(sorted(map(str, tickers[percent_like])))}"
        )
    return problems


def _strategy_nav_problems(paths: pd.DataFrame) -> list[str]:
    try:
        values = paths.to_numpy(dtype=float)
    except (TypeError, ValueError):
        return ["strategy_nav: values must be numbers"]
    given = values[~np.isnan(values)]
    if not (np.isfinite(given).all() and (given > 0).all()):
        return ["strategy_nav: values must be finite and > 0"]
    return []


def _estimate(
    problems: list[str],
    settings: RiskModelSettings,
    returns: pd.DataFrame,
    market: pd.DataFrame | None,
) -> RiskModel | None:
    """The risk model estimated from ``returns``, which must cover every market name."""
    if market is not None:
        missing = sorted(set(market.index) - set(returns.columns))
        if missing:
            problems.append(
                f"returns: no column for ticker {_show(missing)} (the risk model is "
                "estimated from returns)"
            )
            return None
    try:
        return settings.estimate(returns)
    except ValidationError as err:
        problems.extend(f"returns: {p}" for p in err.problems)
        return None


def _collect(problems: list[str], fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except ValidationError as err:
        problems.extend(err.problems)
        return None


def _show(items: list[str], limit: int = 10) -> str:
    return ", ".join(items[:limit]) + (f" ... ({len(items)} in all)" if len(items) > limit else "")


def _normalize_market(market: pd.DataFrame) -> pd.DataFrame:
    out = market.copy()
    if "lot_size" not in out.columns:
        out["lot_size"] = DEFAULT_LOT_SIZE
    if "tick_size" not in out.columns:
        out["tick_size"] = DEFAULT_TICK_SIZE
    if "cluster" not in out.columns:
        out["cluster"] = None
    out["ticker"] = out["ticker"].astype(str)
    return out.set_index("ticker", drop=True).sort_index()


def _nav_history(problems: list[str], nav_history: pd.DataFrame | pd.Series | None) -> pd.Series:
    if nav_history is None:
        return pd.Series(dtype=float, name="nav")
    frame = (
        nav_history.rename("nav").rename_axis("date").reset_index()
        if isinstance(nav_history, pd.Series)
        else nav_history
    )
    checked = _collect(problems, lambda: validate(NAV_HISTORY_SCHEMA, frame, key="date"))
    if checked is None:
        return pd.Series(dtype=float, name="nav")
    return checked.set_index("date")["nav"].sort_index()


def _duplicated_risk_rows(model: RiskModel) -> list[str]:
    """Tickers or factors given twice in the risk model's tables (which one would count?)."""
    problems = []
    tables = {
        "loadings": model.loadings.index,
        "factor_cov": model.factor_cov.index,
        "specific_var": model.specific_var.index,
    }
    for name, index in tables.items():
        twice = sorted({str(i) for i in index[index.duplicated()]})
        if twice:
            problems.append(f"risk_model.{name}: rows given twice for {_show(twice)}")
    return problems


def _check_risk_model(model: RiskModel, tickers: pd.Index) -> list[str]:
    problems = _duplicated_risk_rows(model)
    loadings, cov, spec = model.loadings, model.factor_cov, model.specific_var
    missing = sorted(set(tickers) - set(loadings.index.astype(str)))
    if missing:
        problems.append(f"risk_model.loadings: no row for tickers {_show(missing)}")
    if not np.isfinite(loadings.to_numpy(dtype=float)).all():
        bad = loadings.index[~np.isfinite(loadings.to_numpy(dtype=float)).all(axis=1)]
        problems.append(
            f"risk_model.loadings: non-finite values for tickers {_show(list(map(str, bad)))}"
        )
    factors = [str(c) for c in loadings.columns]
    if cov.shape != (len(factors), len(factors)):
        problems.append(
            f"risk_model.factor_cov: shape {cov.shape}, expected {(len(factors), len(factors))}"
        )
    else:
        if [str(c) for c in cov.columns] != factors or [str(i) for i in cov.index] != factors:
            problems.append(
                "risk_model.factor_cov: rows and columns must be the loadings' factors, in order"
            )
        values = cov.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            problems.append("risk_model.factor_cov: non-finite values")
        elif not np.allclose(values, values.T, atol=1e-12, rtol=1e-9):
            problems.append("risk_model.factor_cov: not symmetric")
        elif np.linalg.eigvalsh(values).min() < -1e-10 * max(1.0, float(np.abs(values).max())):
            problems.append("risk_model.factor_cov: not positive semidefinite")
    missing_spec = sorted(set(tickers) - set(spec.index.astype(str)))
    if missing_spec:
        problems.append(f"risk_model.specific_var: no value for tickers {_show(missing_spec)}")
    spec_values = spec.to_numpy(dtype=float)
    if (~np.isfinite(spec_values) | (spec_values < 0)).any():
        bad = spec.index[~np.isfinite(spec_values) | (spec_values < 0)]
        problems.append(
            f"risk_model.specific_var: negative or non-finite for {_show(list(map(str, bad)))}"
        )
    return problems


def _align_risk_model(model: RiskModel, tickers: pd.Index) -> RiskModel:
    loadings = model.loadings.copy()
    loadings.index = loadings.index.astype(str)
    loadings.columns = [str(c) for c in loadings.columns]
    spec = model.specific_var.copy()
    spec.index = spec.index.astype(str)
    cov = model.factor_cov.copy()
    cov.index = [str(i) for i in cov.index]
    cov.columns = [str(c) for c in cov.columns]
    # Factors in name order: a book reads the same from files and from the database
    # (whose tables keep no order), so the program, and its last digit, is the same too.
    factors = sorted(loadings.columns)
    return RiskModel(
        loadings=loadings.loc[tickers, factors].astype(float),
        factor_cov=cov.loc[factors, factors].astype(float),
        specific_var=spec.loc[tickers].astype(float).rename("specific_var"),
    )
