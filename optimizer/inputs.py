"""Triage of decisions and assembly of the program's numbers from a Book.

Bad decision rows never stop the book: each gets a reason and becomes ``REJECTED``;
the rest proceed. Names without a valid price are left out of the program and their
holdings carried unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from riskopt.constraints.base import ProgramData
from riskopt.constraints.config import ConstraintSet, book_problems, book_warnings
from riskopt.constraints.drawdown import drawdown
from riskopt.constraints.errors import ConfigError
from riskopt.data.book import Book
from riskopt.data.clusters import estimate_clusters
from riskopt.data.contracts import check_decision_columns


@dataclass(frozen=True)
class PreparedInputs:
    data: ProgramData
    decisions: pd.DataFrame
    """All decision rows, with ``reject_reason`` (None when valid) and ``pair`` (index, or
    -1 for a rejected row)."""
    unpriced_holdings: pd.DataFrame
    warnings: tuple[str, ...]
    current_shares: np.ndarray
    """Shares held of each of the program's names (all sleeves)."""
    pair_shares: np.ndarray | None = None
    """Shares held by each (strategy, ticker) pair, as the book gives them."""


def triage_decisions(decisions: pd.DataFrame, book: Book, cs: ConstraintSet) -> pd.DataFrame:
    """Attach a ``reject_reason`` to every decision that cannot be acted on (vectorized)."""
    d = check_decision_columns(decisions)
    reason = np.full(len(d), None, dtype=object)

    def mark(mask: pd.Series | np.ndarray, text: str | np.ndarray) -> None:
        hit = np.asarray(mask, dtype=bool) & (reason == None)  # noqa: E711 - elementwise
        reason[hit] = text[hit] if isinstance(text, np.ndarray) else text

    ticker = d["ticker"]
    row = book.market.index.get_indexer(pd.Index(ticker))  # isin is slower on strings
    known = row >= 0
    decision_id = d["decision_id"]
    has_id = decision_id.notna().to_numpy()
    mark(~has_id, "missing decision_id")
    mark(
        has_id & decision_id.duplicated(keep=False).to_numpy(),
        "duplicate decision_id: every row with this id is rejected",
    )
    mark(d["strategy_id"].isna().to_numpy(), "missing strategy_id")
    mark(ticker.isna().to_numpy(), "missing ticker")
    for col in ("decision_id", "strategy_id", "ticker"):
        as_text = d[col].astype("string")  # an empty table's column may be numeric
        has_nul = as_text.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)
        mark(has_nul, f"{col} contains a NUL byte, which the runtime database cannot store")
    mark(~known, "unknown ticker: not in the market data")
    px = np.full(len(d), np.nan)
    px[known] = book.market["price"].to_numpy(dtype=float)[row[known]]
    mark(known & ~(px > 0), "no valid price for this ticker")
    target = d["target_weight"].to_numpy(dtype=float)
    mark(~np.isfinite(target), "target_weight is not a finite number")
    conf = d["confidence"].to_numpy(dtype=float)
    mark(~((conf > 0) & (conf <= 1)), "confidence must be in (0, 1]")
    limit = cs.sanity.max_abs_target_weight
    mark(np.abs(target) > limit, f"absurd size: |target_weight| above {limit:.0%} of NAV")
    valid = reason == None  # noqa: E711 - elementwise
    dup_pair = np.zeros(len(d), dtype=bool)
    # Pair codes (one integer per strategy and ticker) find a repeated pair cheaply.
    strategy_code = pd.factorize(d["strategy_id"])[0]
    pair_code = strategy_code.astype(np.int64) * (len(book.market) + 1) + row
    if valid.any() and len(np.unique(pair_code[valid])) < int(valid.sum()):
        keys = pd.Series(pair_code[valid])
        dup = keys.duplicated(keep="first").to_numpy()
        ids = decision_id.to_numpy()[valid]
        first = keys.map(pd.Series(ids, index=keys).groupby(level=0, sort=False).first())
        dup_pair[np.flatnonzero(valid)[dup]] = True
        text = np.full(len(d), "", dtype=object)
        text[np.flatnonzero(valid)] = (
            "another decision for the same strategy and ticker came first: "
            + first.fillna("").astype(str)
        ).to_numpy()
        mark(dup_pair, text)
    d["reject_reason"] = pd.Series(reason, index=d.index, dtype=object)
    return d


def _clusters(
    book: Book, cs: ConstraintSet, tickers: np.ndarray, column: np.ndarray
) -> tuple[np.ndarray, str | None]:
    """The book's cluster column (``column``, on ``tickers``) where it labels every name,
    else clusters from returns.

    With neither, cluster caps cannot apply: the labels are empty and a warning says so.
    """
    given = np.where(pd.isna(column), "", column).astype(object)
    if not cs.groups.cluster.active or (given != "").all():
        return given, None
    if book.returns is None:
        return np.full(len(tickers), "", dtype=object), (
            "groups.cluster: the book has neither a cluster column for every name nor returns; "
            "cluster caps are not applied"
        )
    columns = pd.Index(tickers)
    columns = columns[columns.isin(book.returns.columns)]
    labels = estimate_clusters(book.returns[columns], cs.groups.cluster.correlation)
    return labels.reindex(tickers).fillna("").astype(object).to_numpy(), None


def prepare(book: Book, decisions: pd.DataFrame, cs: ConstraintSet) -> PreparedInputs:
    """Align book and valid decisions on the program's names and sleeve pairs."""
    d = triage_decisions(decisions, book, cs)
    market = book.market
    warnings = list(book.warnings)  # what building the book set aside (future rows)

    pos = book.positions
    priced = market["price"].reindex(pos["ticker"]).to_numpy(dtype=float) > 0
    unpriced = pos.loc[~priced].copy()
    if len(unpriced):
        warnings.append(
            "holdings without a valid price are carried unchanged and left out of the "
            f"program: {', '.join(sorted(set(unpriced['ticker'])))}"
        )
    pos = pos.loc[priced]
    is_valid = d["reject_reason"].isna().to_numpy()
    valid = d[is_valid]

    # Pairs (strategy, ticker) from holdings and valid decisions, as integer codes:
    # sorted by strategy then ticker, as strings sort.
    held = len(pos)
    strategy_col = np.concatenate(
        [pos["strategy_id"].to_numpy(dtype=str), valid["strategy_id"].to_numpy(dtype=str)]
    )
    ticker_col = np.concatenate(
        [pos["ticker"].to_numpy(dtype=str), valid["ticker"].to_numpy(dtype=str)]
    )
    ticker_names, ticker_code = np.unique(ticker_col, return_inverse=True)
    strategy_names, strategy_code = np.unique(strategy_col, return_inverse=True)
    n = len(ticker_names)
    pair_code, pair_of_row = np.unique(
        strategy_code.astype(np.int64) * max(n, 1) + ticker_code, return_inverse=True
    )
    p = len(pair_code)
    pair_ticker = (pair_code % max(n, 1)).astype(np.intp)
    pair_strategy = strategy_names[pair_code // max(n, 1)].astype(object)
    tickers = ticker_names.astype(object)

    rows = market.index.get_indexer(pd.Index(tickers)) if n else np.zeros(0, dtype=np.intp)

    def column(name: str) -> np.ndarray:
        """The market's numeric ``name`` column on the program's names."""
        return market[name].to_numpy(dtype=float)[rows]

    # Sector and country labels of the whole market: the program's names', and the set
    # a constraint set's overrides are checked against.
    sector_of = market["sector"].astype(str).to_numpy(dtype=object)
    country_of = market["country"].astype(str).to_numpy(dtype=object)

    price = column("price")
    # Holdings are one row per pair (the Book's contract); decisions too (triage).
    quantity = pos["quantity"].to_numpy(dtype=float)
    qty = np.bincount(pair_of_row[:held], weights=quantity, minlength=p)
    shares = np.bincount(ticker_code[:held], weights=quantity, minlength=n)
    w0 = qty * price[pair_ticker] / book.nav
    decided_pair = pair_of_row[held:]
    has_decision = np.zeros(p, dtype=bool)
    has_decision[decided_pair] = True
    w_tilde = w0.copy()
    w_tilde[decided_pair] = valid["target_weight"].to_numpy(dtype=float)
    confidence = np.zeros(p)
    confidence[decided_pair] = valid["confidence"].to_numpy(dtype=float)
    M = sp.csr_matrix((np.ones(p), (pair_ticker, np.arange(p))), shape=(n, p))
    h0 = np.asarray(M @ w0)

    loadings = factor_cov = specific = None
    factors: tuple[str, ...] = ()
    if book.risk_model is not None and n:
        rm = book.risk_model
        if rm.loadings.index.equals(market.index) and rm.specific_var.index.equals(market.index):
            # A Book aligns its risk model on its market: the same rows. Column-major, as
            # pandas hands it out, so that every product keeps its last bit.
            loadings = np.asfortranarray(rm.loadings.to_numpy(dtype=float)[rows])
            specific = rm.specific_var.to_numpy(dtype=float)[rows]
        else:  # a model changed after validation: by label (a missing name raises)
            loadings = rm.loadings.loc[tickers].to_numpy(dtype=float)
            specific = rm.specific_var.loc[tickers].to_numpy(dtype=float)
        factor_cov = rm.factor_cov.to_numpy(dtype=float)
        factors = tuple(rm.factors)
    elif book.risk_model is None:
        warnings.append("the book has no risk model: the risk-aversion terms are off")

    cluster, cluster_warning = _clusters(book, cs, tickers, market["cluster"].to_numpy()[rows])
    if cluster_warning:
        warnings.append(cluster_warning)
    # Today's point of the NAV path is the book's NAV, whatever the history says for it.
    history = book.nav_history
    nav_path = np.zeros(0)
    if len(history):
        earlier = history[history.index < pd.Timestamp(book.as_of)]
        nav_path = np.append(earlier.to_numpy(dtype=float), book.nav)
    strategy_dd: dict[str, float] = {}
    if book.strategy_nav is not None:
        for name in book.strategy_nav.columns:
            strategy_dd[str(name)] = drawdown(book.strategy_nav[name].dropna().to_numpy())
    data = ProgramData(
        tickers=tickers,
        nav=book.nav,
        price=price,
        adv_shares=column("adv_shares"),
        spread_bps=column("spread_bps"),
        volatility=column("volatility"),
        lot_size=column("lot_size"),
        tick_size=column("tick_size"),
        sector=sector_of[rows],
        country=country_of[rows],
        cluster=cluster,
        h0=h0,
        pair_strategy=pair_strategy,
        pair_ticker=pair_ticker,
        w0=w0,
        w_tilde=w_tilde,
        confidence=confidence,
        has_decision=has_decision,
        M=M,
        loadings=loadings,
        factor_cov=factor_cov,
        specific_var=specific,
        factors=factors,
        drawdown=drawdown(nav_path) if len(nav_path) else None,
        strategy_drawdown=strategy_dd,
    )
    problems = book_problems(
        cs,
        sectors=set(sector_of.tolist()),
        countries=set(country_of.tolist()),
        clusters={str(c) for c in cluster if c},
        factors=set(book.risk_model.factors) if book.risk_model is not None else set(),
        has_risk_model=book.risk_model is not None,
    )
    if problems:
        raise ConfigError(cs.name, problems)
    warnings.extend(book_warnings(cs, tickers=set(market.index.astype(str).tolist())))
    pair = np.full(len(d), -1, dtype=int)
    pair[is_valid] = decided_pair
    d["pair"] = pair
    return PreparedInputs(
        data=data,
        decisions=d,
        unpriced_holdings=unpriced,
        warnings=tuple(warnings),
        current_shares=shares,
        pair_shares=qty,
    )
