"""The factor risk model: its type, the settings of its estimation, and the estimation
from a returns history."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from riskopt.data.errors import ValidationError

TRADING_DAYS = 252


@dataclass(frozen=True)
class RiskModel:
    """Factor risk model ``Σ = B F Bᵀ + diag(d)`` with annualized variances."""

    loadings: pd.DataFrame
    """``B``: N×K, indexed by ticker, one column per factor (a Book keeps them in name
    order)."""
    factor_cov: pd.DataFrame
    """``F``: K×K, indexed and labelled by factor."""
    specific_var: pd.Series
    """``d``: per-ticker specific (idiosyncratic) variance."""

    @property
    def factors(self) -> list[str]:
        return [str(c) for c in self.loadings.columns]


@dataclass(frozen=True)
class RiskModelSettings:
    """How a risk model is estimated from returns: a book's ``[risk_model]`` table or an
    argument of the loaders, checked on construction so a bad value never reaches the fit.

    Examples
    --------
    >>> RiskModelSettings(factors=5, half_life=63, min_history=120)
    RiskModelSettings(factors=5, half_life=63, min_history=120)
    """

    factors: int = 10
    """Principal components kept (fewer when the history has fewer dates or names)."""
    half_life: float | None = 126.0
    """Half-life of the exponential weights, in trading days; ``None`` (``inf`` in a
    ``book.toml``) weighs every date equally."""
    min_history: int = 60
    """The fewest dates of returns (on or before ``as_of``) a model is estimated from."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValidationError("risk_model", problems)

    def problems(self) -> list[str]:
        """Every value out of range, one line each."""
        out: list[str] = []
        if not _is_int(self.factors) or self.factors < 1:
            out.append(f"risk_model.factors: must be a whole number >= 1, got {self.factors!r}")
        if self.half_life is not None and not (_is_number(self.half_life) and self.half_life > 0):
            out.append(f"risk_model.half_life: must be a number > 0, got {self.half_life!r}")
        if not _is_int(self.min_history) or self.min_history < 2:
            out.append(
                f"risk_model.min_history: must be a whole number >= 2, got {self.min_history!r}"
            )
        return out

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, source: str = "book.toml") -> Self:
        """Settings from a TOML table; unknown keys and bad values are one ValidationError."""
        known = {"factors", "half_life", "min_history"}
        problems = [f"{source}: [risk_model] unknown key {k!r}" for k in sorted(set(table) - known)]
        values = {k: v for k, v in table.items() if k in known}
        if _is_number(values.get("half_life")) and math.isinf(values["half_life"]):
            values["half_life"] = None  # TOML has no null: inf means equal weights
        settings = None
        try:
            settings = cls(**values)
        except ValidationError as err:
            problems.extend(f"{source}: {p}" for p in err.problems)
        if problems or settings is None:
            raise ValidationError("book", problems)
        return settings

    def record(self) -> dict[str, Any]:
        """The settings as plain JSON values (equal weights as a null half-life)."""
        return {
            "factors": int(self.factors),
            "half_life": None if self.half_life is None else float(self.half_life),
            "min_history": int(self.min_history),
        }

    def estimate(self, returns: pd.DataFrame) -> RiskModel:
        """The model these settings give from ``returns`` (dates × tickers)."""
        return estimate_risk_model(
            returns,
            self.factors,
            halflife_days=self.half_life,
            min_history=self.min_history,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and not math.isnan(float(value))
    )


def estimate_risk_model(
    returns: pd.DataFrame,
    n_factors: int = 10,
    *,
    halflife_days: float | None = 126.0,
    min_specific_vol: float = 0.05,
    min_history: int = 2,
) -> RiskModel:
    """A statistical (PCA) factor model, annualized, from daily returns (dates × tickers).

    Returns are exponentially weighted (``halflife_days``; ``None`` for equal weights) and
    demeaned; the leading ``n_factors`` principal components are the factors, scaled so
    the factor covariance is diagonal with the components' variances. Specific variance is
    the residual variance, floored at ``min_specific_vol``² so no name looks riskless.
    Missing returns are treated as zero (the usual convention for a halted name). Fewer
    than ``min_history`` dates is a ValidationError.
    """
    if returns.empty:
        raise ValidationError("returns", ["no returns to estimate a risk model from"])
    values = returns.to_numpy(dtype=float)
    if not np.isfinite(values[~np.isnan(values)]).all():
        raise ValidationError("returns", ["returns contain infinite values"])
    x = np.nan_to_num(values, nan=0.0)
    t, n = x.shape
    if t < max(min_history, 2):
        raise ValidationError(
            "returns",
            [
                f"{t} dates, fewer than the {max(min_history, 2)} (risk_model.min_history) "
                "a risk model is estimated from"
            ],
        )
    k = int(min(n_factors, n, t - 1))
    if halflife_days is None:
        weights = np.full(t, 1.0 / t)
    else:
        decay = 0.5 ** (1.0 / halflife_days)
        weights = decay ** np.arange(t - 1, -1, -1, dtype=float)
        weights /= weights.sum()
    x = x - weights @ x
    xw = x * np.sqrt(weights)[:, None]
    # Thin SVD of the weighted return matrix: never forms the N×N covariance.
    _, s, vt = np.linalg.svd(xw, full_matrices=False)
    loadings = vt[:k].T  # N×K, orthonormal columns
    factor_var = (s[:k] ** 2) * TRADING_DAYS
    residual = xw - (xw @ loadings) @ loadings.T
    specific = np.maximum((residual**2).sum(axis=0) * TRADING_DAYS, min_specific_vol**2)
    factors = [f"PC{i + 1}" for i in range(k)]
    tickers = [str(c) for c in returns.columns]
    return RiskModel(
        loadings=pd.DataFrame(loadings, index=tickers, columns=factors),
        factor_cov=pd.DataFrame(np.diag(factor_var), index=factors, columns=factors),
        specific_var=pd.Series(specific, index=tickers, name="specific_var"),
    )
