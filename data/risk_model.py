"""Estimation of a factor risk model from a returns history."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.book import RiskModel
from data.errors import ValidationError

TRADING_DAYS = 252


def estimate_risk_model(
    returns: pd.DataFrame,
    n_factors: int = 10,
    *,
    halflife_days: float | None = 126.0,
    min_specific_vol: float = 0.05,
) -> RiskModel:
    """A statistical (PCA) factor model, annualized, from daily returns (dates × tickers).

    Returns are exponentially weighted (``halflife_days``; ``None`` for equal weights) and
    demeaned; the leading ``n_factors`` principal components are the factors, scaled so
    the factor covariance is diagonal with the components' variances. Specific variance is
    the residual variance, floored at ``min_specific_vol``² so no name looks riskless.
    Missing returns are treated as zero (the usual convention for a halted name).
    """
    if returns.empty:
        raise ValidationError("returns", ["no returns to estimate a risk model from"])
    values = returns.to_numpy(dtype=float)
    if not np.isfinite(values[~np.isnan(values)]).all():
        raise ValidationError("returns", ["returns contain infinite values"])
    x = np.nan_to_num(values, nan=0.0)
    t, n = x.shape
    k = int(min(n_factors, n, t - 1))
    if k < 1:
        raise ValidationError("returns", [f"need at least 2 dates, got {t}"])
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
