"""Run the debate: ``3·R`` analyst turns, then the judge, vectorized over every name."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskopt.constraints.config import DebateConfig
from riskopt.optimizer.debate.analysts import DEFAULT_ANALYSTS, Analyst, Proposal, portfolio_stress
from riskopt.optimizer.debate.features import Features
from riskopt.optimizer.debate.judge import MAX_EXPONENT, Verdict, decide
from riskopt.optimizer.debate.routing import (
    END,
    JUDGE,
    fresh_state,
    next_speaker,
    record_decision,
    record_turn,
)
from riskopt.optimizer.result import string_column


@dataclass(frozen=True, eq=False)
class DebateResult:
    """The judge's parameters and the whole transcript.

    The two transcript tables are built when first read (the run record, the database
    and the report read them; a batch that keeps only summaries never does): about 2 ms
    of a 300-name rebalance."""

    gamma: float
    gamma_i: pd.Series
    """Per-name multiplier of the specific-risk term, indexed by ticker."""
    state: dict[str, Any]
    steps: int
    stress: float
    rows: tuple[dict[str, Any], ...]
    """The transcript's rows as Python values (:meth:`records`)."""
    turns: tuple[tuple[int, str, Proposal], ...]
    """Each analyst turn's round, speaker and proposal (:attr:`name_transcript`)."""
    tickers: np.ndarray
    """The names, as text, in the proposals' order."""

    @functools.cached_property
    def transcript(self) -> pd.DataFrame:
        """One row per turn: round, speaker, proposed γ, rationale, provenance."""
        return pd.DataFrame(
            {
                "round": pd.array([row["round"] for row in self.rows], dtype="Int64"),
                **{k: [row[k] for row in self.rows] for k in TRANSCRIPT_COLUMNS[1:]},
            }
        )

    @functools.cached_property
    def name_transcript(self) -> pd.DataFrame:
        """One row per turn and name: round, speaker, ticker, proposed γ_i, provenance."""
        return _name_transcript(list(self.turns), self.tickers)

    def last_proposals(self) -> pd.DataFrame:
        analysts = self.transcript[self.transcript["speaker"] != JUDGE]
        return analysts.groupby("speaker", sort=False).tail(1).set_index("speaker")

    def records(self) -> list[dict[str, Any]]:
        """JSON-ready rows, for the run record: the transcript's rows as Python values
        (a missing round is ``None``)."""
        return [dict(row) for row in self.rows]


TRANSCRIPT_COLUMNS = ("round", "speaker", "risk_aversion", "rationale", "provenance")


def _judge_row(verdict: Verdict) -> dict[str, Any]:
    return {
        "round": None,
        "speaker": JUDGE,
        "risk_aversion": verdict.gamma,
        "rationale": verdict.rationale,
        "provenance": "rule",
    }


def _name_transcript(turns: list[tuple[int, str, Proposal]], tickers: np.ndarray) -> pd.DataFrame:
    """One row per (turn, name): each analyst's per-name risk aversion, built at once."""
    columns = ["round", "speaker", "ticker", "name_risk_aversion", "provenance"]
    if not turns:
        return pd.DataFrame(columns=columns)
    n = len(tickers)
    rule = np.full(n, "rule", dtype=object)
    provenance = [
        np.asarray(p.name_provenance, dtype=object) if len(p.name_provenance) else rule
        for _, _, p in turns
    ]
    return pd.DataFrame(
        {
            "round": np.repeat(np.array([r for r, _, _ in turns], dtype=np.int64), n),
            "speaker": string_column(np.repeat([s for _, s, _ in turns], n)),
            "ticker": string_column(np.tile(tickers, len(turns))),
            "name_risk_aversion": np.exp(np.concatenate([p.log_gamma_i for _, _, p in turns])),
            "provenance": string_column(np.concatenate(provenance)),
        },
        columns=columns,
    )


def run_debate(
    features: Features,
    cfg: DebateConfig,
    *,
    floor: float = 0.0,
    analysts: Mapping[str, Analyst] | None = None,
    state: dict[str, Any] | None = None,
) -> DebateResult:
    """Debate from ``state`` (a fresh one by default) until the judge decides."""
    cast: dict[str, Analyst] = {**DEFAULT_ANALYSTS, **(analysts or {})}
    turns = _argue(features, cfg, cast, state)
    stress, _ = portfolio_stress(features)
    last = dict(turns.last)
    for name, persona in DEFAULT_ANALYSTS.items():
        if name not in last:  # a debate cut short
            last[name] = persona.propose(features, {})
    verdict = decide(last, features, cfg, floor)
    current = turns.state
    if turns.judged:
        current = record_decision(current, verdict.rationale)
    # A state that came in already decided (END at once) still reports these features' verdict.
    rows = [*turns.rows, _judge_row(verdict)]
    records = tuple(
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in rows
    )
    tickers = features.tickers.astype(str)
    return DebateResult(
        gamma=verdict.gamma,
        gamma_i=pd.Series(
            verdict.gamma_i, index=pd.Index(tickers, name="ticker"), name="name_risk_aversion"
        ),
        state=current,
        steps=turns.steps,
        stress=stress,
        rows=records,
        turns=tuple(turns.name_rows),
        tickers=tickers,
    )


@dataclass
class _Turns:
    """The analysts' turns of a debate, up to the judge (or the end of the state)."""

    state: Any
    last: dict[str, Proposal] = field(default_factory=dict)
    """Each analyst's latest proposal."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    name_rows: list[tuple[int, str, Proposal]] = field(default_factory=list)
    steps: int = 0
    judged: bool = False
    """Whether the routing handed the debate to the judge (rather than ending it)."""


def _argue(
    features: Features, cfg: DebateConfig, cast: Mapping[str, Analyst], state: Any
) -> _Turns:
    """Let the analysts speak in the routing's order until the judge's turn or the end."""
    rounds = cfg.max_risk_discuss_rounds
    turns = _Turns(state=state)
    while (speaker := next_speaker(turns.state, rounds)) != END:
        turns.steps += 1
        if speaker == JUDGE:
            turns.judged = True
            break
        if turns.state is None:
            turns.state = fresh_state()
        round_no = turns.state["count"] // 3 + 1
        # Round 1 argues from the features alone; later rounds answer the others.
        proposal = cast[speaker].propose(features, dict(turns.last) if round_no > 1 else {})
        turns.last[speaker] = proposal
        turns.state = record_turn(turns.state, speaker, proposal.rationale)
        turns.rows.append(
            {
                "round": round_no,
                "speaker": speaker,
                "risk_aversion": cfg.base_risk_aversion
                * float(np.exp(np.clip(proposal.log_gamma, -MAX_EXPONENT, MAX_EXPONENT))),
                "rationale": proposal.rationale,
                "provenance": proposal.provenance,
            }
        )
        turns.name_rows.append((round_no, speaker, proposal))
    return turns
