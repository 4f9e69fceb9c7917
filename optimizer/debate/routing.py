"""The order of the debate: Risky → Safe → Neutral for R rounds, then the Risk Judge.

The next speaker is a pure function of the debate state. ``count`` is the number of
analyst turns already taken and is incremented *after* a turn, never before routing (a
known public implementation increments first and so skips the Safe analyst). Anything
invalid or inconsistent routes to the judge, so a debate ends in at most ``3·R + 1``
steps from any state.
"""

from __future__ import annotations

from typing import Any

RISKY, SAFE, NEUTRAL, JUDGE, END = "Risky", "Safe", "Neutral", "Judge", "END"
ANALYSTS = (RISKY, SAFE, NEUTRAL)
RESPONSE_KEY = {
    RISKY: "current_risky_response",
    SAFE: "current_safe_response",
    NEUTRAL: "current_neutral_response",
}


def fresh_state() -> dict[str, Any]:
    return {
        "count": 0,
        "current_risky_response": "",
        "current_safe_response": "",
        "current_neutral_response": "",
        "latest_speaker": "",
        "judge_decision": "",
        "history": [],
    }


def next_speaker(state: Any, rounds: int) -> str:
    """Who speaks next; ``END`` once the judge has decided."""
    if state is None:
        return RISKY
    if not isinstance(state, dict):
        return JUDGE
    if state.get("judge_decision"):
        return END
    count = state.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0 or count >= 3 * rounds:
        return JUDGE
    latest = state.get("latest_speaker", "")
    expected_latest = "" if count == 0 else ANALYSTS[(count - 1) % 3]
    if latest != expected_latest:
        return JUDGE  # corrupt: the record of who spoke last does not match the count
    return ANALYSTS[count % 3]


def record_turn(state: dict[str, Any], speaker: str, response: str) -> dict[str, Any]:
    """A new state after ``speaker``'s turn (the input is not modified)."""
    history = state.get("history")
    out = {
        **state,
        "history": [*(history if isinstance(history, list) else []), f"{speaker}: {response}"],
    }
    out[RESPONSE_KEY[speaker]] = response
    out["latest_speaker"] = speaker
    out["count"] = int(state.get("count", 0)) + 1
    return out


def record_decision(state: Any, decision: str) -> dict[str, Any]:
    base = state if isinstance(state, dict) else fresh_state()
    history = base.get("history", [])
    return {
        **base,
        "history": [*(history if isinstance(history, list) else []), f"Judge: {decision}"],
        "judge_decision": decision,
        "latest_speaker": JUDGE,
    }
