"""Black-swan states, the emergency drill, and every failure mode of DESIGN.md."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cvxpy.error import SolverError
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL

from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.states import BlackSwanState, resolve_state, tightened
from riskopt.data.errors import ValidationError
from riskopt.data.loaders import save_book
from riskopt.optimizer import rebalance
from riskopt.optimizer.result import exposures
from tests.helpers import decisions, hand_book

NOW = dt.datetime(2026, 11, 20, 16, 0, tzinfo=dt.UTC)


# -- the emergency drill -------------------------------------------------------------------


@pytest.fixture(scope="module")
def drill(sample):  # type: ignore[no-untyped-def]
    book, dec = sample
    return book, {
        s: rebalance(book, dec, "default", state=s, risk_aversion=1.0)
        for s in ("NORMAL", "ELEVATED", "EMERGENCY")
    }


def _measures(book, result) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The solved book's exposures: the envelope caps those (rounding to whole lots may
    then move them by a lot per name, where a hard trade limit sits between two lots)."""
    t = result.targets.dropna(subset=["solved_weight"]).set_index("ticker")
    h = t["solved_weight"].to_numpy()
    rm = book.risk_model
    after = exposures(
        h,
        rm.loadings.loc[t.index].to_numpy(),
        rm.factor_cov.to_numpy(),
        rm.specific_var.loc[t.index].to_numpy(),
    )
    return {
        "gross": after["gross"],
        "abs_net": abs(after["net"]),
        "max_name": float(np.abs(h).max()),
        "volatility": after["volatility"],
    }


def test_exposures_never_increase_with_the_state(drill) -> None:  # type: ignore[no-untyped-def]
    book, results = drill
    m = {s: _measures(book, r) for s, r in results.items()}
    for key in ("gross", "abs_net", "max_name", "volatility"):
        assert m["ELEVATED"][key] <= m["NORMAL"][key] + 1e-6, key
        assert m["EMERGENCY"][key] <= m["ELEVATED"][key] + 1e-6, key
    assert {r.run.state for r in results.values()} == {"NORMAL", "ELEVATED", "EMERGENCY"}


def test_emergency_only_ever_reduces(drill) -> None:  # type: ignore[no-untyped-def]
    _, results = drill
    t = results["EMERGENCY"].targets
    current, target = t["current_position"], t["target_position"]
    assert (target[current == 0] == 0).all()  # no new name
    assert (target.abs() <= current.abs() + 1e-9).all()  # no position grows
    assert (target * current >= 0).all()  # none flips sign


def test_emergency_forces_gross_down_as_far_as_liquidity_allows(drill) -> None:  # type: ignore[no-untyped-def]
    book, results = drill
    result = results["EMERGENCY"]
    cs = ConstraintSet.load("default")
    fraction = cs.states.EMERGENCY.forced_derisk
    before, after = result.run.exposures_before["gross"], result.run.exposures_after["gross"]
    required = (1 - fraction) * before
    breach = [b for b in result.breaches if b["constraint"] == "state.forced_derisk"]
    if after <= required + 1e-6:
        assert not breach
    else:
        # Liquidity stopped the cut: the breach report covers exactly the rest, and every
        # name still held could not sell more today.
        (b,) = breach
        assert b["breach"] == pytest.approx(after - required, abs=1e-5)
        t = result.targets.set_index("ticker")
        held = t[t["target_position"] != 0]
        adv = book.market.loc[held.index, "adv_shares"]
        sold = held["current_position"].abs() - held["target_position"].abs()
        lot = book.market.loc[held.index, "lot_size"]
        assert (sold >= cs.trading.max_trade_pct_adv * 0.5 * adv - lot - 1e-9).all()


def test_emergency_priority_puts_the_largest_risk_reduction_first(drill) -> None:  # type: ignore[no-untyped-def]
    book, results = drill
    t = results["EMERGENCY"].targets.sort_values("priority")
    vol = book.market.loc[t["ticker"], "volatility"].to_numpy()
    removed = (t["current_weight"].abs() - t["target_weight"].abs()).to_numpy() * vol
    trading = (t["delta_position"] != 0).to_numpy()
    head = removed[trading]
    assert (np.diff(head) <= 1e-12).all()


# -- resolving the state --------------------------------------------------------------------


def test_missing_stale_and_unknown_states_are_the_default() -> None:
    cs = ConstraintSet.load("default")
    missing = resolve_state(None, cs, now=NOW)
    assert (missing.state, missing.source) == ("ELEVATED", "missing") and missing.alerts
    stale = resolve_state(BlackSwanState("NORMAL", as_of=NOW - dt.timedelta(hours=30)), cs, now=NOW)
    assert (stale.state, stale.source) == ("ELEVATED", "stale")
    stale_emergency = resolve_state(
        BlackSwanState("EMERGENCY", as_of=NOW - dt.timedelta(days=3)), cs, now=NOW
    )
    assert stale_emergency.state == "EMERGENCY"  # a stale state never relaxes below the default
    fresh = resolve_state(BlackSwanState("NORMAL", as_of=NOW - dt.timedelta(hours=1)), cs, now=NOW)
    assert (fresh.state, fresh.source, fresh.alerts) == ("NORMAL", "given", ())
    assert resolve_state("PANIC", cs, now=NOW).state == "ELEVATED"


def test_a_run_without_a_state_says_so() -> None:
    book = hand_book({"AAA": 100.0})
    result = rebalance(book, decisions([("D1", "s1", "AAA", 0.01)]), "default", risk_aversion=0.0)
    assert result.run.state == "ELEVATED" and result.run.state_source == "missing"
    assert any("no black-swan state" in a for a in result.run.alerts)


MALFORMED = {
    "state None": BlackSwanState(None, as_of=NOW),  # type: ignore[arg-type]
    "state a number": BlackSwanState(2, as_of=NOW),  # type: ignore[arg-type]
    "state a list": BlackSwanState(["NORMAL"], as_of=NOW),  # type: ignore[arg-type]
    "state not a state": BlackSwanState("CALM", as_of=NOW),
    "as_of naive": BlackSwanState("NORMAL", as_of=NOW.replace(tzinfo=None)),
    "as_of not a time": BlackSwanState("NORMAL", as_of="yesterday"),  # type: ignore[arg-type]
    "as_of a number": BlackSwanState("NORMAL", as_of=1.7e9),  # type: ignore[arg-type]
    "overrides not a table": BlackSwanState("NORMAL", as_of=NOW, overrides=["derisk_only"]),  # type: ignore[arg-type]
    "flag not a bool": BlackSwanState("NORMAL", as_of=NOW, overrides={"derisk_only": "yes"}),
    "multiplier a list": BlackSwanState("NORMAL", as_of=NOW, overrides={"gross": [0.5]}),
    "fraction a text": BlackSwanState("NORMAL", as_of=NOW, overrides={"forced_derisk": "0.2"}),
    "multiplier a bool": BlackSwanState("NORMAL", as_of=NOW, overrides={"position": True}),
    "tier a float": BlackSwanState("NORMAL", as_of=NOW, overrides={"forced_derisk_tier": 1.5}),
}


@pytest.mark.parametrize("monitor", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_state_is_refused_for_the_default(monitor: BlackSwanState) -> None:
    book = hand_book({"AAA": 100.0, "BBB": 50.0}, {("s1", "AAA"): 0.02})
    dec = decisions([("D1", "s1", "AAA", 0.03), ("D2", "s1", "BBB", 0.01)])
    result = rebalance(book, dec, "default", state=monitor, risk_aversion=0.0, now=NOW)
    assert result.status in ("OPTIMAL", "RELAXED")
    assert (result.run.state, result.run.state_source) == ("ELEVATED", "malformed")
    (alert,) = [a for a in result.run.alerts if "malformed black-swan state" in a]
    assert alert.endswith("treated as ELEVATED")
    # None of its overrides applied: ELEVATED's own SOP, which lets BBB open.
    assert result.targets.set_index("ticker").loc["BBB", "target_position"] > 0


def test_a_malformed_emergency_keeps_emergency() -> None:
    """Refusing a declaration never relaxes below the state it names, as for a stale one."""
    cs = ConstraintSet.load("default")
    monitor = BlackSwanState("EMERGENCY", as_of=NOW, overrides={"gross": "half"})
    resolved = resolve_state(monitor, cs, now=NOW)
    assert (resolved.state, resolved.source) == ("EMERGENCY", "malformed")
    assert resolved.sop == cs.states.EMERGENCY


def test_a_state_row_from_the_database_is_checked(tmp_path: Path) -> None:
    from riskopt.data.database import load_black_swan_state, save_black_swan_state
    from riskopt.data.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'monitor.sqlite'}"
    upgrade(url, "head")
    save_black_swan_state(url, "NORMAL", NOW, {"derisk_only": "no"})
    row = load_black_swan_state(url)
    assert row is not None
    resolved = resolve_state(BlackSwanState(**row), ConstraintSet.load("default"), now=NOW)
    assert (resolved.state, resolved.source) == ("ELEVATED", "malformed")
    assert not resolved.sop.derisk_only  # "no" is not taken for true
    later = NOW + dt.timedelta(minutes=5)
    save_black_swan_state(url, "normal", later, {"no_new_positions": True})
    row = load_black_swan_state(url)
    assert row is not None
    resolved = resolve_state(BlackSwanState(**row), ConstraintSet.load("default"), now=later)
    assert (resolved.state, resolved.source, resolved.sop.no_new_positions) == (
        "NORMAL",
        "given",
        True,
    )


def test_an_iso_text_with_a_timezone_is_a_time() -> None:
    cs = ConstraintSet.load("default")
    fresh = resolve_state(BlackSwanState("NORMAL", as_of="2026-11-20T15:00:00+00:00"), cs, now=NOW)  # type: ignore[arg-type]
    stale = resolve_state(BlackSwanState("NORMAL", as_of="2026-11-18T15:00:00Z"), cs, now=NOW)  # type: ignore[arg-type]
    assert (fresh.state, fresh.source) == ("NORMAL", "given")
    assert (stale.state, stale.source) == ("ELEVATED", "stale")


def test_loosening_overrides_are_refused_with_an_alert(caplog: pytest.LogCaptureFixture) -> None:
    cs = ConstraintSet.load("default")
    monitor = BlackSwanState(
        "EMERGENCY", as_of=NOW, overrides={"gross": 0.9, "derisk_only": False, "forced_derisk": 0.4}
    )
    with caplog.at_level(logging.WARNING, logger="riskopt"):
        resolved = resolve_state(monitor, cs, now=NOW)
    assert resolved.sop.gross == cs.states.EMERGENCY.gross  # the stricter value kept
    assert resolved.sop.derisk_only is True
    assert resolved.sop.forced_derisk == 0.4  # a tightening override applies
    refused = [a for a in resolved.alerts if "refused" in a]
    assert len(refused) == 2
    assert sum("refused" in r.message for r in caplog.records if r.levelno >= logging.WARNING) == 2


# -- monitor overrides under NORMAL -----------------------------------------------------------


def _normal_with(overrides: dict[str, object]):  # type: ignore[no-untyped-def]
    """The default set under NORMAL with the monitor's ``overrides``, on a book whose
    decisions grow one name, open another, flip a third and cut a fourth."""
    book = hand_book(
        {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0, "DDD": 40.0},
        {("s1", "AAA"): 0.02, ("s1", "BBB"): -0.02, ("s1", "DDD"): 0.03},
    )
    dec = decisions(
        [
            ("D1", "s1", "AAA", 0.04),
            ("D2", "s1", "CCC", 0.03),
            ("D3", "s1", "BBB", 0.01),
            ("D4", "s1", "DDD", 0.025),
        ]
    )
    monitor = BlackSwanState("NORMAL", as_of=NOW, overrides=overrides)
    result = rebalance(book, dec, "default", state=monitor, risk_aversion=0.0, now=NOW)
    assert (result.run.state, result.run.state_source) == ("NORMAL", "given")
    return result, result.targets.set_index("ticker")


def test_derisk_only_under_normal_lets_no_name_grow() -> None:
    _, t = _normal_with({"derisk_only": True})
    current, target = t["current_position"], t["target_position"]
    assert (target.abs() <= current.abs() + 1e-9).all()
    assert (target * current >= 0).all()
    assert t.loc["CCC", "target_position"] == 0 and t.loc["AAA", "target_position"] == 2000
    assert t.loc["DDD", "target_weight"] == pytest.approx(0.025)  # a cut still goes through
    plain, _ = _normal_with({})
    assert plain.targets.set_index("ticker").loc["CCC", "target_position"] > 0  # the control


def test_no_new_positions_under_normal_opens_nothing() -> None:
    _, t = _normal_with({"no_new_positions": True})
    assert t.loc["CCC", "target_position"] == 0
    assert t.loc["AAA", "target_weight"] == pytest.approx(0.04)  # a held name may still grow


def test_forced_derisk_under_normal_cuts_gross() -> None:
    result, _ = _normal_with({"forced_derisk": 0.2})
    before, after = result.run.exposures_before["gross"], result.run.exposures_after["gross"]
    assert after <= 0.8 * before + 1e-6
    assert not [b for b in result.breaches if b["constraint"] == "state.forced_derisk"]


def test_an_override_under_normal_keeps_the_stricter_states_valid() -> None:
    cs = ConstraintSet.load("default")
    resolved = resolve_state(
        BlackSwanState("NORMAL", as_of=NOW, overrides={"gross": 0.5, "derisk_only": True}),
        cs,
        now=NOW,
    )
    tight = tightened(cs, resolved)
    assert tight.states.NORMAL.derisk_only and tight.states.NORMAL.gross == 0.5
    assert tight.exposure.gross.max == pytest.approx(0.5 * cs.exposure.gross.max)  # type: ignore[operator]
    for state in ("ELEVATED", "EMERGENCY"):
        assert not tight.states.sop(state).stricter_than(tight.states.NORMAL)


def test_a_set_whose_elevated_is_looser_than_normal_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"looser than states\.NORMAL in derisk_only"):
        ConstraintSet.from_dict({"states": {"NORMAL": {"derisk_only": True}}})


def test_an_emergency_looser_than_elevated_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"looser than states\.ELEVATED"):
        ConstraintSet.from_dict(
            {"states": {"ELEVATED": {"gross": 0.5}, "EMERGENCY": {"gross": 0.8}}}
        )
    with pytest.raises(ConfigError, match="gross"):
        ConstraintSet.from_dict({"states": {"EMERGENCY": {"gross": 1.5}}})


def test_state_risk_aversion_floor_applies() -> None:
    book = hand_book({"AAA": 100.0, "BBB": 50.0})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.02)]),
        "default",
        state="EMERGENCY",
        risk_aversion=0.0,
    )
    assert result.run.gamma == ConstraintSet.load("default").states.EMERGENCY.risk_aversion_floor


# -- failure modes -----------------------------------------------------------------------------


def test_an_unloadable_book_gives_a_degraded_run(tmp_path: Path) -> None:
    dec = decisions([("D1", "s1", "AAA", 0.02), ("D2", "s1", "BBB", 0.0)])
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    result = rebalance(
        tmp_path / "no_such_book", dec, "default", store=url, run_id="gone", risk_aversion=0.0
    )
    assert result.status == "DEGRADED"
    assert (result.actions["action_type"] == "REJECTED").all()
    assert result.actions["reason"].str.contains("could not be loaded").all()
    assert result.targets.empty
    import sqlalchemy as sa

    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("select status from risk_runs")).scalar_one() == "DEGRADED"
        assert conn.execute(sa.text("select count(*) from risk_actions")).scalar_one() == 2
        # No book, no date: the run says so rather than taking the day it ran.
        assert conn.execute(sa.text("select as_of from risk_runs")).scalar_one() is None
    assert result.run.as_of is None and result.run.to_dict()["as_of"] is None
    assert "as_of unknown" in " ".join(result.run.warnings)
    assert "as of unknown" in result.summary()


def test_a_book_with_non_positive_nav_is_degraded(tmp_path: Path) -> None:
    book = hand_book({"AAA": 100.0}, {("s1", "AAA"): 0.01})
    directory = save_book(book, tmp_path / "book")
    (directory / "book.toml").write_text("as_of = 2026-11-20\nnav = -5.0\n")
    result = rebalance(
        directory, decisions([("D1", "s1", "AAA", 0.02)]), "default", risk_aversion=0.0
    )
    assert result.status == "DEGRADED"
    assert "nav" in result.actions["reason"].iloc[0]


def test_an_inconsistent_set_falls_back_to_conservative(caplog: pytest.LogCaptureFixture) -> None:
    book = hand_book({"AAA": 100.0, "BBB": 50.0})
    bad = ConstraintSet.load("default").replace(
        **{"groups.sector.net_overrides": {"Nonexistent": 0.1}}
    )
    with caplog.at_level(logging.WARNING, logger="riskopt"):
        result = rebalance(
            book, decisions([("D1", "s1", "AAA", 0.06)]), bad, state="NORMAL", risk_aversion=0.0
        )
    assert result.status == "DEGRADED"
    assert result.run.constraint_set == "conservative"
    assert any("inconsistent constraint set" in a for a in result.run.alerts)
    assert any(
        "inconsistent constraint set" in r.message
        for r in caplog.records
        if r.levelno >= logging.WARNING
    )
    conservative_cap = ConstraintSet.load("conservative").position.max_weight
    assert result.targets.set_index("ticker").loc["AAA", "target_weight"] <= conservative_cap + 1e-7
    with pytest.raises(ConfigError):
        rebalance(
            book,
            decisions([("D1", "s1", "AAA", 0.06)]),
            bad,
            state="NORMAL",
            strict=True,
            risk_aversion=0.0,
        )


def test_the_conservative_fallback_is_tightened_by_the_state() -> None:
    book = hand_book({"AAA": 100.0, "BBB": 50.0})
    bad = ConstraintSet.load("default").replace(
        **{"groups.sector.gross_overrides": {"Nonexistent": 0.1}}
    )
    result = rebalance(
        book, decisions([("D1", "s1", "AAA", 0.06)]), bad, state="ELEVATED", risk_aversion=0.0
    )
    conservative = ConstraintSet.load("conservative")
    cap = conservative.position.max_weight * conservative.states.ELEVATED.position
    assert result.targets.set_index("ticker").loc["AAA", "target_weight"] <= cap + 1e-7
    assert result.run.state == "ELEVATED"


def test_the_conservative_fallback_keeps_the_callers_hard_limits() -> None:
    """A DEGRADED run's set is conservative.toml intersected with the caller's hard limits:
    its reduce-only and close names, its tighter trade limit and gates, its states' flags."""
    book = hand_book(
        {"AAA": 100.0, "BBB": 50.0, "CCC": 1.5, "DDD": 20.0},
        {("s1", "AAA"): 0.02, ("s1", "DDD"): 0.01},
        adv_shares=20_000,
    )
    caller = ConstraintSet.load("default").replace(
        **{
            "groups.sector.net_overrides": {"Nonexistent": 0.1},  # does not fit: DEGRADED
            "restricted.reduce_only": ["AAA", "ZZZ"],
            "restricted.close": ["DDD"],
            "trading.max_trade_pct_adv": 0.01,  # tighter than conservative's 5%
            "liquidity.min_price": 3.0,  # tighter than conservative's 2
        }
    )
    dec = decisions(
        [("D1", "s1", "AAA", 0.03), ("D2", "s1", "BBB", 0.02), ("D3", "s1", "CCC", 0.001)]
    )
    result = rebalance(book, dec, caller, state="NORMAL", risk_aversion=0.0)
    assert result.status == "DEGRADED" and result.run.constraint_set == "conservative"
    t = result.targets.set_index("ticker")
    assert t.loc["AAA", "target_position"] <= t.loc["AAA", "current_position"]  # reduce only
    assert t.loc["BBB", "target_position"] <= 0.01 * 20_000  # the caller's 1% of ADV
    assert t.loc["CCC", "target_position"] == 0  # priced below the caller's gate
    assert t.loc["DDD", "target_position"] < t.loc["DDD", "current_position"]  # closing
    traded = (t["target_position"] - t["current_position"]).abs()
    assert (traded <= 0.01 * 20_000 + 1e-9).all()


def test_the_conservative_fallback_keeps_the_callers_state_flags() -> None:
    book = hand_book({"AAA": 100.0, "BBB": 50.0}, {("s1", "AAA"): 0.02})
    caller = ConstraintSet.load("default").replace(
        **{
            "groups.sector.net_overrides": {"Nonexistent": 0.1},
            "states.NORMAL.no_new_positions": True,
            "states.ELEVATED.no_new_positions": True,
            "states.EMERGENCY.no_new_positions": True,
        }
    )
    dec = decisions([("D1", "s1", "BBB", 0.01)])
    result = rebalance(book, dec, caller, state="NORMAL", risk_aversion=0.0)
    assert result.status == "DEGRADED"
    assert result.targets.set_index("ticker").loc["BBB", "target_position"] == 0


class ExplodingClarabel(CLARABEL):
    """A real solver interface whose solve fails, as a broken installation would."""

    def name(self) -> str:  # type: ignore[override]
        return "EXPLODING_CLARABEL"

    def solve_via_data(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise SolverError("injected failure")


def test_a_failing_solver_chain_gives_a_fallback_that_keeps_every_hard_limit() -> None:
    book = hand_book(
        {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0},
        {("s1", "AAA"): 0.09, ("s1", "BBB"): -0.02},
        adv_shares={"AAA": 20_000, "BBB": 20_000, "CCC": 20_000},
    )
    dec = decisions(
        [("D1", "s1", "AAA", 0.12), ("D2", "s1", "BBB", 0.0), ("D3", "s1", "CCC", 0.03)]
    )
    result = rebalance(
        book,
        dec,
        "default",
        state="NORMAL",
        solvers=[ExplodingClarabel(), ExplodingClarabel()],
        risk_aversion=0.0,
    )
    assert result.status == "FALLBACK"
    assert [c["solver"] for c in result.run.solver_chain] == ["EXPLODING_CLARABEL"] * 2
    assert all("injected failure" in c["outcome"] for c in result.run.solver_chain)
    t = result.targets.set_index("ticker")
    market = book.market.loc[t.index]
    traded = (t["target_position"] - t["current_position"]).abs()
    assert (traded <= 0.10 * market["adv_shares"] + 1e-9).all()  # the trade limit holds
    assert (t["target_position"].abs() <= t["current_position"].abs() + 1e-9).all()  # de-risk only
    assert t.loc["AAA", "target_weight"] < 0.09  # the over-cap name was cut toward its cap
    actions = result.actions.set_index("decision_id")
    assert (
        actions.loc["D1", "action_type"] == "REJECTED"
        and actions.loc["D3", "action_type"] == "REJECTED"
    )


@pytest.fixture
def inaccurate_clarabel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clarabel's answers come back short of their tolerance (residual 4e-6), as a last
    retry at reduced accuracy would."""
    import dataclasses

    from riskopt.optimizer.program import OPTIMAL_INACCURATE, ClarabelProgram

    solve = ClarabelProgram.solve

    def short(self, v, *, max_iters):  # type: ignore[no-untyped-def]
        solved = solve(self, v, max_iters=max_iters)
        return dataclasses.replace(solved, status=OPTIMAL_INACCURATE, residual=4e-6)

    monkeypatch.setattr(ClarabelProgram, "solve", short)


def _small_run(solvers: list[str]):  # type: ignore[no-untyped-def]
    book = hand_book({"AAA": 100.0, "BBB": 50.0}, {("s1", "AAA"): 0.02})
    dec = decisions([("D1", "s1", "AAA", 0.03), ("D2", "s1", "BBB", 0.01)])
    return rebalance(book, dec, "default", state="NORMAL", risk_aversion=0.0, solvers=solvers)


@pytest.mark.usefixtures("inaccurate_clarabel")
def test_an_inaccurate_answer_is_never_reported_optimal() -> None:
    alone = _small_run(["CLARABEL"])
    assert alone.status == "FALLBACK" and alone.run.solver is None
    (step,) = alone.run.solver_chain
    assert step["solver"] == "CLARABEL" and step["outcome"].startswith("inaccurate: status")
    assert "residual 4.0e-06, above 1e-10" in step["outcome"]
    # With another solver behind it, the chain goes on to that one's accurate answer.
    chained = _small_run(["CLARABEL", "SCS"])
    assert chained.status == "OPTIMAL" and chained.run.solver == "SCS"
    assert [c["solver"] for c in chained.run.solver_chain] == ["CLARABEL", "SCS"]


def test_solver_names_are_case_insensitive_and_unknown_ones_refused(tmp_path: Path) -> None:
    result = _small_run(["clarabel"])
    assert result.status == "OPTIMAL" and result.run.solver_chain[0]["solver"] == "CLARABEL"
    with pytest.raises(ValidationError, match="unknown solver 'GUROBI'"):
        _small_run(["gurobi"])
    path = tmp_path / "chain.toml"
    path.write_text('[solver]\nchain = ["clarabel", "Scs"]\n')
    assert ConstraintSet.load(path).solver.chain == ["CLARABEL", "SCS"]
    path.write_text('[solver]\nchain = ["clarabel", "gurobi"]\n')
    with pytest.raises(ConfigError, match=r"solver\.chain\.1"):
        ConstraintSet.load(path)
    path.write_text("[solver]\nchain = []\n")
    with pytest.raises(ConfigError, match=r"solver\.chain"):
        ConstraintSet.load(path)


def test_empty_and_degenerate_tables_do_not_crash() -> None:
    book = hand_book({"AAA": 100.0})
    empty = pd.DataFrame(columns=["decision_id", "ticker", "strategy_id", "target_weight"])
    result = rebalance(book, empty, "default", state="NORMAL", risk_aversion=0.0)
    assert result.status == "OPTIMAL" and result.targets.empty
