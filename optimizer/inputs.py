"""Triage of decisions and assembly of the program's numbers from a Book.

Bad decision rows never stop the book: each gets a reason and becomes ``REJECTED``;
the rest proceed. Names without a valid price are left out of the program and their
holdings carried unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from riskopt.constraints.base import ProgramData
from riskopt.constraints.config import ConstraintSet, book_problems, book_warnings
from riskopt.constraints.drawdown import drawdown
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.registry import FAMILIES
from riskopt.data.book import Book
from riskopt.data.contracts import MARKET_SCHEMA, DecisionsInput, check_decision_columns
from riskopt.data.errors import ValidationError


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


def triage_decisions(decisions: DecisionsInput, book: Book, cs: ConstraintSet) -> pd.DataFrame:
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
        mark(
            _has_nul(d[col]), f"{col} contains a NUL byte, which the runtime database cannot store"
        )
    mark(~known, "unknown ticker: not in the market data")
    px = np.full(len(d), np.nan)
    px[known] = book.market["price"].to_numpy(dtype=float)[row[known]]
    mark(known & ~((px > 0) & np.isfinite(px)), "no valid price for this ticker")
    target = d["target_weight"].to_numpy(dtype=float)
    mark(~np.isfinite(target), "target_weight is not a finite number")
    conf = d["confidence"].to_numpy(dtype=float)
    mark(~((conf > 0) & (conf <= 1)), "confidence must be in (0, 1]")
    limit = cs.sanity.max_abs_target_weight
    _refuse_percent(target, limit)
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


def _has_nul(column: pd.Series) -> np.ndarray:
    """Which values of a text column contain a NUL byte (missing ones do not): searched
    in its Arrow buffer where pandas keeps it in one, else as pandas' own text."""
    if column.dtype == "str":
        hit = pc.match_substring(pa.array(column), "\x00").fill_null(False)
        return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
    # an empty table's column may be numeric
    as_text = column.astype("string")
    return as_text.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)


PERCENT_SHARE = 1 / 3
"""A decisions table with at least three rows, and this share of its non-zero rows or
more, above the absurd-size cap was written in percent (0.05 for 5% of NAV, not 5)."""


def _refuse_percent(target: np.ndarray, limit: float) -> None:
    """Refuse weights given in percent, rather than reject the large rows as absurd and
    trade the others a hundred times too large."""
    sizes = np.abs(target[np.isfinite(target) & (target != 0)])
    above = int((sizes > limit).sum())
    if above >= 3 and above >= PERCENT_SHARE * len(sizes):
        raise ValidationError(
            "decisions",
            [
                f"target_weight: {above} of {len(sizes)} weights are above "
                f"{limit:.0%} of NAV (the absurd-size cap): weights are fractions of NAV "
                "(0.05 for 5%), given in percent?"
            ],
        )


class _Pairs(NamedTuple):
    """The program's names and (strategy, ticker) pairs, from holdings then decisions."""

    tickers: np.ndarray
    ticker_code: np.ndarray
    """Each holding's, then each valid decision's, name (index into ``tickers``)."""
    pair_of_row: np.ndarray
    """Each holding's, then each valid decision's, pair."""
    pair_ticker: np.ndarray
    pair_strategy: np.ndarray


class _Weights(NamedTuple):
    """Per-pair and per-name positions before and as proposed."""

    price: np.ndarray
    qty: np.ndarray
    shares: np.ndarray
    w0: np.ndarray
    w_tilde: np.ndarray
    confidence: np.ndarray
    has_decision: np.ndarray
    decided_pair: np.ndarray
    M: sp.csr_matrix
    h0: np.ndarray


class _Risk(NamedTuple):
    """The risk model on the program's names (all ``None`` without one)."""

    loadings: np.ndarray | None
    factor_cov: np.ndarray | None
    specific: np.ndarray | None
    factors: tuple[str, ...]


def prepare(book: Book, decisions: DecisionsInput, cs: ConstraintSet) -> PreparedInputs:
    """Align book and valid decisions on the program's names and sleeve pairs."""
    d = triage_decisions(decisions, book, cs)
    market = book.market
    warnings = list(book.warnings)  # what building the book set aside (future rows)
    if not len(d):
        warnings.append("no decisions: every holding is held where the limits allow it")
    pos, unpriced = _priced_holdings(book, warnings)
    is_valid = d["reject_reason"].isna().to_numpy()
    valid = d[is_valid]
    pairs = _pairs(pos, valid)
    n = len(pairs.tickers)
    rows = market.index.get_indexer(pd.Index(pairs.tickers)) if n else np.zeros(0, dtype=np.intp)
    weights = _weights(book, pos, valid, pairs, rows)
    risk = _risk(book, pairs.tickers, rows, warnings)
    data = _program_data(book, pairs, rows, weights, risk)
    for family in FAMILIES:  # what a family derives: clusters from returns, say
        data, derived_warnings = family.derive(cs, data, book.returns)
        warnings.extend(derived_warnings)
    _check_fits(book, cs, data.cluster)
    warnings.extend(book_warnings(cs, tickers=set(market.index.astype(str).tolist())))
    pair = np.full(len(d), -1, dtype=int)
    pair[is_valid] = weights.decided_pair
    d["pair"] = pair
    return PreparedInputs(
        data=data,
        decisions=d,
        unpriced_holdings=unpriced,
        warnings=tuple(warnings),
        current_shares=weights.shares,
        pair_shares=weights.qty,
    )


def _priced_holdings(book: Book, warnings: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The holdings with a valid price, and those without (carried unchanged, warned of)."""
    pos = book.positions
    at = book.market.index.get_indexer(pd.Index(pos["ticker"]))  # -1: not in the market
    price = np.where(at >= 0, book.market["price"].to_numpy(dtype=float)[at], np.nan)
    priced = (price > 0) & np.isfinite(price)
    unpriced = pos.loc[~priced].copy()
    if len(unpriced):
        warnings.append(
            "holdings without a valid price are carried unchanged and left out of the "
            f"program: {', '.join(sorted(set(unpriced['ticker'])))}"
        )
    return pos.loc[priced], unpriced


def _pairs(pos: pd.DataFrame, valid: pd.DataFrame) -> _Pairs:
    """Pairs (strategy, ticker) from holdings and valid decisions, as integer codes:
    sorted by strategy then ticker, as strings sort."""
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
    pair_ticker = (pair_code % max(n, 1)).astype(np.intp)
    pair_strategy = strategy_names[pair_code // max(n, 1)].astype(object)
    return _Pairs(ticker_names.astype(object), ticker_code, pair_of_row, pair_ticker, pair_strategy)


def _weights(
    book: Book, pos: pd.DataFrame, valid: pd.DataFrame, pairs: _Pairs, rows: np.ndarray
) -> _Weights:
    """Current and proposed weights per pair, shares per pair and per name."""
    n, p, held = len(pairs.tickers), len(pairs.pair_ticker), len(pos)
    price = book.market["price"].to_numpy(dtype=float)[rows]
    # Holdings are one row per pair (the Book's contract); decisions too (triage).
    quantity = pos["quantity"].to_numpy(dtype=float)
    qty = np.bincount(pairs.pair_of_row[:held], weights=quantity, minlength=p)
    shares = np.bincount(pairs.ticker_code[:held], weights=quantity, minlength=n)
    w0 = qty * price[pairs.pair_ticker] / book.nav
    decided_pair = pairs.pair_of_row[held:]
    has_decision = np.zeros(p, dtype=bool)
    has_decision[decided_pair] = True
    w_tilde = w0.copy()
    w_tilde[decided_pair] = valid["target_weight"].to_numpy(dtype=float)
    confidence = np.zeros(p)
    confidence[decided_pair] = valid["confidence"].to_numpy(dtype=float)
    M = sp.csr_matrix((np.ones(p), (pairs.pair_ticker, np.arange(p))), shape=(n, p))
    h0 = np.asarray(M @ w0)
    return _Weights(price, qty, shares, w0, w_tilde, confidence, has_decision, decided_pair, M, h0)


def _risk(book: Book, tickers: np.ndarray, rows: np.ndarray, warnings: list[str]) -> _Risk:
    """The book's risk model on the program's names; without one, a warning."""
    if book.risk_model is None:
        warnings.append("the book has no risk model: the risk-aversion terms are off")
        return _Risk(None, None, None, ())
    if not len(tickers):
        return _Risk(None, None, None, ())
    rm, market = book.risk_model, book.market
    if rm.loadings.index.equals(market.index) and rm.specific_var.index.equals(market.index):
        # A Book aligns its risk model on its market: the same rows. Column-major, as
        # pandas hands it out, so that every product keeps its last bit.
        loadings = np.asfortranarray(rm.loadings.to_numpy(dtype=float)[rows])
        specific = rm.specific_var.to_numpy(dtype=float)[rows]
    else:  # a model changed after validation: by label (a missing name raises)
        loadings = rm.loadings.loc[tickers].to_numpy(dtype=float)
        specific = rm.specific_var.loc[tickers].to_numpy(dtype=float)
    return _Risk(loadings, rm.factor_cov.to_numpy(dtype=float), specific, tuple(rm.factors))


def _drawdowns(book: Book) -> tuple[float | None, dict[str, float]]:
    """The book's drawdown (today's point of the NAV path is the book's NAV, whatever the
    history says for it) and each strategy's."""
    history = book.nav_history
    nav_path = np.zeros(0)
    if len(history):
        earlier = history[history.index < pd.Timestamp(book.as_of)]
        nav_path = np.append(earlier.to_numpy(dtype=float), book.nav)
    strategy_dd: dict[str, float] = {}
    if book.strategy_nav is not None:
        for name in book.strategy_nav.columns:
            strategy_dd[str(name)] = drawdown(book.strategy_nav[name].dropna().to_numpy())
    return (drawdown(nav_path) if len(nav_path) else None), strategy_dd


def _program_data(
    book: Book,
    pairs: _Pairs,
    rows: np.ndarray,
    weights: _Weights,
    risk: _Risk,
) -> ProgramData:
    """The program's numbers on its names and pairs: the contract's columns by name, any
    further market column in ``columns``."""
    market = book.market

    def column(name: str) -> np.ndarray:
        """The market's numeric ``name`` column on the program's names."""
        return market[name].to_numpy(dtype=float)[rows]

    book_dd, strategy_dd = _drawdowns(book)
    return ProgramData(
        tickers=pairs.tickers,
        nav=book.nav,
        price=weights.price,
        adv_shares=column("adv_shares"),
        spread_bps=column("spread_bps"),
        volatility=column("volatility"),
        lot_size=column("lot_size"),
        tick_size=column("tick_size"),
        sector=market["sector"].astype(str).to_numpy(dtype=object)[rows],
        country=market["country"].astype(str).to_numpy(dtype=object)[rows],
        cluster=np.where(market["cluster"].isna(), "", market["cluster"]).astype(object)[rows],
        h0=weights.h0,
        pair_strategy=pairs.pair_strategy,
        pair_ticker=pairs.pair_ticker,
        w0=weights.w0,
        w_tilde=weights.w_tilde,
        confidence=weights.confidence,
        has_decision=weights.has_decision,
        M=weights.M,
        loadings=risk.loadings,
        factor_cov=risk.factor_cov,
        specific_var=risk.specific,
        factors=risk.factors,
        drawdown=book_dd,
        strategy_drawdown=strategy_dd,
        columns=_further_columns(market, rows),
    )


def _further_columns(market: pd.DataFrame, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The market's columns beyond the contract's, on the program's names: numbers as
    floats, anything else as text."""
    contract = set(MARKET_SCHEMA.columns)
    # A handful of columns: a set lookup each, where Index.difference builds two indexes.
    further = dict.fromkeys(name for name in market.columns if name not in contract)
    return {
        str(name): (
            market[name].to_numpy(dtype=float)[rows]
            if pd.api.types.is_numeric_dtype(market[name])
            else market[name].astype(str).to_numpy(dtype=object)[rows]
        )
        for name in further
    }


def _check_fits(book: Book, cs: ConstraintSet, cluster: np.ndarray) -> None:
    """Raise ``ConfigError`` where the set names sectors, countries, clusters or factors
    the book lacks (checked against the whole market)."""
    market = book.market
    problems = book_problems(
        cs,
        sectors=set(market["sector"].astype(str).to_numpy(dtype=object).tolist()),
        countries=set(market["country"].astype(str).to_numpy(dtype=object).tolist()),
        clusters={str(c) for c in cluster if c},
        factors=set(book.risk_model.factors) if book.risk_model is not None else set(),
        has_risk_model=book.risk_model is not None,
    )
    if problems:
        raise ConfigError(cs.name, problems)
