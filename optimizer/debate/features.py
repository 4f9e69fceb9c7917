"""What the analysts look at: portfolio stress features and per-name features, as arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskopt.constraints.base import ProgramData
from riskopt.constraints.config import ConstraintSet
from riskopt.data.book import Book

STATE_LEVEL = {"NORMAL": 0.0, "ELEVATED": 1.0, "EMERGENCY": 2.0}


@dataclass(frozen=True)
class Features:
    """Portfolio features (scalars) and per-name features (arrays over ``tickers``)."""

    vol_regime: float
    """Realized volatility of the NAV, short window over long window (1 = calm)."""
    drawdown_ratio: float
    """Current drawdown over the drawdown budget."""
    state_level: float
    """0 NORMAL, 1 ELEVATED, 2 EMERGENCY."""
    concentration: float
    """Herfindahl index of the proposed |weights| times the number of names (1 = even)."""
    liquidity_stress: float
    """Mean over decisions of the proposed trade in units of the trade limit."""
    gross_utilization: float
    """Proposed gross over the gross cap."""
    tickers: np.ndarray
    volatility: np.ndarray
    spread_bps: np.ndarray
    pct_adv: np.ndarray
    """Proposed trade as a fraction of ADV."""
    confidence: np.ndarray
    crowding: np.ndarray
    """Share of the name's cluster (or sector) in the proposed gross."""

    def portfolio(self) -> dict[str, float]:
        return {
            "vol_regime": self.vol_regime,
            "drawdown_ratio": self.drawdown_ratio,
            "state_level": self.state_level,
            "concentration": self.concentration,
            "liquidity_stress": self.liquidity_stress,
            "gross_utilization": self.gross_utilization,
        }


def compute_features(book: Book, data: ProgramData, cs: ConstraintSet, state: str) -> Features:
    nav = book.nav_history.to_numpy(dtype=float)
    short, long = cs.debate.vol_short_days, cs.debate.vol_long_days
    vol_regime = 1.0
    if len(nav) > short + 1:
        r = np.diff(np.log(nav))
        long_vol = r[-long:].std()
        vol_regime = float(r[-short:].std() / long_vol) if long_vol > 0 else 1.0
    budget = cs.drawdown.budget or 0.15
    drawdown_ratio = float((data.drawdown or 0.0) / budget)
    h = data.h_tilde
    gross = float(np.abs(h).sum())
    concentration = float(((np.abs(h) / gross) ** 2).sum() * data.n) if gross > 0 else 1.0
    trade_shares = np.abs(h - data.h0) * data.nav / data.price
    pct_adv = np.divide(
        trade_shares, data.adv_shares, out=np.full(data.n, 10.0), where=data.adv_shares > 0
    )
    pct_adv = np.where(trade_shares > 0, pct_adv, 0.0)
    limit = cs.trading.max_trade_pct_adv or 1.0
    decided = np.asarray(data.M @ data.has_decision.astype(float)) > 0
    liquidity_stress = (
        float(np.minimum(pct_adv[decided] / limit, 10.0).mean()) if decided.any() else 0.0
    )
    cap = cs.exposure.gross.max
    gross_utilization = gross / cap if cap else 0.0
    groups = np.where(data.cluster != "", data.cluster, data.sector)
    share = np.zeros(data.n)
    if gross > 0:
        _, inverse = np.unique(groups.astype(str), return_inverse=True)
        group_gross = np.bincount(inverse, weights=np.abs(h))
        share = group_gross[inverse] / gross
    confidence = np.zeros(data.n)
    np.maximum.at(confidence, data.pair_ticker, np.where(data.has_decision, data.confidence, 0.0))
    return Features(
        vol_regime=vol_regime,
        drawdown_ratio=drawdown_ratio,
        state_level=STATE_LEVEL.get(state, 1.0),
        concentration=concentration,
        liquidity_stress=liquidity_stress,
        gross_utilization=gross_utilization,
        tickers=data.tickers,
        volatility=data.volatility,
        spread_bps=data.spread_bps,
        pct_adv=pct_adv,
        confidence=np.where(decided, confidence, 1.0),
        crowding=share,
    )
