"""A four-name, five-pair rebalance small enough to check every family's rows by hand.

====  ======  =====  =========  ======  ===  ======  =======  ========
name  price   ADV    ADV / NAV  spread  σ    sector  country  h0 (h̃)
====  ======  =====  =========  ======  ===  ======  =======  ========
A     100     1000   0.10       5       0.2  Tech    US       .10 (.12)
B     50      1000   0.05       50      0.4  Tech    US       .03 (.00)
C     20      5000   0.10       10      0.1  Energy  US       .03 (.06)
D     10      500    0.005      5       0    (none)  JP       .00 (.01)
====  ======  =====  =========  ======  ===  ======  =======  ========

Pairs (strategy, name, w0 → w̃): s1 A .10 → .12, s1 B .05 → .02, s2 B −.02 (no
decision), s2 C .03 → .06, s1 D 0 → .01. NAV is 1,000,000.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from riskopt.constraints.base import ProgramData
from riskopt.constraints.config import ConstraintSet


def set_with(**sections: Any) -> ConstraintSet:
    """The default ``ConstraintSet()`` with the given sections replaced."""
    return ConstraintSet.from_dict({"name": "unit", **sections})


@pytest.fixture(scope="module")
def data() -> ProgramData:
    pair_ticker = np.array([0, 1, 1, 2, 3])
    w0 = np.array([0.10, 0.05, -0.02, 0.03, 0.0])
    m = sp.csr_matrix((np.ones(5), (pair_ticker, np.arange(5))), shape=(4, 5))
    return ProgramData(
        tickers=np.array(["A", "B", "C", "D"], dtype=object),
        nav=1e6,
        price=np.array([100.0, 50.0, 20.0, 10.0]),
        adv_shares=np.array([1000.0, 1000.0, 5000.0, 500.0]),
        spread_bps=np.array([5.0, 50.0, 10.0, 5.0]),
        volatility=np.array([0.2, 0.4, 0.1, 0.0]),
        lot_size=np.ones(4),
        tick_size=np.array([0.01, 0.01, 0.05, 0.01]),
        sector=np.array(["Tech", "Tech", "Energy", ""], dtype=object),
        country=np.array(["US", "US", "US", "JP"], dtype=object),
        cluster=np.array(["", "", "", ""], dtype=object),
        h0=np.asarray(m @ w0),
        pair_strategy=np.array(["s1", "s1", "s2", "s2", "s1"], dtype=object),
        pair_ticker=pair_ticker,
        w0=w0,
        w_tilde=np.array([0.12, 0.02, -0.02, 0.06, 0.01]),
        confidence=np.ones(5),
        has_decision=np.array([True, True, False, True, True]),
        M=m,
        loadings=np.array([[1.0, 0.5], [1.0, 0.0], [1.0, -0.5], [0.5, 0.0]]),
        factor_cov=np.diag([0.04, 0.01]),
        specific_var=np.array([0.01, 0.02, 0.03, 0.04]),
        factors=("MARKET", "VALUE"),
    )
