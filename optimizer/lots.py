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

import numpy as np

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
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(target_shares, h_final)`` for solved weights ``h`` and current shares."""
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
    x = (target_cont - current) / lot
    k = np.where(target_cont >= 0, np.floor(x + eps), np.ceil(x - eps))
    # The largest and smallest whole-lot trades that stay inside the hard box; 0 is
    # always admissible since lo ≤ h0 ≤ hi.
    k_hi = np.floor((hi * to_shares - current) / lot + EPS_LOTS)
    k_lo = np.ceil((lo * to_shares - current) / lot - EPS_LOTS)
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
