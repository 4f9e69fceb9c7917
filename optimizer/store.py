"""Turn a RebalanceResult into rows and write them (one transaction per run).

Every JSON value is strict (non-finite numbers as null) and text loses NUL bytes, so
SQLite and PostgreSQL store the same run (:func:`riskopt.data.storage.storable`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from riskopt.data.storage import strict_json, write_run
from riskopt.optimizer.result import RebalanceResult


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _none_if_missing(value: Any) -> Any:
    return (
        None
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
        else value
    )


def store_result(result: RebalanceResult, url: str | Engine) -> bool:
    """Store ``result``; returns False when that run_id was already stored."""
    run = result.run
    record = strict_json(json.loads(json.dumps(run.to_dict(), default=str)))
    run_row = {
        "run_id": run.run_id,
        "as_of": run.as_of,
        "created_at": run.created_at,
        "status": run.status,
        "constraint_set": run.constraint_set,
        "solver": run.solver,
        "gamma": run.gamma,
        "state": run.state,
        "record": record,
    }
    actions = [
        {
            "action_id": a["action_id"],
            "run_id": a["run_id"],
            "timestamp": a["timestamp"],
            # A missing id is NULL: pandas holds it as NaN, which PostgreSQL would store as 'NaN'.
            "ticker": _none_if_missing(a["ticker"]),
            "decision_id": _none_if_missing(a["decision_id"]),
            "strategy_id": _none_if_missing(a["strategy_id"]),
            "action_type": a["action_type"],
            "details_json": strict_json(json.loads(a["details_json"])),
        }
        for a in result.actions.to_dict("records")
    ]
    targets = [
        {
            "run_id": run.run_id,
            "ticker": t["ticker"],
            "current_position": float(t["current_position"]),
            "target_position": float(t["target_position"]),
            "delta_position": float(t["delta_position"]),
            "target_weight": _none_if_nan(float(t["target_weight"])),
            "proposed_weight": _none_if_nan(float(t["proposed_weight"])),
            "priority": int(t["priority"]),
            "action_type": t["action_type"],
            "risk_reasoning_summary": t["risk_reasoning_summary"],
        }
        for t in result.targets.to_dict("records")
    ]
    return write_run(url, run_row, actions, targets, _debate_rows(result))


def _debate_rows(result: RebalanceResult) -> list[dict[str, Any]]:
    debate = result.debate
    if debate is None:
        return []
    rows: list[dict[str, Any]] = []
    for t in debate.transcript.to_dict("records"):
        rows.append(
            {
                "round": None if pd.isna(t["round"]) else int(t["round"]),
                "speaker": t["speaker"],
                "ticker": None,
                "risk_aversion": float(t["risk_aversion"]),
                "rationale": t["rationale"],
                "provenance": t["provenance"],
            }
        )
    names = debate.name_transcript
    for r, speaker, ticker, value, provenance in zip(
        names["round"],
        names["speaker"],
        names["ticker"],
        names["name_risk_aversion"],
        names["provenance"],
        strict=True,
    ):
        rows.append(
            {
                "round": int(r),
                "speaker": speaker,
                "ticker": str(ticker),
                "risk_aversion": float(value),
                "rationale": None,
                "provenance": str(provenance),
            }
        )
    run_id = result.run.run_id
    return [{"run_id": run_id, "seq": k, **row} for k, row in enumerate(rows)]
