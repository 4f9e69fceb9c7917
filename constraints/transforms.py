"""The transforms ``T`` of a policy row ``A · T(x) ≤ b`` and the operands ``x`` they read.

One table says, per transform, everything the program, the residuals and the attribution
need: its value at a point, its slope away from the kink and the range of its
subgradient at it, the bounds it implies over a box, and how the back-ends write it from
one epigraph variable ``a ≥ |x|``. Both back-ends and the attribution read this table;
none of them repeats the switch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Transform = Literal["id", "abs", "pos", "neg", "vol", "cost"]
Operand = Literal["h", "w", "trade", "pair_trade"]
"""What a row reads: ticker weights ``h``, pair (sleeve) weights ``w``, the trade
``h − h0`` (the change from the held ticker weights) or the pair trade ``w − w0`` (each
sleeve's own change)."""


def reads_pairs(on: str) -> bool:
    """Whether rows over ``on`` have one column per pair (``w``, ``w − w0``), not per name."""
    return on in ("w", "pair_trade")


def shifted(on: str) -> bool:
    """Whether ``on`` is a trade: the operand less the held weights it is measured from."""
    return on in ("trade", "pair_trade")


def _abs_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    crossing = (lo <= 0.0) & (hi >= 0.0)
    low = np.where(crossing, 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    return low, np.maximum(np.abs(lo), np.abs(hi))


@dataclass(frozen=True)
class TransformRule:
    """One elementwise transform ``T``.

    ``T(x) = aux · |x| + base · x``: the back-ends write it from the epigraph variable
    ``a ≥ |x|`` as ``aux · a + base · x`` (exact under a non-negative ``A``), and
    ``epigraph`` lists the signs ``σ`` of the rows ``a ≥ σ x`` a formulation with one
    variable per transform needs (``nonneg``: whether that variable is also ``≥ 0``).
    """

    name: str
    value: Callable[[np.ndarray], np.ndarray]
    slope: Callable[[np.ndarray], np.ndarray]
    """The derivative of ``T`` away from its kink."""
    kink: bool
    """Whether ``T`` has a kink at zero, where its subgradient is ``[span]``."""
    span: tuple[float, float]
    """The range of the subgradient at the kink (``(0, 0)`` without one)."""
    bounds: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    """Bounds of ``T(x)`` over the box ``lo ≤ x ≤ hi``."""
    aux: float
    base: float
    epigraph: tuple[float, ...]
    nonneg: bool


TRANSFORMS: dict[str, TransformRule] = {
    "id": TransformRule(
        name="id",
        value=lambda x: x,
        slope=np.ones_like,
        kink=False,
        span=(0.0, 0.0),
        bounds=lambda lo, hi: (lo, hi),
        aux=0.0,
        base=1.0,
        epigraph=(),
        nonneg=False,
    ),
    "abs": TransformRule(
        name="abs",
        value=np.abs,
        slope=np.sign,
        kink=True,
        span=(-1.0, 1.0),
        bounds=_abs_bounds,
        aux=1.0,
        base=0.0,
        epigraph=(1.0, -1.0),
        nonneg=False,
    ),
    "pos": TransformRule(
        name="pos",
        value=lambda x: np.maximum(x, 0.0),
        slope=lambda x: (x > 0).astype(float),
        kink=True,
        span=(0.0, 1.0),
        bounds=lambda lo, hi: (np.maximum(lo, 0.0), np.maximum(hi, 0.0)),
        aux=0.5,
        base=0.5,
        epigraph=(1.0,),
        nonneg=True,
    ),
    "neg": TransformRule(
        name="neg",
        value=lambda x: np.maximum(-x, 0.0),
        slope=lambda x: -(x < 0).astype(float),
        kink=True,
        span=(-1.0, 0.0),
        bounds=lambda lo, hi: (np.maximum(-hi, 0.0), np.maximum(-lo, 0.0)),
        aux=0.5,
        base=-0.5,
        epigraph=(-1.0,),
        nonneg=True,
    ),
}
"""Every elementwise transform. ``"vol"`` and ``"cost"`` are not ones: they name the
volatility cone and the trading-cost budgets, each its own kind of limit
(:class:`~riskopt.constraints.base.VolatilityCap`, :class:`~riskopt.constraints.base.CostBudget`)."""


def rule(transform: str) -> TransformRule:
    """The table's entry for ``transform``; raises for anything that is not in it."""
    try:
        return TRANSFORMS[transform]
    except KeyError:
        raise ValueError(
            f"no elementwise transform {transform!r} (one of {', '.join(TRANSFORMS)})"
        ) from None


def apply_transform(transform: str, x: np.ndarray) -> np.ndarray:
    """``T(x)`` elementwise."""
    return rule(transform).value(x)


def transform_slope(transform: str, x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Derivative of ``T`` at ``x`` and a mask of kinks where it is set-valued.

    At a kink the slope returned is 0 and the admissible range is the rule's ``span``
    (``hi - lo = 1``): the attribution fills it from the KKT residual.
    """
    r = rule(transform)
    if not r.kink:
        return r.slope(x), np.zeros(x.shape, dtype=bool)
    kink = np.abs(x) <= eps
    slope = np.asarray(r.slope(x), dtype=float)
    slope[kink] = 0.0
    return slope, kink


def transform_bounds(
    transform: str, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``T(x)`` over the box ``lo ≤ x ≤ hi``."""
    return rule(transform).bounds(lo, hi)


def operand(
    on: str, h: np.ndarray, w: np.ndarray | None = None, held: np.ndarray | None = None
) -> np.ndarray:
    """The vector a row reads: ``h``, ``w``, the trade ``h − h0`` or the pair trade
    ``w − w0`` (``held`` being ``h0`` or ``w0``)."""
    if on not in ("h", "w", "trade", "pair_trade"):
        raise ValueError(f"no operand {on!r} (one of h, w, trade, pair_trade)")
    x = w if reads_pairs(on) else h
    if x is None:
        raise ValueError("rows over pair weights need w")
    if not shifted(on):
        return x
    if held is None:
        raise ValueError("rows over a trade need the held weights")
    return x - held
