"""Round lots after the solve, repaired so every hard limit still holds.

The *trade* of each name is rounded to a whole number of lots (so an odd-lot holding
stays odd-lot unless it is closed), toward the smaller absolute position: rounding never
makes a name larger than the solver left it, so per-name caps and gross/long/short
limits that held continuously still hold. Where the rounded target would leave the hard
box ``[lo, hi]`` the trade is stepped back toward zero, which always ends inside the box
because the box contains the current position (only then can a target exceed the solved
one, by less than a lot). A name the solver closes (``|h| <`` half a lot) goes to exactly
zero. The net exposure may move by at most one lot per name.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from riskopt.constraints.transforms import apply_transform, reads_pairs

if TYPE_CHECKING:
    from riskopt.constraints.base import Limit
    from riskopt.optimizer.assemble import Box
    from riskopt.optimizer.inputs import PreparedInputs

EPS_LOTS = 1e-9
"""Slack, in lots, for floating-point error in the box comparison."""
SOLVER_NOISE = 1e-6
"""Accuracy of the solved weights, in NAV: a rounded target may exceed the solved one
by at most this much."""


def round_to_lots(
    h: np.ndarray,
    current: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    price: np.ndarray,
    lot_size: np.ndarray,
    nav: float,
    lot_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    strict: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(target_shares, h_final)`` for solved weights ``h`` and current shares.

    ``lot_bounds`` further bounds each name's trade, in lots (the sum of its sleeves'
    whole-lot room, so that the trade can be split among them); ``strict`` names round
    toward zero without the solver-noise band (they never end above the solved size)."""
    to_shares = nav / price
    target_cont = h * to_shares
    lot = lot_size
    # Truncate toward zero *position*: a rounded target is never larger in absolute value
    # than the solved one, so |h|-based limits (per-name caps, gross, long, short) that
    # held before rounding still hold after it.
    # Solver noise (SOLVER_NOISE in weight) must not cost a whole lot: within that band
    # of a lot boundary the trade rounds to it. Where a lot is smaller than the noise
    # (penny names in a large book) this becomes plain rounding to the nearest lot.
    eps = np.clip(SOLVER_NOISE * to_shares / lot, EPS_LOTS, 0.5)
    if strict is not None:
        eps = np.where(strict, EPS_LOTS, eps)
    x = (target_cont - current) / lot
    k = np.where(target_cont >= 0, np.floor(x + eps), np.ceil(x - eps))
    # The largest and smallest whole-lot trades that stay inside the hard box; 0 is
    # always admissible since lo ≤ h0 ≤ hi.
    k_hi = np.floor((hi * to_shares - current) / lot + EPS_LOTS)
    k_lo = np.ceil((lo * to_shares - current) / lot - EPS_LOTS)
    if lot_bounds is not None:
        k_lo = np.maximum(k_lo, lot_bounds[0])
        k_hi = np.minimum(k_hi, lot_bounds[1])
    k_hi = np.maximum(k_hi, 0.0)
    k_lo = np.minimum(k_lo, 0.0)
    k = np.clip(k, k_lo, k_hi)
    target = current + k * lot
    closing = (
        (np.abs(target_cont) < 0.5 * lot)
        & (lo * to_shares <= EPS_LOTS)
        & (hi * to_shares >= -EPS_LOTS)
    )
    target = np.where(closing, 0.0, target)
    target = np.where(np.abs(target) < 1e-9, 0.0, target)
    return target, target / to_shares


def pair_lot_bounds(
    current: np.ndarray, lo: np.ndarray, hi: np.ndarray, to_shares: np.ndarray, lot: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest whole-lot trades that keep each pair inside its box
    (``lo``/``hi`` in weight, ``current`` in shares); 0 is always admissible."""
    k_lo = np.ceil((lo * to_shares - current) / lot - EPS_LOTS)
    k_hi = np.floor((hi * to_shares - current) / lot + EPS_LOTS)
    return np.minimum(k_lo, 0.0), np.maximum(k_hi, 0.0)


def closing_bounds(
    bounds: tuple[np.ndarray, np.ndarray],
    current: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    lot: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``bounds`` extended, where a pair's box holds zero, to the (fractional) trade that
    closes it exactly: an odd-lot holding may always be closed."""
    close = -current / lot
    zero_in_box = (lo <= 0.0) & (hi >= 0.0)
    k_lo = np.where(zero_in_box & (close < bounds[0]), close, bounds[0])
    k_hi = np.where(zero_in_box & (close > bounds[1]), close, bounds[1])
    return k_lo, k_hi


def split_to_sleeves(
    ticker_trade: np.ndarray,
    solved_trade: np.ndarray,
    toward_zero: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    pair_ticker: np.ndarray,
    closing: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Each pair's trade in whole lots, adding up to its ticker's trade.

    Every pair starts at its solved trade rounded toward the smaller position
    (``toward_zero``, as the tickers are) within its own bounds; what the ticker's total
    still differs by is handed out a lot at a time, to the pair furthest behind its
    solved trade that has room, in vectorized rounds (at most a few per ticker's number
    of sleeves). A fractional remainder (a ticker that closes an odd-lot holding) goes to
    the pairs with the most room within ``closing`` (each pair's bounds, extended to the
    trade that closes an odd-lot holding exactly where its box holds zero), so no pair
    leaves its box; the caller adds the pairs up for the ticker. All in lots.
    """
    k_lo, k_hi = bounds
    k = np.clip(toward_zero, k_lo, k_hi)
    n = len(ticker_trade)
    for _ in range(len(k) + 1):
        short = ticker_trade - np.bincount(pair_ticker, weights=k, minlength=n)
        direction = np.sign(np.fix(np.round(short, 9)))[pair_ticker]
        room = np.where(direction > 0, k_hi - k, k - k_lo)
        behind = direction * (solved_trade - k)
        pick = _best_per_group(
            np.where((direction != 0) & (room >= 1), behind, -np.inf), pair_ticker, n
        )
        if not len(pick):
            break
        k[pick] += direction[pick]
    far_lo, far_hi = closing if closing is not None else bounds
    for _ in range(len(k) + 1):  # a fraction of a lot: each pair takes what it has room for
        rest = ticker_trade - np.bincount(pair_ticker, weights=k, minlength=n)
        rest = np.where(np.abs(rest) > EPS_LOTS, rest, 0.0)[pair_ticker]
        room = np.where(rest > 0, far_hi - k, k - far_lo)
        wanted = np.where((rest != 0) & (room > EPS_LOTS), room, -np.inf)
        pick = _best_per_group(wanted, pair_ticker, n)
        if not len(pick):
            break
        k[pick] += np.sign(rest[pick]) * np.minimum(np.abs(rest[pick]), room[pick])
    return k


def _best_per_group(score: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """The index of the highest finite score within each group (none for a group whose
    scores are all ``-inf``)."""
    order = np.lexsort((-score, group))
    first = order[np.r_[True, group[order][1:] != group[order][:-1]]] if len(order) else order
    return first[np.isfinite(score[first])]


class Lots(NamedTuple):
    """Targets in whole lots: per ticker and per (strategy, ticker) pair."""

    h: np.ndarray
    w: np.ndarray
    shares: np.ndarray
    pair_shares: np.ndarray


def round_lots(
    prepared: PreparedInputs,
    box: Box,
    h: np.ndarray,
    w: np.ndarray,
    limits: list[Limit],
) -> Lots:
    """Round each ticker's trade to whole lots (never beyond a cap the solve kept), then
    split it among its sleeves in whole lots that keep every pair in its box."""
    data = prepared.data
    to_shares = data.nav / data.price
    pt = data.pair_ticker
    pair_current = (
        prepared.pair_shares if prepared.pair_shares is not None else data.w0 * to_shares[pt]
    )
    pair_bounds = pair_lot_bounds(
        pair_current, box.w_lo, box.w_hi, to_shares[pt], data.lot_size[pt]
    )
    summed = (
        np.bincount(pt, weights=pair_bounds[0], minlength=data.n),
        np.bincount(pt, weights=pair_bounds[1], minlength=data.n),
    )
    rounding = functools.partial(
        round_to_lots,
        current=prepared.current_shares,
        lo=box.lo,
        hi=box.hi,
        price=data.price,
        lot_size=data.lot_size,
        nav=data.nav,
        lot_bounds=summed,
    )
    shares, h_final = rounding(h)
    # Solver noise may round a name a hair above what the solve left it; where that would
    # break a limit the solve kept, those names round toward zero instead.
    # A tier-1 row (net, say) that rounding toward zero leaves past its limit is repaired
    # too: a tier-1 limit gives way to the hard limits only, never to lots.
    grown = np.abs(h_final) > np.abs(h) + 1e-15
    if (grown.any() and _worsened(limits, h, h_final, w)) or _worsened(
        limits, h, h_final, w, tier=1
    ):
        if grown.any():
            shares, h_final = rounding(h, strict=grown)
        shares = _lots_back_under(limits, (h, w), shares, prepared, box, summed)
        h_final = shares / to_shares
    trade = (shares - prepared.current_shares) / data.lot_size
    solved_trade = (w * to_shares[pt] - pair_current) / data.lot_size[pt]
    eps = np.clip(SOLVER_NOISE * to_shares[pt] / data.lot_size[pt], EPS_LOTS, 0.5)
    toward_zero = np.where(w >= 0, np.floor(solved_trade + eps), np.ceil(solved_trade - eps))
    closing = closing_bounds(pair_bounds, pair_current, box.w_lo, box.w_hi, data.lot_size[pt])
    k = split_to_sleeves(trade, solved_trade, toward_zero, pair_bounds, pt, closing)
    pair_shares = pair_current + k * data.lot_size[pt]
    # Whole shares stay whole (no float noise for a consumer that truncates), a pair that
    # closes is exactly zero, and the ticker is its sleeves' sum.
    whole = np.abs(pair_shares - np.round(pair_shares)) < 1e-6
    pair_shares = np.where(whole, np.round(pair_shares), pair_shares)
    pair_shares = np.where(np.abs(pair_shares) < 1e-9, 0.0, pair_shares)
    shares = np.bincount(pt, weights=pair_shares, minlength=data.n)
    return Lots(shares / to_shares, pair_shares / to_shares[pt], shares, pair_shares)


def _lots_back_under(
    limits: list[Limit],
    solved: tuple[np.ndarray, np.ndarray],
    shares: np.ndarray,
    prepared: PreparedInputs,
    box: Box,
    summed: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Where whole lots leave a row of ticker weights (gross, long, short, net, a group's
    row) further past its limit than the solve left it (a name held a fraction of a lot
    above its solved size by its trade limit, a short rounded toward zero under a net
    cap), step names of the row a lot at a time the way that brings it down, largest
    first: toward zero, or back toward held (a smaller trade than the solve's, never past
    the held position), never taking a per-name row (a cap, a liquidity cap) or a row of
    the same or a higher tier past where the solve left it. Each step stays in the box; the repair stops when the row is back
    where the solve left it or no name of it can step. Rows are repaired in tier order."""
    data = prepared.data
    h, w = solved
    to_shares, lot, current = data.nav / data.price, data.lot_size, prepared.current_shares
    k_lo = np.minimum(
        np.maximum(np.ceil((box.lo * to_shares - current) / lot - EPS_LOTS), summed[0]), 0.0
    )
    k_hi = np.maximum(
        np.minimum(np.floor((box.hi * to_shares - current) / lot + EPS_LOTS), summed[1]), 0.0
    )
    room = Room(k_lo * lot + current, k_hi * lot + current, current, lot, to_shares)
    shares = shares.copy()
    rows = sorted(filter(_repairable, limits), key=lambda limit: limit.tier)
    kept = [limit.residual(h, w) for limit in rows]
    # Per-name rows (caps, liquidity): of the same or a higher tier never taken past by a
    # step, of a lower tier only where no other step will do.
    per_name = [(q, q.residual(h, w)) for q in limits if _per_name(q)]
    for _ in range(MAX_REPAIR_ROUNDS):
        fresh = np.ones(len(shares), dtype=bool)  # each name steps once a round
        for limit, floor in zip(rows, kept, strict=True):
            excess = limit.residual(shares / to_shares, w) - floor
            for r in np.flatnonzero(excess > REPAIR_TOLERANCE).tolist():
                others = [
                    (q, f)
                    for q, f in [*zip(rows, kept, strict=True), *per_name]
                    if q.tier <= limit.tier
                ]
                lower = [(q, f) for q, f in per_name if q.tier > limit.tier]
                guard = Guard(others, lower, limit, r, w)
                chosen, step = _names_to_step(limit, r, shares, fresh, room, excess[r], guard)
                shares[chosen] += step
                fresh[chosen] = False
        if fresh.all():
            break
    return shares


class Guard(NamedTuple):
    """The rows a repair step must not take past where the solve left them: those of
    ``others`` (limit, residual the solve left) but row ``r`` of ``limit``, the one it
    repairs; those of ``lower`` (per-name rows of a lower tier) only where no other step
    will do. ``w``: the solved pair weights."""

    others: list[tuple[Limit, np.ndarray]]
    lower: list[tuple[Limit, np.ndarray]]
    limit: Limit
    r: int
    w: np.ndarray

    def harmless(self, names: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Whether stepping each of ``names`` alone from ``before`` to ``after`` (ticker
        weights, the book at ``before``) keeps every row of ``others`` where the solve
        left it."""
        return self.keeps(self.others, names, before, after)

    def keeps(
        self,
        rows: list[tuple[Limit, np.ndarray]],
        names: np.ndarray,
        before: np.ndarray,
        after: np.ndarray,
    ) -> np.ndarray:
        """Whether each step keeps every row of ``rows`` where the solve left it."""
        ok = np.ones(len(names), dtype=bool)
        for q, floor in rows:
            slack = q.rhs + floor - q.lhs(before, self.w)
            if q is self.limit:
                slack = slack.copy()
                slack[self.r] = np.inf
            delta = apply_transform(q.transform, after[names]) - apply_transform(
                q.transform, before[names]
            )
            if q.A is None:  # one row per name
                ok &= delta <= slack[names] + REPAIR_TOLERANCE
                continue
            worse = q.A[:, names].multiply(delta[None, :]).tocoo()
            bad = worse.data > slack[worse.row] + REPAIR_TOLERANCE
            ok[worse.col[bad]] = False
        return ok


class Room(NamedTuple):
    """What the repair may do to each name, in shares: its box's lowest and highest
    whole-lot positions, its held position, its lot, and shares per unit of weight."""

    lowest: np.ndarray
    highest: np.ndarray
    current: np.ndarray
    lot: np.ndarray
    to_shares: np.ndarray


MAX_REPAIR_ROUNDS = 1_000
"""A bound on the repair's rounds (each steps every name it picks by one lot)."""
REPAIR_TOLERANCE = 1e-12
"""How much further past its limit (weight) rounding may leave a row without repair."""


def _repairable(limit: Limit) -> bool:
    """Whether the repair steps names for ``limit``: a row of ticker weights whose sum of
    sizes (gross, long, short, a group's gross) a step toward zero brings down, at any
    tier; a signed row (net, a group's net, a factor band) at tier 1 only, where a step
    that brings it down may push another signed row the other way."""
    if limit.on != "h" or getattr(limit, "A", None) is None or limit.preference:
        return False
    return limit.transform in ("abs", "pos", "neg") or (limit.transform == "id" and limit.tier == 1)


def _per_name(limit: Limit) -> bool:
    """Whether ``limit`` is a block of one row per name over ticker weights (a per-name
    cap, a liquidity cap) that a repair step must not take past its limit."""
    return (
        limit.on == "h"
        and getattr(limit, "A", 0) is None
        and not limit.preference
        and limit.transform in ("abs", "pos", "neg", "id")
    )


def _names_to_step(
    limit: Limit,
    r: int,
    shares: np.ndarray,
    fresh: np.ndarray,
    room: Room,
    excess: float,
    guard: Guard,
) -> tuple[np.ndarray, np.ndarray]:
    """The names of row ``r`` to step by a lot each, and their steps (shares), that bring
    the row down by ``excess``: steps toward zero before steps back toward held, the
    largest first (all that can where that is not enough); ``fresh`` names have not
    stepped this round, and no step may take a row of ``guard`` past its limit alone."""
    assert limit.A is not None
    row = limit.A.getrow(r)
    names, coef = row.indices, row.data
    held, lot = shares[names], room.lot[names]
    sign = np.sign(held)
    # The way that brings the row down: toward zero for a row of sizes, against the
    # coefficient's sign for a signed row.
    direction = -np.sign(coef) if limit.transform == "id" else -sign
    helps = {"abs": sign != 0, "pos": sign > 0, "neg": sign < 0}.get(limit.transform, coef != 0)
    after = held + direction * lot
    toward_zero = (direction * sign < 0) & (np.abs(held) >= lot)
    # Back toward held: a smaller trade than the solve's, never past the held position.
    back = room.current[names] - held
    toward_held = (direction * back > 0) & (np.abs(back) >= lot * (1 - EPS_LOTS))
    in_box = (after >= room.lowest[names] - EPS_LOTS) & (after <= room.highest[names] + EPS_LOTS)
    ok = fresh[names] & helps & in_box & (toward_zero | toward_held)
    before = shares / room.to_shares
    moved = before.copy()
    moved[names] = after / room.to_shares[names]
    ok[ok] = guard.harmless(names[ok], before, moved)
    costly = ~guard.keeps(guard.lower, names[ok], before, moved)
    size = (np.abs(coef) * lot / room.to_shares[names])[ok]
    # Steps that keep lower-tier per-name rows first, then steps toward zero (they never
    # take another size row up), largest first.
    order = np.lexsort((-size, ~toward_zero[ok], costly))
    taken = order[np.cumsum(size[order]) - size[order] < excess]
    return names[ok][taken], (direction * lot)[ok][taken]


def _worsened(
    limits: list[Limit],
    h: np.ndarray,
    rounded: np.ndarray,
    w: np.ndarray,
    *,
    tier: int | None = None,
) -> bool:
    """Whether rounding ``h`` takes any ticker-level policy row (of ``tier``, where given)
    further past its limit."""
    return any(
        np.any(limit.residual(rounded, w) > limit.residual(h, w) + REPAIR_TOLERANCE)
        for limit in limits
        if not reads_pairs(limit.on)  # ticker weights, or the trade h − h0
        and (tier is None or limit.tier == tier)
    )
