"""The minimum-sizes stage: after the solve and the lots, fix the names that break a
minimum of ``[minimum]`` and solve the rest again, until none is left or the rounds end.

Minimum trade, minimum holding and the most names held are not convex, so the program
cannot hold them; this stage enforces them by a heuristic (README, "Minimum sizes"):

1. Read the rounded targets. A name breaks the minimum trade when it trades, does not
   close, and trades less than ``trade``; the minimum holding when it ends held but
   smaller than ``holding``.
2. Such a name is fixed at the nearest of the values that meet both minimums and that
   its hard limits allow: ``h0`` (not traded, every sleeve at ``w0``), ``0`` (closed,
   every sleeve at 0) or the smallest whole-lot size at or above the minimum holding
   (raised, only within the hull between held and proposed: the gate never extends a
   proposal). Ties go to ``h0``, then ``0``. A name with no such value that breaks both
   minimums is at least not traded (its holding is under the minimum either way).
3. Beyond ``max_names`` held names, those whose closing costs the tracking term least
   (after step 2) are closed.
4. The program is solved again with those names fixed (their boxes shut, in the cached
   program: no recompile) and rounded to lots. If the re-solve fails or takes any policy
   row further past its limit than the first solve did, the round is undone, and the
   next tries half as many names; a name that fails alone is left as it is and said so.

Each round only adds fixed names, so it ends; it stops once nothing breaks a minimum or
after ``rounds`` re-solves, and what still breaks one is listed in the run's alerts.
Every hard limit holds throughout: each fixed value lies in the name's hard box.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskopt.constraints.base import HardBound, Limit, LinearLimit, ProgramData, pair_hull
from riskopt.constraints.minimum import Minimums, minimums
from riskopt.optimizer.assemble import Assembled, Box
from riskopt.optimizer.inputs import PreparedInputs
from riskopt.optimizer.lots import EPS_LOTS, Lots, round_lots
from riskopt.optimizer.program import ProgramCache
from riskopt.optimizer.solve import Solution, solve

BREACH_TOL = 1e-6
"""A re-solve may not take a policy row further past its limit than this (weight)."""
SHARE_TOL = 1e-6
"""A name whose position moves by less than this many shares does not trade."""
REL_TOL = 1e-9
"""A size within this fraction below a minimum meets it (float error)."""
KINDS = ("trade", "holding", "max_names")
CAUSES = {
    "trade": ("minimum.trade", "minimum trade size"),
    "holding": ("minimum.holding", "minimum holding size"),
    "max_names": ("minimum.max_names", "most names held"),
}
"""Each minimum's hard bound in the re-solve: its name (the attribution's cause) and words."""
HOLD, CLOSE, RAISE = 0, 1, 2


@dataclass(frozen=True)
class Fixed:
    """The names the stage has fixed: the value of each (NaN: free), which minimum fixed
    it (an index of :data:`KINDS`, -1: none) and how (:data:`HOLD`, :data:`CLOSE`,
    :data:`RAISE`), with the weight it had when fixed."""

    value: np.ndarray
    kind: np.ndarray
    how: np.ndarray
    before: np.ndarray

    @classmethod
    def none(cls, n: int) -> Fixed:
        return cls(np.full(n, np.nan), np.full(n, -1), np.full(n, -1), np.zeros(n))

    @property
    def mask(self) -> np.ndarray:
        return ~np.isnan(self.value)

    def with_(self, other: Fixed) -> Fixed:
        """These fixes, and ``other``'s where it fixes a name."""
        on = other.mask
        return Fixed(
            np.where(on, other.value, self.value),
            np.where(on, other.kind, self.kind),
            np.where(on, other.how, self.how),
            np.where(on, other.before, self.before),
        )


@dataclass(frozen=True)
class MinimumOutcome:
    """What the stage gives: the program with its fixes, its solution and lots, a note per
    name it moved (for the reasons), the run's alerts and the re-solves it made."""

    assembled: Assembled
    solution: Solution
    lots: Lots
    notes: dict[int, str]
    alerts: list[str]
    solves: int


def apply_minimums(
    prepared: PreparedInputs,
    assembled: Assembled,
    solution: Solution,
    lots: Lots,
    *,
    solvers: list[str | Any] | None,
    cache: ProgramCache | None,
) -> MinimumOutcome:
    """The stage (module docstring): unchanged where no minimum applies, or where the run
    fell back to de-risking (said in the alerts)."""
    data = assembled.data
    mins = minimums(assembled.cs, data.nav)
    if not mins.active or not data.n:
        return MinimumOutcome(assembled, solution, lots, {}, [], 0)
    if solution.solved is None:
        alert = "minimum sizes not applied: the run fell back to de-risking"
        return MinimumOutcome(assembled, solution, lots, {}, [alert], 0)
    cache = cache if cache is not None else ProgramCache(1)
    base, first = assembled, solution
    fixed, left = Fixed.none(data.n), np.zeros(data.n, dtype=bool)
    batch, solves = data.n, 0
    while solves < mins.rounds:
        new = propose(prepared, base, lots, mins, fixed, left)
        if not new.mask.any():
            break
        new = first_of(new, batch)
        trial = with_fixes(base, fixed.with_(new))
        resolved = solve(trial, solvers=solvers, cache=cache)
        solves += 1
        if resolved.solved is None or worsened(base.limits, first, resolved):
            if new.mask.sum() == 1:
                left |= new.mask
            batch = max(1, int(new.mask.sum()) // 2)
            continue
        fixed = fixed.with_(new)
        assembled = trial
        solution = dataclasses.replace(resolved, program_built=first.program_built)
        lots = round_lots(prepared, trial.box, solution.h, solution.w, trial.limits)
    return MinimumOutcome(
        assembled,
        solution,
        lots,
        notes(fixed, mins, data.h0),
        still_breaking(prepared, base, lots, mins, fixed, left),
        solves,
    )


def breaking(prepared: PreparedInputs, lots: Lots, mins: Minimums) -> tuple[np.ndarray, np.ndarray]:
    """Which names break the minimum trade (trading less than it, not closing) and which
    the minimum holding (held, smaller than it), at the rounded targets."""
    data = prepared.data
    traded = np.abs(lots.shares - prepared.current_shares) > SHARE_TOL
    held = lots.shares != 0
    small_trade = np.abs(lots.h - data.h0) < mins.trade * (1 - REL_TOL)
    small_holding = np.abs(lots.h) < mins.holding * (1 - REL_TOL)
    return traded & held & small_trade, held & small_holding


def propose(
    prepared: PreparedInputs,
    base: Assembled,
    lots: Lots,
    mins: Minimums,
    fixed: Fixed,
    left: np.ndarray,
) -> Fixed:
    """This round's new fixes: each free name that breaks a minimum at the value nearest
    its target among those admissible (module docstring, step 2), then the smallest held
    names beyond ``max_names`` closed (step 3). A name with no admissible value that
    breaks both minimums is at least not traded, where its own rows allow: its holding
    was under the minimum either way."""
    data = prepared.data
    bad_trade, bad_holding = breaking(prepared, lots, mins)
    free = ~fixed.mask & ~left
    bad = (bad_trade | bad_holding) & free
    values, admissible = candidates(prepared, base.box, lots, mins)
    own = own_rows_hold(base.limits, values, lots)
    admissible &= own
    distance = np.where(admissible, np.abs(values - lots.h[:, None]), np.inf)
    how = np.argmin(distance, axis=1)  # the first on a tie: HOLD, then CLOSE
    possible = np.isfinite(distance.min(axis=1))
    chosen = bad & possible
    how = np.where(chosen, how, HOLD)
    chosen |= bad & bad_trade & bad_holding & own[:, HOLD]
    value = np.where(chosen, values[np.arange(data.n), how], np.nan)
    kind = np.where(chosen, np.where(bad_holding & possible, 1, 0), -1)
    new = Fixed(value, kind, np.where(chosen, how, -1), lots.h.copy())
    if mins.max_names is not None:
        cost = closing_cost(data, base, lots.w)
        extra = beyond_max_names(lots.h, fixed, new, mins.max_names, admissible[:, CLOSE], cost)
        new = new.with_(extra)
    return new


def closing_cost(data: ProgramData, base: Assembled, w: np.ndarray) -> np.ndarray:
    """Per name, what closing it alone adds to the objective at pair weights ``w``: the
    tracking term over its sleeves, the preference rows that hold a growing proposal at
    its holding (one row per pair), and the risk term it takes away. Small for a name its
    proposal sells down, large for one a proposal adds to."""
    per_pair = base.c * (data.w_tilde**2 - (w - data.w_tilde) ** 2)
    h = np.asarray(data.M @ w)
    for limit, rho in zip(base.limits, base.rho, strict=True):
        if not (isinstance(limit, LinearLimit) and limit.preference and limit.on == "w"):
            continue
        a = limit.A
        if a is None or not (np.diff(a.indptr) == 1).all():  # only rows of one pair
            continue
        added = limit.residual(np.zeros(data.n), np.zeros(data.p)) - limit.residual(h, w)
        per_pair = per_pair + np.bincount(a.indices, weights=rho * added, minlength=data.p)
    return np.bincount(data.pair_ticker, weights=per_pair, minlength=data.n) + _risk_change(
        data, base, h
    )


def _risk_change(data: ProgramData, base: Assembled, h: np.ndarray) -> np.ndarray:
    """Per name, the change of the risk term when that name alone goes to zero."""
    gamma = base.aversion.gamma * base.risk_scale
    if gamma == 0 or data.specific_var is None:
        return np.zeros(data.n)
    change = -base.aversion.gamma_i * data.specific_var * h * h
    if data.loadings is not None and data.factor_cov is not None:
        bf = data.loadings @ data.factor_cov
        change += -2.0 * h * (bf @ (data.loadings.T @ h)) + h * h * (bf * data.loadings).sum(1)
    return gamma * change


def candidates(
    prepared: PreparedInputs, box: Box, lots: Lots, mins: Minimums
) -> tuple[np.ndarray, np.ndarray]:
    """Per name, the values :data:`HOLD`, :data:`CLOSE` and :data:`RAISE` (N × 3), and
    which of them the hard box, the pair boxes, the hull between held and proposed and
    both minimums admit."""
    data = prepared.data
    pt, h0 = data.pair_ticker, data.h0
    to_shares, lot = data.nav / data.price, data.lot_size
    current = prepared.current_shares
    sign = np.where(lots.h != 0, np.sign(lots.h), np.sign(data.h_tilde))
    # The smallest whole-lot position (from the current one) at or above the minimum: a
    # buy up to it, or a sale down to it from a larger holding.
    toward = sign * current
    k = np.ceil((mins.holding * to_shares - toward) / lot - EPS_LOTS)
    raised = sign * (toward + k * lot) / to_shares
    values = np.column_stack([h0, np.zeros(data.n), raised])
    zero_pairs = (box.w_lo <= 0) & (box.w_hi >= 0)
    all_zero = np.bincount(pt, weights=~zero_pairs, minlength=data.n) == 0
    pair_lo = np.bincount(pt, weights=box.w_lo, minlength=data.n)
    pair_hi = np.bincount(pt, weights=box.w_hi, minlength=data.n)
    hull_lo, hull_hi = pair_hull(h0, data.h_tilde)
    in_boxes = (
        (box.lo <= raised)
        & (raised <= box.hi)
        & (pair_lo <= raised)
        & (raised <= pair_hi)
        & (hull_lo <= raised)
        & (raised <= hull_hi)
    )
    trade_ok = (raised == h0) | (np.abs(raised - h0) >= mins.trade * (1 - REL_TOL))
    holding_ok_h0 = (h0 == 0) | (np.abs(h0) >= mins.holding * (1 - REL_TOL))
    admissible = np.column_stack(
        [
            holding_ok_h0,
            (box.lo <= 0) & (box.hi >= 0) & all_zero,
            in_boxes & trade_ok & (sign != 0) & (mins.holding > 0),
        ]
    )
    return values, admissible


def own_rows_hold(limits: list[Limit], values: np.ndarray, lots: Lots) -> np.ndarray:
    """Per name and value (N × 3), whether the name's own policy rows (per-name caps,
    liquidity, restricted) end no further past their limit there than at its target:
    no other name can make up for them, so a value that breaks one is not admissible."""
    ok = np.ones(values.shape, dtype=bool)
    for limit in limits:
        if not isinstance(limit, LinearLimit) or limit.A is not None or limit.on == "w":
            continue
        if limit.preference:
            continue
        at_target = limit.residual(lots.h, lots.w)
        for j in range(values.shape[1]):
            ok[:, j] &= limit.residual(values[:, j], lots.w) <= at_target + BREACH_TOL
    return ok


def beyond_max_names(
    h: np.ndarray,
    fixed: Fixed,
    new: Fixed,
    max_names: int,
    closable: np.ndarray,
    cost: np.ndarray,
) -> Fixed:
    """The held names beyond ``max_names`` that cost the tracking term least to close
    (after this round's other fixes, and those of earlier rounds: a name not traded may
    still be closed), the smallest first on a tie; names that cannot close are kept."""
    after = np.where(fixed.mask, fixed.value, np.where(new.mask, new.value, h))
    held = after != 0
    excess = int(held.sum()) - max_names
    n = len(h)
    out = Fixed.none(n)
    if excess <= 0:
        return out
    can = held & closable
    ranked = np.lexsort((np.abs(after[can]), cost[can]))  # cheapest, then smallest
    order = np.flatnonzero(can)[ranked][:excess]
    out.value[order] = 0.0
    out.kind[order] = 2
    out.how[order] = CLOSE
    out.before[order] = h[order]
    return out


def first_of(new: Fixed, batch: int) -> Fixed:
    """``new`` cut to its first ``batch`` fixes, smallest move first (a round that undoes
    itself retries half of them)."""
    on = np.flatnonzero(new.mask)
    if len(on) <= batch:
        return new
    move = np.abs(new.value[on] - new.before[on])
    keep = np.zeros(len(new.value), dtype=bool)
    keep[on[np.argsort(move, kind="stable")[:batch]]] = True
    return Fixed(
        np.where(keep, new.value, np.nan),
        np.where(keep, new.kind, -1),
        np.where(keep, new.how, -1),
        new.before,
    )


def with_fixes(base: Assembled, fixed: Fixed) -> Assembled:
    """``base`` with each fixed name's box shut at its value (its sleeves at ``w0`` when
    held, at 0 when closed), and one hard bound per minimum for the attribution."""
    data, box = base.data, base.box
    pt = data.pair_ticker
    on = fixed.mask
    pair_value = np.where(
        fixed.how[pt] == HOLD, data.w0, np.where(fixed.how[pt] == CLOSE, 0.0, np.nan)
    )
    pair_on = on[pt] & ~np.isnan(pair_value)
    bounds = []
    for k, kind in enumerate(KINDS):
        mine, pairs = on & (fixed.kind == k), pair_on & (fixed.kind[pt] == k)
        if not mine.any():
            continue
        name, description = CAUSES[kind]
        bounds.append(
            HardBound(
                name,
                description,
                lo=np.where(mine, fixed.value, -np.inf),
                hi=np.where(mine, fixed.value, np.inf),
                pair_lo=np.where(pairs, pair_value, -np.inf),
                pair_hi=np.where(pairs, pair_value, np.inf),
            )
        )
    shut = Box(
        np.where(on, fixed.value, box.lo),
        np.where(on, fixed.value, box.hi),
        np.where(pair_on, pair_value, box.w_lo),
        np.where(pair_on, pair_value, box.w_hi),
    )
    # The minimums' bounds come first: on a tie with another bound they own the dual.
    return dataclasses.replace(base, box=shut, bounds=[*bounds, *base.bounds])


def worsened(limits: list[Limit], before: Solution, after: Solution) -> bool:
    """Whether ``after`` takes any policy row further past its limit than ``before``."""
    return any(
        np.any(limit.residual(after.h, after.w) > limit.residual(before.h, before.w) + BREACH_TOL)
        for limit in limits
        if not limit.preference
    )


def notes(fixed: Fixed, mins: Minimums, h0: np.ndarray) -> dict[int, str]:
    """Each fixed name's note: which minimum moved it, and how."""
    out: dict[int, str] = {}
    for i in np.flatnonzero(fixed.mask).tolist():
        kind, how, before = KINDS[fixed.kind[i]], fixed.how[i], fixed.before[i]
        if kind == "max_names":
            out[i] = (
                f"minimum.max_names: closed, among the names cheapest to close beyond the "
                f"{mins.max_names} held"
            )
        elif kind == "trade":
            what = {HOLD: "not made", CLOSE: "closed instead"}.get(
                how, f"set to {fixed.value[i]:.3%} instead"
            )
            out[i] = (
                f"minimum.trade: a trade of {abs(before - h0[i]):.3%} of NAV, under the "
                f"minimum {mins.trade:.3%}, {what}"
            )
        else:
            what = {
                HOLD: f"kept at {h0[i]:.3%}" if h0[i] else "not opened",
                CLOSE: "closed",
                RAISE: f"raised to {fixed.value[i]:.3%}",
            }[how]
            out[i] = (
                f"minimum.holding: {what}, as {abs(before):.3%} of NAV is under the "
                f"minimum holding {mins.holding:.3%}"
            )
    return out


def still_breaking(
    prepared: PreparedInputs,
    base: Assembled,
    lots: Lots,
    mins: Minimums,
    fixed: Fixed,
    left: np.ndarray,
) -> list[str]:
    """The run's alerts for the names left breaking a minimum, and why: fixing it took a
    policy row further past its limit, no value its limits allow meets both minimums, or
    the rounds ran out."""
    bad_trade, bad_holding = breaking(prepared, lots, mins)
    values, admissible = candidates(prepared, base.box, lots, mins)
    possible = (admissible & own_rows_hold(base.limits, values, lots)).any(axis=1)
    reason = np.where(
        left,
        "fixing it takes a limit further past",
        np.where(
            possible,
            f"not settled in {mins.rounds} re-solves",
            "no value its limits allow meets the minimums",
        ),
    )
    tickers = prepared.data.tickers.astype(str)
    alerts = []
    for what, bad in (("minimum.trade", bad_trade), ("minimum.holding", bad_holding)):
        if bad.any():
            why = reason[bad]
            listed = [f"{t} ({w})" for t, w in zip(tickers[bad], why, strict=True)][:10]
            more = f" and {int(bad.sum()) - 10} more" if bad.sum() > 10 else ""
            alerts.append(f"{what}: left breaking it: {', '.join(listed)}{more}")
    if mins.max_names is not None and np.count_nonzero(lots.shares) > mins.max_names:
        own = own_rows_hold(base.limits, values, lots)[:, CLOSE]
        alerts.append(_max_names_alert(prepared, lots, mins, fixed, admissible[:, CLOSE], own))
    return alerts


def _max_names_alert(
    prepared: PreparedInputs,
    lots: Lots,
    mins: Minimums,
    fixed: Fixed,
    closable: np.ndarray,
    own_rows: np.ndarray,
) -> str:
    """The alert of a ``max_names`` that cannot be reached: how many names the stage
    closed, how many held names could not close and why (their hard limits, e.g. a trade
    limit that cannot sell the whole holding in one day; their own per-name limits; or a
    limit that closing would take further past), with the first few of each."""
    held = lots.shares != 0
    tickers = prepared.data.tickers.astype(str)
    groups = {
        "held by their hard limits (a trade limit, a state's rules)": held & ~closable,
        "held by their own per-name limits": held & closable & ~own_rows,
        "whose closing takes a limit further past": held & closable & own_rows,
    }
    why = []
    for words, mask in groups.items():
        if mask.any():
            first = ", ".join(tickers[mask][:5]) + (" ..." if mask.sum() > 5 else "")
            why.append(f"{int(mask.sum())} {words} ({first})")
    closed = int(np.count_nonzero(fixed.kind == KINDS.index("max_names")))
    n = int(held.sum())
    return (
        f"minimum.max_names: {n} names held, {n - (mins.max_names or 0)} above the "
        f"{mins.max_names} allowed, and none of the {n} could close: {'; '.join(why)}; the "
        f"{closed} that could were closed, the cheapest to close first, high-conviction "
        "ones included (max_names is a limit: the book ends as near it as it can)"
    )
