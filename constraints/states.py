"""Black-swan states and their standard operating procedures (SOPs).

The monitor declares ``NORMAL``, ``ELEVATED`` or ``EMERGENCY`` (:class:`BlackSwanState`).
The constraint set's ``[states.ELEVATED]`` and ``[states.EMERGENCY]`` say what each means:
multipliers that shrink caps, a risk-aversion floor, no new positions, de-risk only, and
a forced cut of gross exposure. States only ever tighten:

* a missing state, one older than ``states.max_age_hours``, or a malformed declaration
  (a state that is not one, a clock without a timezone, overrides of the wrong type) is
  taken as ``states.default_state`` (``ELEVATED`` in the shipped sets), or as the
  declared state itself when that is stricter, and the run says so;
* an override from the monitor that would loosen the SOP is refused, with a logged
  alert, and the stricter value kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from riskopt.constraints.config import ConstraintSet, StateSOP
from riskopt.constraints.envelope import CalmerStateEnvelope
from riskopt.constraints.registry import FAMILIES
from riskopt.constraints.sop import STATES, StateRestrictions

log = logging.getLogger("riskopt")

__all__ = [
    "STATES",
    "BlackSwanState",
    "CalmerStateEnvelope",
    "ResolvedState",
    "StateRestrictions",
    "resolve_state",
    "tightened",
    "with_envelope",
]


@dataclass(frozen=True)
class BlackSwanState:
    """What the black-swan monitor declares, with optional SOP overrides."""

    state: str
    as_of: dt.datetime | None = None
    """When the monitor declared it, timezone-aware (a datetime or an ISO 8601 text)."""
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedState:
    state: str
    sop: StateSOP
    source: str
    """``"given"``, ``"missing"``, ``"stale"`` or ``"malformed"``."""
    alerts: tuple[str, ...] = ()


SOURCES = {
    "given": "given",
    "missing": "no state given: the set's default",
    "stale": "the given state is stale: the stricter of it and the set's default",
    "malformed": "the given state was malformed and refused: the set's default, or the "
    "state it names where that is stricter",
    "unresolved": "not resolved: the run stopped before it",
}
"""How a run's state was decided (``run.state_source``), in words."""


def describe_state(state: str, source: str) -> str:
    """``"ELEVATED (no state given: the set's default)"``: a run's state and how it was
    decided, as a terminal prints it."""
    return f"{state} ({SOURCES.get(source, source)})"


FLAGS = ("no_new_positions", "derisk_only")
NUMBERS = (*StateSOP.MULTIPLIERS, "risk_aversion_floor", "forced_derisk")


def _rank(state: str) -> int:
    return STATES.index(state)


def resolve_state(
    given: str | BlackSwanState | None, cs: ConstraintSet, *, now: dt.datetime | None = None
) -> ResolvedState:
    """The state a run uses, its effective SOP and every alert raised on the way.

    Nothing the monitor or the caller hands in raises here: a malformed declaration is
    refused with an alert and the set's default state used instead.
    """
    alerts: list[str] = []
    default: str = cs.states.default_state
    overrides: dict[str, Any] = {}
    if given is None:
        state, source = default, "missing"
        alerts.append(f"no black-swan state given: treated as {default}")
    else:
        monitor = given if isinstance(given, BlackSwanState) else BlackSwanState(given)
        state, source, overrides = _declared(monitor, cs, now, alerts)
    sop, refused = _with_overrides(cs.states.sop(state), overrides)
    alerts.extend(refused)
    for alert in alerts:
        log.warning(alert)
    return ResolvedState(state=state, sop=sop, source=source, alerts=tuple(alerts))


def _declared(
    monitor: BlackSwanState, cs: ConstraintSet, now: dt.datetime | None, alerts: list[str]
) -> tuple[str, str, dict[str, Any]]:
    """The state, its source and the overrides to apply, from a given declaration.

    A malformed one is refused as a whole (overrides included): the default state, or the
    declared state where it names one stricter than the default, as for a stale one.
    """
    default: str = cs.states.default_state
    name = monitor.state.upper() if isinstance(monitor.state, str) else ""
    as_of, problems = _declaration_problems(monitor)
    if problems:
        kept = max(name, default, key=_rank) if name in STATES else default
        alerts.append(
            f"malformed black-swan state refused ({'; '.join(problems)}): treated as {kept}"
        )
        return kept, "malformed", {}
    overrides = dict(monitor.overrides or {})
    if as_of is None:
        return name, "given", overrides
    age = ((now or dt.datetime.now(dt.UTC)) - as_of).total_seconds() / 3600.0
    if age <= cs.states.max_age_hours:
        return name, "given", overrides
    stricter = max(name, default, key=_rank)
    alerts.append(
        f"black-swan state {name} is stale ({age:.1f} h old, limit "
        f"{cs.states.max_age_hours:g} h): treated as {stricter}"
    )
    return stricter, "stale", overrides


def _declaration_problems(monitor: BlackSwanState) -> tuple[dt.datetime | None, list[str]]:
    """The declaration's clock (timezone-aware) and what is wrong with it, field by field."""
    problems: list[str] = []
    if not (isinstance(monitor.state, str) and monitor.state.upper() in STATES):
        problems.append(f"state {monitor.state!r} is not one of {', '.join(STATES)}")
    as_of: object = monitor.as_of
    if isinstance(as_of, str):
        with contextlib.suppress(ValueError):
            as_of = dt.datetime.fromisoformat(as_of)
    clock = as_of if isinstance(as_of, dt.datetime) and as_of.utcoffset() is not None else None
    if as_of is not None and not isinstance(as_of, dt.datetime):
        problems.append(f"as_of {monitor.as_of!r} is not a time")
    elif as_of is not None and clock is None:
        problems.append(f"as_of {monitor.as_of!r} has no timezone")
    problems.extend(_override_problems(monitor.overrides))
    return clock, problems


def _override_problems(overrides: object) -> list[str]:
    """Overrides that are not a table, or whose values have the wrong type for their field
    (a flag must be a bool, a multiplier, floor or fraction a finite number)."""
    if overrides is None:
        return []
    if not isinstance(overrides, Mapping):
        return [f"overrides {overrides!r} are not a table of SOP fields"]
    problems = []
    for key, value in overrides.items():
        if key in FLAGS and not isinstance(value, bool | np.bool_):
            problems.append(f"override {key}={value!r} is not true or false")
        elif key in NUMBERS and not _finite_number(value):
            problems.append(f"override {key}={value!r} is not a number")
        elif key == "forced_derisk_tier" and not (
            isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
        ):
            problems.append(f"override {key}={value!r} is not a whole number")
    return problems


def _finite_number(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(float(value))
    )


def _with_overrides(sop: StateSOP, overrides: Mapping[str, Any]) -> tuple[StateSOP, list[str]]:
    """Apply the monitor's overrides that tighten; refuse (and report) those that loosen.
    The values' types have been checked (:func:`_override_problems`)."""
    values = sop.model_dump()
    refused: list[str] = []
    for key, value in overrides.items():
        if key not in values:
            refused.append(f"override {key!r} refused: not an SOP field")
            continue
        current = values[key]
        if key in StateSOP.MULTIPLIERS:
            tighter = float(value) <= current
        elif key in FLAGS:
            tighter = bool(value) or not current
        elif key in ("risk_aversion_floor", "forced_derisk"):
            tighter = float(value) >= current
        else:
            tighter = value == current
        if tighter:
            values[key] = value
        else:
            refused.append(
                f"override {key}={value!r} refused: it would loosen the SOP ({key}={current!r} kept)"
            )
    try:
        return StateSOP.model_validate(values), refused
    except ValueError as err:
        return sop, [*refused, f"overrides refused as a whole: {err}"]


def tightened(cs: ConstraintSet, resolved: ResolvedState) -> ConstraintSet:
    """The constraint set with the state's SOP applied: each family scales its own
    section (:meth:`~riskopt.constraints.family.Family.tightened`)."""
    sop = resolved.sop
    raw = cs.model_dump()
    for family in FAMILIES:
        if family.key is not None:
            raw[family.key] = family.tightened(raw[family.key], sop)
    raw["active_state"] = resolved.state
    # The effective SOP, overrides included, is what the families read, in every state;
    # each stricter state is kept at least as strict as it, so the set stays valid.
    raw["states"][resolved.state] = sop.model_dump()
    for stricter in STATES[_rank(resolved.state) + 1 :]:
        raw["states"][stricter] = cs.states.sop(stricter).at_least(sop).model_dump()
    return ConstraintSet.from_dict(raw, source=f"{cs.name} under {resolved.state}")


def with_envelope(
    cs: ConstraintSet, calmer_state: str, exposures: dict[str, float], per_name: dict[str, float]
) -> ConstraintSet:
    """``cs`` with the calmer state's outcome as its envelope (the volatility family caps
    at it, unscaled: that outcome already carries the drawdown multiplier)."""
    raw = cs.model_dump()
    raw["envelope"] = {
        "source_state": calmer_state,
        "gross": exposures.get("gross"),
        "abs_net": abs(exposures["net"]) if "net" in exposures else None,
        "volatility": exposures.get("volatility"),
        "per_name": per_name,
        "tier": raw["envelope"]["tier"],
    }
    return ConstraintSet.from_dict(raw, source=f"{cs.name} under {cs.active_state}")
