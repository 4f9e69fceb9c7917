"""An analyst backed by a language model, around any ``complete(prompt) -> str`` callable.

It asks for a JSON answer, validates it with pydantic, clamps it to the bounds, and falls
back to its deterministic persona on any failure or timeout. The provenance of every
value is recorded: ``model`` for values the model gave, ``rule`` for names it left out
(the persona's value), ``fallback`` when the whole answer was unusable.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from riskopt.optimizer.debate.analysts import Persona, Proposal
from riskopt.optimizer.debate.features import Features

log = logging.getLogger("riskopt")
MAX_LOG = 3.0
"""Proposals are clamped to ±3 in log (a factor of 20 either way)."""


class ModelAnswer(BaseModel):
    log_risk_aversion: float = Field(allow_inf_nan=False)
    rationale: str = Field(min_length=1, max_length=400)
    names: dict[str, float] = Field(default_factory=dict)


def _within(complete: Callable[[str], str], prompt: str, timeout_s: float) -> str:
    """``complete(prompt)`` if it answers within ``timeout_s``, else ``queue.Empty``.

    The call runs on a daemon thread that nobody waits for: a model that hangs costs the
    debate its timeout and no more, and its late answer is dropped with the thread."""
    box: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            box.put((True, complete(prompt)))
        except Exception as err:  # third-party code: any failure is handed back
            box.put((False, err))

    threading.Thread(target=run, name="riskopt-analyst", daemon=True).start()
    answered, value = box.get(timeout=timeout_s)
    if not answered:
        raise value  # type: ignore[misc]
    return str(value)


@dataclass
class LanguageModelAnalyst:
    persona: Persona
    complete: Callable[[str], str]
    timeout_s: float = 20.0

    @property
    def name(self) -> str:
        return self.persona.name

    def prompt(self, features: Features, others: dict[str, Proposal]) -> str:
        payload = {
            "role": self.persona.name,
            "stance": self.persona.stance,
            "portfolio": features.portfolio(),
            "names": {
                str(t): {
                    "volatility": float(v),
                    "spread_bps": float(s),
                    "pct_adv": float(a),
                    "confidence": float(c),
                }
                for t, v, s, a, c in zip(
                    features.tickers,
                    features.volatility,
                    features.spread_bps,
                    features.pct_adv,
                    features.confidence,
                    strict=True,
                )
            },
            "others": {
                k: {"log_risk_aversion": p.log_gamma, "rationale": p.rationale}
                for k, p in others.items()
            },
        }
        return (
            "You are the " + self.persona.name + " risk analyst. Answer with JSON only: "
            '{"log_risk_aversion": <float>, "rationale": <one line>, "names": {<ticker>: <float>}}.\n'
            + json.dumps(payload)
        )

    def propose(self, features: Features, others: dict[str, Proposal]) -> Proposal:
        rule = self.persona.propose(features, others)
        try:
            text = _within(self.complete, self.prompt(features, others), self.timeout_s)
            answer = ModelAnswer.model_validate_json(text)
        except (queue.Empty, ValidationError, Exception) as err:
            # The model is third-party code behind a network: any failure falls back.
            log.warning(
                "%s analyst: model answer unusable (%s); using the rule",
                self.name,
                type(err).__name__,
            )
            return Proposal(
                self.name,
                rule.log_gamma,
                rule.log_gamma_i,
                f"fallback: {rule.rationale}",
                "fallback",
                np.full(len(rule.log_gamma_i), "fallback", dtype=object),
            )
        index = {str(t): k for k, t in enumerate(features.tickers)}
        log_gamma_i = rule.log_gamma_i.copy()
        provenance = np.full(len(log_gamma_i), "rule", dtype=object)
        for ticker, value in answer.names.items():
            k = index.get(ticker)
            if k is not None and np.isfinite(value):
                log_gamma_i[k] = float(np.clip(value, -MAX_LOG, MAX_LOG))
                provenance[k] = "model"
        return Proposal(
            speaker=self.name,
            log_gamma=float(np.clip(answer.log_risk_aversion, -MAX_LOG, MAX_LOG)),
            log_gamma_i=log_gamma_i,
            rationale=answer.rationale,
            provenance="model",
            name_provenance=provenance,
        )
