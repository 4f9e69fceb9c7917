"""Correlation clusters from a returns history: hierarchical clustering on ``1 − ρ``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskopt.data.errors import ValidationError


def estimate_clusters(
    returns: pd.DataFrame, correlation: float = 0.6, *, min_days: int = 60
) -> pd.Series:
    """Cluster label per ticker from daily returns (dates × tickers).

    Average linkage on the distance ``1 − ρ``, cut at ``1 − correlation``: names in one
    cluster correlate at about ``correlation`` or more on average. A label is the cluster's
    alphabetically first ticker (``"CL:<ticker>"``), so labels are stable across runs as
    long as the membership is, and never depend on scipy's numbering.
    """
    # Imported here: scipy.cluster and scipy.spatial take about 0.1 s to import, paid by
    # every process (each batch worker, each CLI call) though most books carry clusters.
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if returns.shape[0] < min_days:
        raise ValidationError(
            "returns",
            [f"need at least {min_days} days to estimate clusters, got {returns.shape[0]}"],
        )
    tickers = [str(c) for c in returns.columns]
    if len(tickers) == 1:
        return pd.Series([f"CL:{tickers[0]}"], index=tickers, name="cluster")
    x = returns.to_numpy(dtype=float)
    x = np.nan_to_num(x - np.nanmean(x, axis=0), nan=0.0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    z = x / std
    rho = np.clip((z.T @ z) / len(z), -1.0, 1.0)
    dist = 1.0 - rho
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    raw = fcluster(tree, t=1.0 - correlation, criterion="distance")
    frame = pd.DataFrame({"ticker": tickers, "raw": raw})
    first = frame.groupby("raw")["ticker"].transform("min")
    return pd.Series(("CL:" + first).to_numpy(), index=tickers, name="cluster")
