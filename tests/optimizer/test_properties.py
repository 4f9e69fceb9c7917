"""Properties of the gate over generated books, decisions and constraint sets.

* every hard limit holds on every output (to 1e-7 in weight, and in shares after lots);
* a proposal that already satisfies every limit passes unchanged, every label OK;
* tightening a limit never increases the exposure it caps;
* the same inputs give the same outputs, from a cached or a freshly built program;
* a re-solve on a kept Clarabel solver ends at the cold answer, to the solver's accuracy.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.errors import ConfigError
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance
from riskopt.optimizer.program import ProgramCache

EXAMPLES = int(os.environ.get("RISKOPT_EXAMPLES", "25"))
"""Examples per property; raise it for a thorough local run (RISKOPT_EXAMPLES=200)."""
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def cases(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    n = draw(st.integers(12, 40))
    k = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 10_000))
    nav = draw(st.sampled_from([1e7, 1e8, 1e9]))
    universe = make_universe(n, k, seed, nav=nav, years=0.4, with_returns=True)
    maybe = st.one_of(st.none(), st.floats(0.05, 1.0))
    cs = ConstraintSet.from_dict(
        {
            "name": "drawn",
            "position": {"max_weight": draw(st.floats(0.01, 0.1))},
            "exposure": {
                "gross": {"max": draw(st.floats(0.2, 2.0))},
                "net": {"min": None, "max": None},
                "long": {"max": draw(st.one_of(st.none(), st.floats(0.1, 1.5)))},
                "short": {"max": draw(st.one_of(st.none(), st.floats(0.1, 1.5)))},
            },
            "trading": {"max_trade_pct_adv": draw(st.floats(0.001, 0.5))},
            "groups": {
                "sector": {"max_gross": draw(maybe), "tier": draw(st.integers(1, 4))},
                "country": {"max_gross": draw(maybe)},
                "cluster": {"max_gross": draw(maybe)},
            },
            "liquidity": {
                "max_position_pct_adv": draw(st.one_of(st.none(), st.floats(0.05, 1.0))),
                "max_spread_bps": draw(st.one_of(st.none(), st.floats(5.0, 40.0))),
                "volatility_budget": draw(st.one_of(st.none(), st.floats(0.005, 0.05))),
            },
            "risk": {"max_volatility": draw(st.one_of(st.none(), st.floats(0.01, 0.2)))},
            "drawdown": {"budget": draw(st.one_of(st.none(), st.floats(0.05, 0.3)))},
            "strategies": {
                "value": {"max_gross": draw(st.one_of(st.none(), st.floats(0.05, 0.2)))}
            },
        }
    )
    gamma = draw(st.sampled_from([0.0, 0.5, 5.0]))
    return universe.book, universe.decisions, cs, gamma


def _volatility(book, tickers, weights) -> float:  # type: ignore[no-untyped-def]
    """Ex-ante volatility ``sqrt(wᵀ(BFBᵀ + D)w)`` of ``weights`` on ``tickers``."""
    rm = book.risk_model
    w = pd.Series(np.asarray(weights, dtype=float), index=np.asarray(tickers))
    w = w.reindex(rm.loadings.index).fillna(0.0).to_numpy()
    f = rm.loadings.to_numpy().T @ w
    specific = rm.specific_var.reindex(rm.loadings.index).to_numpy()
    return float(np.sqrt(f @ rm.factor_cov.to_numpy() @ f + (specific * w * w).sum()))


def _gates_hold(book, result, cs) -> None:  # type: ignore[no-untyped-def]
    """Names failing the spread gate never grow and never flip."""
    limit = cs.liquidity.max_spread_bps
    if limit is None:
        return
    targets = result.targets.set_index("ticker")
    gated = book.market.loc[targets.index, "spread_bps"] > limit
    t = targets[gated.to_numpy()]
    assert (t["target_position"].abs() <= t["current_position"].abs() + 1e-9).all()
    assert (t["target_position"] * t["current_position"] >= 0).all()


def _trade_limits_hold(book, result, cs) -> None:  # type: ignore[no-untyped-def]
    targets = result.targets.set_index("ticker")
    market = book.market.loc[targets.index]
    traded = (targets["target_position"] - targets["current_position"]).abs()
    limit = cs.trading.max_trade_pct_adv * market["adv_shares"]
    assert (traded <= limit * (1 + 1e-9) + 1e-7).all()
    # In weight, the same limit to 1e-7.
    trade_w = traded * market["price"] / book.nav
    assert (trade_w <= limit * market["price"] / book.nav + 1e-7).all()
    # Whole lots traded, except closing an odd-lot holding to zero.
    lots = (targets["delta_position"] / market["lot_size"]).to_numpy()
    closing = targets["target_position"].to_numpy() == 0
    assert (np.isclose(lots, np.round(lots), atol=1e-6) | closing).all()


@SETTINGS
@given(cases())
def test_every_hard_limit_holds(case) -> None:  # type: ignore[no-untyped-def]
    book, decisions, cs, gamma = case
    result = rebalance(book, decisions, cs, risk_aversion=gamma)
    assert result.status in ("OPTIMAL", "RELAXED")
    _trade_limits_hold(book, result, cs)
    _gates_hold(book, result, cs)
    # Policy limits hold whenever the run reports no breach (up to one lot per name).
    if result.status == "OPTIMAL":
        after = result.run.exposures_after
        lots = (book.market["lot_size"] * book.market["price"] / book.nav).sum()
        assert after["gross"] <= cs.exposure.gross.max + lots + 1e-7
        w = result.targets["target_weight"].abs()
        lot_w = (
            (book.market["lot_size"] * book.market["price"] / book.nav)
            .reindex(result.targets["ticker"])
            .to_numpy()
        )
        assert (w.to_numpy() <= cs.position.max_weight + lot_w + 1e-7).all()
        if cs.risk.max_volatility is not None:
            # The solved weights meet the cap; rounding to lots moves the volatility by at
            # most the volatility of the rounding itself (it is a norm). On a $10m book one
            # lot can be 1e-5 of NAV, so the rounded book may sit that much above the cap.
            t = result.targets.dropna(subset=["solved_weight"])
            solved = _volatility(book, t["ticker"], t["solved_weight"])
            rounding = _volatility(book, t["ticker"], t["target_weight"] - t["solved_weight"])
            assert solved <= cs.risk.max_volatility + 1e-6
            assert after["volatility"] <= cs.risk.max_volatility + rounding + 1e-6
        if cs.groups.sector.max_gross is not None:
            frame = result.targets.assign(
                sector=book.market.loc[result.targets["ticker"], "sector"].to_numpy()
            )
            by_sector = frame.groupby("sector")["target_weight"]
            sector_gross = by_sector.apply(lambda x: x.abs().sum())
            # Rounding to lots may leave each name up to 1e-6 of NAV above its solved weight.
            assert (
                sector_gross <= cs.groups.sector.max_gross + 1e-6 * (by_sector.size() + 1)
            ).all()
    else:
        assert result.breaches and all(b["breach"] > 0 for b in result.breaches)


@st.composite
def compliant_cases(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    n = draw(st.integers(12, 40))
    seed = draw(st.integers(0, 10_000))
    universe = make_universe(n, 2, seed, nav=1e9, years=0.2, with_returns=False)
    book, dec = universe.book, universe.decisions
    # Decisions within the caps; a set loose enough for them all.
    dec = dec.assign(target_weight=dec["target_weight"].clip(-0.03, 0.03))
    return book, dec


@SETTINGS
@given(compliant_cases())
def test_a_compliant_proposal_passes_unchanged(case) -> None:  # type: ignore[no-untyped-def]
    book, dec = case
    loose = rebalance(
        book,
        dec,
        ConstraintSet.from_dict(
            {
                "name": "loose",
                "position": {"max_weight": 1.0},
                "exposure": {"gross": {"max": 10.0}, "net": {"min": None, "max": None}},
                "trading": {"max_trade_pct_adv": None},
            }
        ),
        risk_aversion=0.0,
    )
    proposed = loose.targets.set_index("ticker")["proposed_weight"]
    gross, net = proposed.abs().sum(), proposed.sum()
    market = book.market.loc[proposed.index]
    current = loose.targets.set_index("ticker")["current_weight"]
    pct_adv = float(
        ((proposed - current).abs() * book.nav / market["price"] / market["adv_shares"]).max()
    )
    cs = ConstraintSet.from_dict(
        {
            "name": "just_enough",
            "position": {"max_weight": float(proposed.abs().max()) + 1e-6},
            "exposure": {
                "gross": {"max": gross + 1e-6},
                "net": {"min": net - 1e-6, "max": net + 1e-6},
            },
            "trading": {"max_trade_pct_adv": pct_adv * (1 + 1e-6) + 1e-9},
        }
    )
    result = rebalance(book, dec, cs, risk_aversion=0.0)
    assert result.status == "OPTIMAL"
    assert (result.actions["action_type"] == "OK").all()
    targets = result.targets.set_index("ticker").loc[proposed.index]
    # The solution is the proposal itself, to the last bit (not to solver tolerance);
    # rounding to lots then moves each sleeve by less than a lot (each sleeve trades whole
    # lots and stays within its own hull). Where that leaves the tier-1 net band (±1e-6,
    # narrower than a lot of some names), names step whole lots toward zero or back
    # toward held until the band holds again: every name stays between zero, held and
    # proposed, to a lot per sleeve.
    np.testing.assert_array_equal(targets["solved_weight"], proposed)
    lot_w = market["lot_size"] * market["price"] / book.nav
    sleeves = result.sleeve_targets.groupby("ticker").size().reindex(proposed.index)
    final = targets["target_weight"]
    assert net - 1e-6 - 1e-12 <= final.sum() <= net + 1e-6 + 1e-12
    assert final.abs().sum() <= gross + 1e-6 + 1e-12
    held = targets["current_weight"]
    low = np.minimum(np.minimum(held, proposed), 0.0) - lot_w * sleeves
    high = np.maximum(np.maximum(held, proposed), 0.0) + lot_w * sleeves
    assert ((final >= low - 1e-12) & (final <= high + 1e-12)).all()


@st.composite
def tightening(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    book, dec, cs, gamma = draw(cases())
    key = draw(
        st.sampled_from(
            ["exposure.gross.max", "exposure.long.max", "exposure.short.max", "position.max_weight"]
        )
    )
    factor = draw(st.floats(0.3, 0.95))
    return book, dec, cs, gamma, key, factor


def _exposure(book, result, key: str) -> float:  # type: ignore[no-untyped-def]
    """The exposure a limit caps, measured on the final targets."""
    targets = result.targets
    w = targets["target_weight"].to_numpy()
    market = book.market.loc[targets["ticker"]]
    if key == "position.max_weight":
        return float(np.abs(w).max())
    if key == "groups.sector.max_gross":
        return float(pd.Series(np.abs(w)).groupby(market["sector"].to_numpy()).sum().max())
    if key == "liquidity.volatility_budget":
        return float((np.abs(w) * market["volatility"].to_numpy()).max())
    if key == "risk.max_volatility":
        return float(result.run.exposures_after["volatility"])
    return float(result.run.exposures_after[key.split(".")[1]])


def _value(cs: ConstraintSet, key: str) -> float | None:
    node: object = cs.model_dump()
    for part in key.split("."):
        node = node[part]  # type: ignore[index]
    return node  # type: ignore[return-value]


@SETTINGS
@given(tightening())
def test_tightening_a_limit_never_increases_its_exposure(case) -> None:  # type: ignore[no-untyped-def]
    book, dec, cs, gamma, key, factor = case
    current = _value(cs, key)
    try:
        tighter = cs.replace(**{key: (1.0 if current is None else current) * factor})
    except ConfigError:
        assume(False)  # the tighter value contradicts another limit (say, a sleeve budget)
        return
    loose = rebalance(book, dec, cs, risk_aversion=gamma)
    tight = rebalance(book, dec, tighter, risk_aversion=gamma)
    lots = float((book.market["lot_size"] * book.market["price"] / book.nav).max())
    assert _exposure(book, tight, key) <= _exposure(book, loose, key) + lots + 1e-6


@settings(max_examples=10, deadline=None)
@given(cases())
def test_same_inputs_same_outputs(case) -> None:  # type: ignore[no-untyped-def]
    book, dec, cs, gamma = case
    shared = ProgramCache()
    first = rebalance(book, dec, cs, risk_aversion=gamma, cache=shared)
    second = rebalance(book, dec, cs, risk_aversion=gamma, cache=shared)
    cold = rebalance(book, dec, cs, risk_aversion=gamma, cache=None)
    assert shared.builds == 1
    for other in (second, cold):
        # Shares, priorities, labels and reasons are identical; weights agree to 1e-12
        # (a cold build may differ from a cached one in the last bits of the solve).
        exact = [
            "ticker",
            "current_position",
            "target_position",
            "priority",
            "action_type",
            "risk_reasoning_summary",
        ]
        pd.testing.assert_frame_equal(first.targets[exact], other.targets[exact])
        pd.testing.assert_frame_equal(
            first.targets, other.targets, check_exact=False, atol=1e-12, rtol=0
        )
        cols = ["decision_id", "ticker", "action_type", "reason"]
        pd.testing.assert_frame_equal(first.actions[cols], other.actions[cols])
        np.testing.assert_allclose(
            first.actions["final_weight"], other.actions["final_weight"], atol=1e-12, rtol=0
        )


@settings(max_examples=10, deadline=None)
@given(cases(), st.floats(0.3, 1.5))
def test_a_kept_solver_re_solves_to_the_cold_answer(case, scale: float) -> None:  # type: ignore[no-untyped-def]
    """On a cache that keeps Clarabel's solver, a re-solve with new decisions ends where
    a cold solve of the same inputs does, to the solver's accuracy."""
    book, dec, cs, gamma = case
    kept = ProgramCache(reuse_solver=True)
    rebalance(book, dec, cs, risk_aversion=gamma, cache=kept)
    moved = dec.assign(target_weight=dec["target_weight"] * scale)
    again = rebalance(book, moved, cs, risk_aversion=gamma, cache=kept)
    cold = rebalance(book, moved, cs, risk_aversion=gamma, cache=None)
    ours = again.targets.set_index("ticker").sort_index()["solved_weight"]
    theirs = cold.targets.set_index("ticker").sort_index()["solved_weight"]
    assert ours.index.equals(theirs.index)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), atol=1e-6, rtol=0)
