"""The Book: portfolio state and market snapshot for one rebalance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd

from data.contracts import (
    DEFAULT_LOT_SIZE,
    DEFAULT_TICK_SIZE,
    MARKET_SCHEMA,
    NAV_HISTORY_SCHEMA,
    POSITIONS_SCHEMA,
    validate,
)
from data.errors import ValidationError
from data.risk_model import RiskModel

T = TypeVar("T")

__all__ = ["Book", "RiskModel"]


MAX_POSITION_NAV = 1000.0
"""A single position worth more than this many times NAV is a data error (shares given in
units, a NAV in millions), not a book: rejected, naming the tickers."""


@dataclass(frozen=True)
class Book:
    """Portfolio state and market data for one rebalance, validated on construction.

    Build it with :meth:`Book.create` (or a loader in :mod:`data.loaders`), which checks
    every table and raises one :class:`ValidationError` listing every problem.
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
    ) -> Book:
        """Validate every table and assemble a Book (all problems reported at once)."""
        problems: list[str] = []
        try:
            as_of_date = pd.Timestamp(as_of).date()
        except (ValueError, TypeError):
            problems.append(f"book.as_of: not a date: {as_of!r}")
            as_of_date = dt.date(1970, 1, 1)
        try:
            nav_value = float(nav)
        except (TypeError, ValueError):
            nav_value = float("nan")
        if not np.isfinite(nav_value) or nav_value <= 0:
            problems.append(f"book.nav: must be a finite number > 0, got {nav!r}")

        market_v = _collect(problems, lambda: validate(MARKET_SCHEMA, market, key="ticker"))
        positions_v = _collect(
            problems, lambda: validate(POSITIONS_SCHEMA, positions, key="ticker")
        )
        history = _nav_history(problems, nav_history)

        if market_v is not None:
            market_v = _normalize_market(market_v)
        if market_v is not None and positions_v is not None:
            unknown = sorted(set(positions_v["ticker"]) - set(market_v.index))
            if unknown:
                problems.append(f"positions.ticker: not in market: {_show(unknown)}")
            elif np.isfinite(nav_value) and nav_value > 0:
                notional = positions_v["quantity"].abs().to_numpy(dtype=float) * market_v[
                    "price"
                ].reindex(positions_v["ticker"]).to_numpy(dtype=float)
                absurd = positions_v.loc[notional > MAX_POSITION_NAV * nav_value, "ticker"]
                if len(absurd):
                    problems.append(
                        f"positions.quantity: worth more than {MAX_POSITION_NAV:g}× NAV "
                        f"(a units or scale error?): {_show(sorted(set(absurd)))}"
                    )
        if market_v is not None and risk_model is not None:
            problems.extend(_check_risk_model(risk_model, market_v.index))
        if strategy_nav is not None:
            values = strategy_nav.to_numpy(dtype=float)
            if not (
                np.isfinite(values[~np.isnan(values)]).all()
                and (values[~np.isnan(values)] > 0).all()
            ):
                problems.append("strategy_nav: values must be finite and > 0")
        if problems:
            raise ValidationError("book", problems)
        assert market_v is not None and positions_v is not None
        positions_v = positions_v[["strategy_id", "ticker", "quantity"]].copy()
        return cls(
            as_of=as_of_date,
            nav=nav_value,
            positions=positions_v.reset_index(drop=True),
            market=market_v,
            risk_model=None
            if risk_model is None
            else _align_risk_model(risk_model, market_v.index),
            nav_history=history,
            returns=returns,
            strategy_nav=strategy_nav,
        )

    @property
    def tickers(self) -> pd.Index:
        return self.market.index

    @property
    def strategies(self) -> list[str]:
        return sorted(set(self.positions["strategy_id"]))


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


def _check_risk_model(model: RiskModel, tickers: pd.Index) -> list[str]:
    problems: list[str] = []
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
