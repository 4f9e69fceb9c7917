"""Runs that cannot take the normal path: the ``DEGRADED`` result of a book whose state
cannot be loaded, and the conservative set used when a constraint set does not fit."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd

from riskopt.constraints.config import ConstraintSet, StateSOP
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.states import STATES
from riskopt.data.book import Book
from riskopt.data.contracts import DecisionsInput, check_decision_columns
from riskopt.data.errors import ValidationError
from riskopt.optimizer.result import DEGRADED, TARGET_COLUMNS, RebalanceResult, RunInfo
from riskopt.optimizer.tables import ACTION_COLUMNS, by_ticker, empty_binding, rejected_action

log = logging.getLogger("riskopt")


def one_line(err: Exception) -> str:
    """The error on one line (a typed error lists its problems)."""
    return err.one_line() if isinstance(err, ValidationError | ConfigError) else str(err)


def error_line(err: BaseException) -> str:
    """An exception on one line of at most 300 characters (its type's name if empty)."""
    one_line = getattr(err, "one_line", None)
    text = " ".join(str(one_line() if callable(one_line) else err).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return text or type(err).__name__


def conservative_for(book: Book, caller: ConstraintSet | None = None) -> ConstraintSet:
    """The conservative set, stripped of what this book cannot support (logged), and
    intersected with the ``caller``'s hard limits, so that a fallback never loosens them:
    its restricted names (those the book has), the tighter trade limit and liquidity
    gates, its states' no-new-positions and de-risk-only, the stricter default state and
    the shorter age after which a state is stale."""
    cs = ConstraintSet.load("conservative")
    if book.risk_model is None:
        log.warning(
            "conservative fallback: the book has no risk model, the volatility cap is not applied"
        )
        cs = cs.replace(**{"risk.max_volatility": None})
    if caller is None:
        return cs
    names = set(book.market.index.astype(str))
    close = (set(cs.restricted.close) | set(caller.restricted.close)) & names
    reduce_only = (set(cs.restricted.reduce_only) | set(caller.restricted.reduce_only)) & names
    changes: dict[str, Any] = {
        "restricted.close": sorted(close),
        "restricted.reduce_only": sorted(reduce_only - close),
        "states.default_state": max(
            cs.states.default_state, caller.states.default_state, key=STATES.index
        ),
        "states.max_age_hours": min(cs.states.max_age_hours, caller.states.max_age_hours),
    }
    hard_limits = (
        ("trading.max_trade_pct_adv", min),
        ("liquidity.max_spread_bps", min),
        ("liquidity.max_tick_to_price", min),
        ("liquidity.min_price", max),
    )
    for key, pick in hard_limits:
        changes[key] = _tighter(pick, _setting(cs, key), _setting(caller, key))
    for state in STATES:
        own = caller.states.sop(state)
        hard = StateSOP(no_new_positions=own.no_new_positions, derisk_only=own.derisk_only)
        changes[f"states.{state}"] = cs.states.sop(state).at_least(hard).model_dump()
    return cs.replace(**changes)


def _setting(cs: ConstraintSet, dotted: str) -> Any:
    """The value of ``cs`` at a dotted key (``"trading.max_trade_pct_adv"``)."""
    node: Any = cs
    for key in dotted.split("."):
        node = getattr(node, key)
    return node


def _tighter(
    pick: Callable[[float, float], float], a: float | None, b: float | None
) -> float | None:
    """The tighter of two limits by ``pick`` (``min`` for a cap, ``max`` for a floor);
    ``None`` is no limit."""
    return b if a is None else a if b is None else pick(a, b)


AS_OF_UNKNOWN = "as_of unknown: the book's date could not be read"
"""The warning of a ``DEGRADED`` run whose book gave no date."""


def degraded_result(
    decisions: DecisionsInput,
    reason: str,
    *,
    run_id: str | None = None,
    store: str | None = None,
    as_of: dt.date | None = None,
    error: BaseException | None = None,
) -> RebalanceResult:
    """The run when the portfolio state is unavailable: no trade at all, every decision
    ``REJECTED`` with the reason. Without positions no trade can be sized, so holding
    (taking no new risk) is the only safe action. ``error``, where the run failed on an
    exception, is recorded as the run's ``error`` and ``error_type``. ``as_of`` is the
    book's date where the caller or the book's ``book.toml`` gives one; otherwise the run's
    ``as_of`` is ``None`` ("unknown"), never the day it ran."""
    log.error(reason)
    d = check_decision_columns(decisions)
    run_id = run_id or uuid.uuid4().hex[:16]
    created = dt.datetime.now(dt.UTC)
    rows = [
        rejected_action(rec, {"reason": f"REJECTED: {reason}; no new risk is taken", "state": None})
        for rec in d.to_dict("records")
    ]
    actions = pd.DataFrame(rows, columns=list(ACTION_COLUMNS))
    actions.insert(0, "action_id", [f"{run_id}-{k:05d}" for k in range(len(actions))])
    actions.insert(1, "run_id", run_id)
    actions.insert(2, "timestamp", created)
    run = RunInfo(
        run_id=run_id,
        as_of=as_of,
        created_at=created,
        status=DEGRADED,
        constraint_set="-",
        solver=None,
        solver_chain=[],
        gamma=0.0,
        state="UNKNOWN",
        state_source="unresolved",
        warnings=[reason] if as_of is not None else [reason, AS_OF_UNKNOWN],
        alerts=[reason],
        program_built=False,
        error=None if error is None else error_line(error),
        error_type=None if error is None else type(error).__name__,
    )
    targets = by_ticker(pd.DataFrame(columns=list(TARGET_COLUMNS)))
    result = RebalanceResult(
        run=run,
        targets=targets,
        sleeve_targets=pd.DataFrame(),
        actions=actions,
        binding=empty_binding(),
        attribution=pd.DataFrame(),
    )
    run.counts = {str(k): int(v) for k, v in result.label_counts().items()}
    if store is not None:
        from riskopt.optimizer.store import store_result

        store_result(result, store)
    return result
