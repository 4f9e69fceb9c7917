"""The risk debate: routing, the analysts and judge, the language-model adapter."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from riskopt.constraints.config import ConstraintSet, DebateConfig
from riskopt.optimizer import rebalance
from riskopt.optimizer.cli import SAMPLES, app
from riskopt.optimizer.debate import Features, LanguageModelAnalyst, compute_features, run_debate
from riskopt.optimizer.debate.analysts import SAFE_ANALYST, Proposal
from riskopt.optimizer.debate.debate import _name_transcript
from riskopt.optimizer.debate.routing import JUDGE, fresh_state, next_speaker, record_turn
from riskopt.optimizer.inputs import prepare

CFG = DebateConfig()


def features(n: int = 5, **portfolio: float) -> Features:
    base = {
        "vol_regime": 1.0,
        "drawdown_ratio": 0.1,
        "state_level": 0.0,
        "concentration": 1.5,
        "liquidity_stress": 0.5,
        "gross_utilization": 0.7,
    }
    base.update(portfolio)
    return Features(
        **base,
        tickers=np.array([f"T{i}" for i in range(n)], dtype=object),
        volatility=np.linspace(0.15, 0.6, n),
        spread_bps=np.linspace(2.0, 40.0, n),
        pct_adv=np.linspace(0.0, 0.3, n),
        confidence=np.linspace(1.0, 0.3, n),
        crowding=np.linspace(0.05, 0.4, n),
    )


# -- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_every_analyst_speaks_in_every_round_then_the_judge(rounds: int) -> None:
    state = None
    sequence = []
    for _ in range(3 * rounds + 1):
        speaker = next_speaker(state, rounds)
        sequence.append(speaker)
        if speaker == JUDGE:
            break
        state = record_turn(state or fresh_state(), speaker, "ok")
    assert sequence == ["Risky", "Safe", "Neutral"] * rounds + [JUDGE]


@pytest.mark.parametrize(
    "state",
    [
        "not a dict",
        {"count": -1, "latest_speaker": ""},
        {"count": 1.5, "latest_speaker": "Risky"},
        {"count": "2", "latest_speaker": "Safe"},
        {"count": True, "latest_speaker": "Risky"},
        {"count": 99, "latest_speaker": "Neutral"},
        {"count": 1, "latest_speaker": "Neutral"},  # inconsistent record
        {"latest_speaker": "Risky"},
    ],
)
def test_invalid_states_route_to_the_judge(state: object) -> None:
    assert next_speaker(state, 2) == JUDGE


def test_a_missing_state_starts_a_fresh_debate() -> None:
    assert next_speaker(None, 1) == "Risky"
    assert next_speaker(fresh_state(), 1) == "Risky"


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["count", "latest_speaker", "judge_decision", "history", "other"]),
            st.one_of(
                st.integers(-5, 20), st.text(max_size=8), st.none(), st.booleans(), st.floats()
            ),
        ),
    ),
    st.integers(1, 4),
)
def test_any_state_terminates_within_3r_plus_1_steps(state, rounds: int) -> None:  # type: ignore[no-untyped-def]
    cfg = DebateConfig(max_risk_discuss_rounds=rounds)
    result = run_debate(features(), cfg, state=state)
    assert result.steps <= 3 * rounds + 1
    assert result.transcript["speaker"].iloc[-1] == JUDGE or result.state.get("judge_decision")
    assert CFG.min_risk_aversion <= result.gamma <= CFG.max_risk_aversion
    # The run record's rows are the transcript's, as JSON-ready Python values.
    records = result.records()
    as_read = result.transcript.astype(object).where(result.transcript.notna(), None)
    assert records == as_read.to_dict("records")
    assert json.loads(json.dumps(records)) == records
    assert all(type(row["round"]) in (int, type(None)) for row in records)


# -- analysts and judge -----------------------------------------------------------------------


def test_deterministic() -> None:
    a, b = run_debate(features(), CFG), run_debate(features(), CFG)
    assert a.gamma == b.gamma and a.gamma_i.equals(b.gamma_i)
    assert a.transcript.equals(b.transcript)


STRESS = [
    "vol_regime",
    "drawdown_ratio",
    "state_level",
    "concentration",
    "liquidity_stress",
    "gross_utilization",
]


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(STRESS),
    st.floats(0.0, 3.0),
    st.floats(0.0, 3.0),
    st.integers(1, 3),
    st.fixed_dictionaries({k: st.floats(0.0, 3.0) for k in STRESS}),
)
def test_more_stress_never_lowers_gamma(
    feature: str, a: float, b: float, rounds: int, rest: dict
) -> None:
    cfg = DebateConfig(max_risk_discuss_rounds=rounds)
    low, high = sorted((a, b))
    g_low = run_debate(features(**{**rest, feature: low}), cfg).gamma
    g_high = run_debate(features(**{**rest, feature: high}), cfg).gamma
    assert g_high >= g_low - 1e-12


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({k: st.floats(0.0, 50.0) for k in STRESS}), st.floats(0.0, 40.0))
def test_bounds_always_hold(portfolio: dict, floor: float) -> None:
    result = run_debate(features(**portfolio), CFG, floor=floor)
    assert max(CFG.min_risk_aversion, min(floor, np.inf)) <= result.gamma
    assert result.gamma <= max(CFG.max_risk_aversion, floor)
    assert result.gamma >= floor
    assert result.gamma_i.between(CFG.min_name_risk_aversion, CFG.max_name_risk_aversion).all()


def test_emergency_above_elevated_above_normal_on_the_same_book(sample) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    cs = ConstraintSet.load("default")
    data = prepare(book, dec, cs).data
    gammas = [
        run_debate(
            compute_features(book, data, cs, s),
            cs.debate,
            floor=cs.states.sop(s).risk_aversion_floor,
        ).gamma
        for s in ("NORMAL", "ELEVATED", "EMERGENCY")
    ]
    assert gammas[0] <= gammas[1] <= gammas[2]
    assert gammas[0] < gammas[2]


def test_debates_of_different_tickers_never_overwrite_each_other() -> None:
    f = features(6)
    g = run_debate(f, CFG).gamma_i
    stressed = dataclasses.replace(f, pct_adv=np.where(np.arange(6) == 2, 3.0, f.pct_adv))
    h = run_debate(stressed, CFG).gamma_i
    assert h.iloc[2] > g.iloc[2]
    assert h.drop(h.index[2]).equals(g.drop(g.index[2]))


# -- the language-model adapter ---------------------------------------------------------------


def analyst(reply):  # type: ignore[no-untyped-def]
    return LanguageModelAnalyst(persona=SAFE_ANALYST, complete=reply, timeout_s=0.5)


def test_valid_json_is_used_with_model_provenance() -> None:
    f = features(3)
    reply = json.dumps({"log_risk_aversion": 0.7, "rationale": "vol is up", "names": {"T1": 0.2}})
    p = analyst(lambda prompt: reply).propose(f, {})
    assert (p.provenance, p.log_gamma, p.rationale) == ("model", 0.7, "vol is up")
    assert list(p.name_provenance) == ["rule", "model", "rule"]
    assert p.log_gamma_i[1] == 0.2


def test_out_of_bounds_values_are_clamped() -> None:
    reply = json.dumps({"log_risk_aversion": 99.0, "rationale": "panic", "names": {"T0": -50.0}})
    p = analyst(lambda prompt: reply).propose(features(2), {})
    assert p.provenance == "model" and p.log_gamma == 3.0 and p.log_gamma_i[0] == -3.0


@pytest.mark.parametrize(
    "reply",
    [
        lambda prompt: "not json at all",
        lambda prompt: json.dumps({"log_risk_aversion": "high", "rationale": "x"}),
        lambda prompt: json.dumps({"rationale": "missing the number"}),
        lambda prompt: (_ for _ in ()).throw(RuntimeError("service down")),
        lambda prompt: time.sleep(2.0) or "{}",
    ],
    ids=["invalid-json", "wrong-type", "missing-field", "raises", "timeout"],
)
def test_any_failure_falls_back_to_the_persona(reply) -> None:  # type: ignore[no-untyped-def]
    f = features(3)
    p = analyst(reply).propose(f, {})
    rule = SAFE_ANALYST.propose(f, {})
    assert p.provenance == "fallback" and set(p.name_provenance) == {"fallback"}
    assert p.log_gamma == rule.log_gamma
    assert np.array_equal(p.log_gamma_i, rule.log_gamma_i)


def test_a_hanging_model_costs_the_timeout_and_its_late_answer_is_dropped() -> None:
    """The model blocks until released; the debate must come back while it still
    blocks (a safety timer releases it after 30 s so a failure cannot hang the suite)."""
    release = threading.Event()
    late = json.dumps({"log_risk_aversion": 2.0, "rationale": "late", "names": {}})

    def hangs(prompt: str) -> str:
        release.wait()
        return late

    safety = threading.Timer(30.0, release.set)
    safety.start()
    try:
        f = features(3)
        result = run_debate(f, CFG, analysts={"Safe": analyst(hangs)})
        returned_while_blocked = not release.is_set()
    finally:
        release.set()
        safety.cancel()
    assert returned_while_blocked
    safe = result.transcript[result.transcript["speaker"] == "Safe"]
    assert (safe["provenance"] == "fallback").all()
    assert "late" not in " ".join(safe["rationale"])


def test_a_model_analyst_plugs_into_the_debate() -> None:
    reply = json.dumps({"log_risk_aversion": 1.0, "rationale": "cautious", "names": {}})
    result = run_debate(features(), CFG, analysts={"Safe": analyst(lambda prompt: reply)})
    safe = result.transcript[result.transcript["speaker"] == "Safe"].iloc[0]
    assert safe["provenance"] == "model" and safe["rationale"] == "cautious"
    assert CFG.min_risk_aversion <= result.gamma <= CFG.max_risk_aversion


# -- in the gate ------------------------------------------------------------------------------------


def test_rebalance_uses_the_judge_unless_given_gamma(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    debated = rebalance(book, dec, "default", state="NORMAL", store=url, run_id="debated")
    assert debated.debate is not None and debated.run.gamma == pytest.approx(debated.debate.gamma)
    assert debated.scaled_by_risk_aversion() > 0
    given_gamma = rebalance(book, dec, "default", state="NORMAL", risk_aversion=0.5)
    assert given_gamma.debate is None and given_gamma.run.gamma == 0.5
    with sa.create_engine(url).connect() as conn:
        record = conn.execute(sa.text("select record from risk_runs")).scalar_one()
    stored = json.loads(record) if isinstance(record, str) else record
    assert [row["speaker"] for row in stored["debate"]] == ["Risky", "Safe", "Neutral", "Judge"]
    with sa.create_engine(url).connect() as conn:
        turns = conn.execute(
            sa.text("select speaker from risk_debates where ticker is null order by seq")
        ).scalars()
        assert list(turns) == ["Risky", "Safe", "Neutral", "Judge"]
        per_name = conn.execute(
            sa.text("select count(*) from risk_debates where ticker is not null")
        ).scalar_one()
        assert per_name == 3 * len(debated.debate.gamma_i)


def test_debate_command_prints_the_transcript() -> None:
    result = CliRunner().invoke(
        app,
        [
            "debate",
            "--book",
            str(SAMPLES / "book"),
            "--decisions",
            str(SAMPLES / "decisions.csv"),
            "--rounds",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        result.output.count("Risky") >= 2
        and "Judge" in result.output
        and "judge: γ =" in result.output
    )


@pytest.mark.parametrize("n", [0, 3])
def test_the_name_transcript_has_a_row_per_turn_and_name(n: int) -> None:
    """Built at once from the turns: each turn's names in order, its provenance (the
    analyst's per name, else "rule"), and text columns typed as text even with no name."""
    tickers = np.array([f"T{i}" for i in range(n)])
    turns = [
        (1, "risky", Proposal("risky", 0.1, np.full(n, 0.2), "r")),
        (1, "safe", Proposal("safe", 0.3, np.full(n, -0.1), "s", "model", np.full(n, "model"))),
    ]
    frame = _name_transcript(turns, tickers)
    assert len(frame) == 2 * n
    assert frame["ticker"].tolist() == [*tickers, *tickers]
    assert frame["speaker"].tolist() == ["risky"] * n + ["safe"] * n
    assert frame["provenance"].tolist() == ["rule"] * n + ["model"] * n
    np.testing.assert_allclose(frame["name_risk_aversion"], np.exp([0.2] * n + [-0.1] * n))
    text = pd.Series(["a"]).dtype
    assert [frame[c].dtype for c in ("speaker", "ticker", "provenance")] == [text] * 3
    assert frame["round"].dtype == np.int64


def test_the_transcripts_are_built_when_read_and_travel_with_the_result() -> None:
    """A batch worker that never reads the transcripts does not build them; a result sent
    to another process (pickled) builds the same tables there."""
    import pickle

    result = run_debate(features(7), CFG)
    assert "transcript" not in vars(result) and "name_transcript" not in vars(result)
    moved = pickle.loads(pickle.dumps(result))
    pd.testing.assert_frame_equal(moved.transcript, result.transcript)
    pd.testing.assert_frame_equal(moved.name_transcript, result.name_transcript)
    assert len(result.name_transcript) == 7 * (len(result.transcript) - 1)
    assert result.transcript is result.transcript  # built once
