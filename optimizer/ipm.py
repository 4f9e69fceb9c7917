"""A primal-dual interior-point method for the gate's conic program, in Clarabel's form.

``min ½xᵀPx + qᵀx  s.t.  Ax + s = b,  s ∈ {0}ᵐ¹ × ℝ₊ᵐ² × SOC``: Mehrotra's
predictor–corrector with Nesterov–Todd scaling and an infeasible start (the program
always has a feasible point: every policy row has a slack). The Newton system is solved
by a :class:`Kkt` given in: :class:`SparseKkt` factors it whole (the reference), and
:mod:`riskopt.optimizer.structured` solves it by the program's structure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

EPS = 1e-14
"""The relative primal and dual residuals and the gap (absolute or relative) reached:
tighter than Clarabel's 1e-11, which on books whose optimum is nearly flat along a
sleeve split leaves weights up to 8e-7 from it (measurements: ``benchmarks/README.md``)."""
ACCEPTABLE = 1e-10
"""Where the iterations stall short of :data:`EPS`, an answer that meets this is
``AlmostSolved`` (the gate takes it, as it takes Clarabel's)."""
MAX_ITERS = 60
STALL = 100.0
"""A residual this many times the best point's measure ends the iterations (the best
point is the answer): near the boundary the Newton steps can lose their accuracy."""
STEP = 0.99
"""The fraction of the step to the cone's boundary taken."""


Point = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(x, y, z, s)``: the columns, the equality multipliers, the cone multipliers and
the cone slacks."""


@dataclass(frozen=True)
class Cones:
    """Sizes of the zero cone, the non-negative orthant and each second-order cone, in
    the order their rows come."""

    zero: int
    nonneg: int
    soc: tuple[int, ...]

    @property
    def degree(self) -> int:
        return self.nonneg + len(self.soc)


@dataclass
class Scaling:
    """Nesterov–Todd scaling ``W`` of the cone rows (``W z = W⁻¹ s = λ``): ``d`` on the
    orthant (``W = diag(d)``); per second-order cone its ``η`` and ``w̄`` (``w̄ᵀJw̄ = 1``,
    ``W = η (2 w̄ w̄ᵀ − J)``)."""

    d: np.ndarray
    soc: list[tuple[float, np.ndarray]]
    lam: np.ndarray

    def apply(self, v: np.ndarray, cones: Cones, *, inverse: bool = False) -> np.ndarray:
        """``W v`` (or ``W⁻¹ v``) over the cone rows."""
        m = cones.nonneg
        parts = [v[:m] / self.d if inverse else v[:m] * self.d]
        start = cones.nonneg
        for (eta, wbar), size in zip(self.soc, cones.soc, strict=True):
            u = v[start : start + size]
            ju = _jay(u)
            if inverse:  # W⁻¹ = (2 J w̄ w̄ᵀ J − J) / η
                parts.append((2.0 * _jay(wbar) * (wbar @ ju) - ju) / eta)
            else:
                parts.append(eta * (2.0 * wbar * (wbar @ u) - ju))
            start += size
        return np.concatenate(parts)


class Kkt(Protocol):
    """A solver of the Newton system for the scaling of one iteration."""

    def factor(self, scaling: Scaling) -> None: ...

    def solve(
        self, rx: np.ndarray, ry: np.ndarray, rz: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(dx, dy, dz)`` with ``P dx + Eᵀdy + Gᵀdz = rx``, ``E dx = ry`` and
        ``G dx − W² dz = rz`` (``E`` the zero cone's rows, ``G`` the cone rows)."""
        ...


@dataclass
class Answer:
    """The interior-point method's answer, with the fields the gate reads of Clarabel's."""

    x: np.ndarray
    z: np.ndarray
    s: np.ndarray
    status: str
    obj_val: float
    obj_val_dual: float
    r_prim: float
    r_dual: float
    gap: float
    iterations: int

    @property
    def worst(self) -> float:
        """The largest of the relative residuals and the gap (equilibrated units)."""
        return max(self.r_prim, self.r_dual, self.gap)


def _jay(u: np.ndarray) -> np.ndarray:
    """``J u``: the first element kept, the rest negated."""
    out = -u
    out[0] = u[0]
    return out


def _soc_det(u: np.ndarray) -> float:
    """``uᵀJu`` written as ``(u₀ − ‖ū‖)(u₀ + ‖ū‖)``, without cancellation."""
    norm = float(np.linalg.norm(u[1:]))
    return (u[0] - norm) * (u[0] + norm)


def nt_scaling(s: np.ndarray, z: np.ndarray, cones: Cones) -> Scaling:
    """The Nesterov–Todd scaling of ``(s, z)`` over the cone rows (both interior)."""
    m = cones.nonneg
    d = np.sqrt(s[:m] / z[:m])
    lam = [np.sqrt(s[:m] * z[:m])]
    socs: list[tuple[float, np.ndarray]] = []
    start = m
    for size in cones.soc:
        sk, zk = s[start : start + size], z[start : start + size]
        s_norm, z_norm = np.sqrt(_soc_det(sk)), np.sqrt(_soc_det(zk))
        s_bar, z_bar = sk / s_norm, zk / z_norm
        gamma = np.sqrt((1.0 + s_bar @ z_bar) / 2.0)
        nt = (s_bar + _jay(z_bar)) / (2.0 * gamma)  # the scaling point, ntᵀJ nt = 1
        wbar = nt.copy()
        wbar[0] += 1.0
        wbar /= np.sqrt(2.0 * (nt[0] + 1.0))
        eta = float(np.sqrt(s_norm / z_norm))
        socs.append((eta, wbar))
        lam.append(eta * (2.0 * wbar * (wbar @ zk) - _jay(zk)))
        start += size
    return Scaling(d=d, soc=socs, lam=np.concatenate(lam))


def jordan(u: np.ndarray, v: np.ndarray, cones: Cones) -> np.ndarray:
    """The Jordan product ``u ∘ v`` over the cone rows."""
    m = cones.nonneg
    parts = [u[:m] * v[:m]]
    start = m
    for size in cones.soc:
        a, b = u[start : start + size], v[start : start + size]
        parts.append(np.concatenate([[a @ b], a[0] * b[1:] + b[0] * a[1:]]))
        start += size
    return np.concatenate(parts)


def jordan_solve(u: np.ndarray, r: np.ndarray, cones: Cones) -> np.ndarray:
    """``x`` with ``u ∘ x = r`` (``u`` interior)."""
    m = cones.nonneg
    parts = [r[:m] / u[:m]]
    start = m
    for size in cones.soc:
        a, b = u[start : start + size], r[start : start + size]
        x0 = (a[0] * b[0] - a[1:] @ b[1:]) / _soc_det(a)
        parts.append(np.concatenate([[x0], (b[1:] - x0 * a[1:]) / a[0]]))
        start += size
    return np.concatenate(parts)


def unit(cones: Cones) -> np.ndarray:
    """The cone's identity ``e``: ones on the orthant, ``(1, 0, …)`` per cone."""
    parts = [np.ones(cones.nonneg)]
    for size in cones.soc:
        e = np.zeros(size)
        e[0] = 1.0
        parts.append(e)
    return np.concatenate(parts)


def min_eig(u: np.ndarray, cones: Cones) -> float:
    """The smallest 'eigenvalue' of ``u`` in the cone (negative: outside it)."""
    lowest = float(u[: cones.nonneg].min(initial=np.inf))
    start = cones.nonneg
    for size in cones.soc:
        part = u[start : start + size]
        lowest = min(lowest, float(part[0] - np.linalg.norm(part[1:])))
        start += size
    return lowest


def max_step(u: np.ndarray, du: np.ndarray, cones: Cones) -> float:
    """The largest ``α`` with ``u + α du`` in the cone (``u`` interior; ``inf`` if any)."""
    m = cones.nonneg
    falling = du[:m] < 0.0
    alpha = float(np.min(-u[:m][falling] / du[:m][falling], initial=np.inf))
    start = m
    for size in cones.soc:
        x, dx = u[start : start + size], du[start : start + size]
        a, b, c = _soc_det(dx), x @ _jay(dx), _soc_det(x)
        disc = b * b - a * c
        if disc >= 0.0 and (a < 0.0 or b < 0.0):
            alpha = min(alpha, c / (-b + np.sqrt(disc)))
        start += size
    return alpha


RUIZ_PASSES = 12
SCALE_BOUNDS = (1e-6, 1e6)


@dataclass
class Problem:
    """Clarabel's data equilibrated and split by cone: ``E x = b_E`` (zero cone) and
    ``G x + s = h``, the objective times ``cost``; the unscaled ``x`` is ``D x̃``, the
    unscaled multipliers ``R z̃ / cost`` (``R`` the row scaling)."""

    P: sp.csc_matrix
    q: np.ndarray
    E: sp.csr_matrix
    b_e: np.ndarray
    G: sp.csr_matrix
    h: np.ndarray
    cones: Cones
    col_scale: np.ndarray
    row_scale: np.ndarray
    cost: float
    _at: sp.csr_matrix | None = None

    def transposed(self, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``Eᵀy + Gᵀz`` (``[E; G]ᵀ`` built once: SciPy's ``.T`` makes a new matrix
        object each time, which on a small book cost more than the product)."""
        if self._at is None:
            self._at = sp.vstack([self.E, self.G], format="csr").T.tocsr()
        return self._at @ np.concatenate([y, z])

    @classmethod
    def of(
        cls, P: sp.spmatrix, q: np.ndarray, A: sp.spmatrix, b: np.ndarray, cones: Cones
    ) -> Problem:
        """Split Clarabel's ``(P, q, A, b)`` (``P`` its upper triangle) by cone, after
        Ruiz equilibration (as Clarabel does: the gate's slack columns are scaled by up
        to 1e-17 and their multipliers reach 1e8)."""
        upper = sp.triu(P, format="csc")
        full = sp.csc_matrix(upper + sp.triu(upper, 1).T)
        rows = sp.csr_matrix(A)
        d, r = _ruiz(full, rows, cones)
        full = sp.csc_matrix(full.multiply(d[:, None]).multiply(d[None, :]))
        rows = sp.csr_matrix(rows.multiply(r[:, None]).multiply(d[None, :]))
        qs = d * np.asarray(q, float)
        col_norm = np.asarray(abs(full).max(axis=0).todense()).reshape(-1)
        cost = 1.0 / float(np.clip(max(col_norm.mean(), _norm(qs)), *SCALE_BOUNDS))
        full, qs, bs = full * cost, qs * cost, r * np.asarray(b, float)
        z = cones.zero
        return cls(full, qs, rows[:z], bs[:z], rows[z:], bs[z:], cones, d, r, cost)


def _ruiz(P: sp.csc_matrix, A: sp.csr_matrix, cones: Cones) -> tuple[np.ndarray, np.ndarray]:
    """Column and row scalings that bring every column of ``[P; A]`` and every row of
    ``A`` near unit infinity norm (one scaling per second-order cone, its mean)."""
    d, r = np.ones(P.shape[0]), np.ones(A.shape[0])
    abs_p, abs_a = abs(P), abs(A).tocsr()
    for _ in range(RUIZ_PASSES):
        pd = abs_p.multiply(d[:, None]).multiply(d[None, :])
        ad = sp.csr_matrix(abs_a.multiply(r[:, None]).multiply(d[None, :]))
        cols = np.maximum(_col_max(pd), _col_max(ad))
        row = np.asarray(ad.max(axis=1).todense()).reshape(-1)
        start = cones.zero + cones.nonneg
        for size in cones.soc:
            row[start : start + size] = row[start : start + size].mean()
            start += size
        d = d * np.clip(1.0 / np.sqrt(np.where(cols > 0, cols, 1.0)), *SCALE_BOUNDS)
        r = r * np.clip(1.0 / np.sqrt(np.where(row > 0, row, 1.0)), *SCALE_BOUNDS)
    return np.clip(d, *SCALE_BOUNDS), np.clip(r, *SCALE_BOUNDS)


def _col_max(m: sp.spmatrix) -> np.ndarray:
    return np.asarray(m.max(axis=0).todense()).reshape(-1)


def _residuals(
    pr: Problem, x: np.ndarray, y: np.ndarray, z: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``Px``, and the dual, equality and cone residuals."""
    px = pr.P @ x
    rx = px + pr.q + pr.transposed(y, z)
    return px, rx, pr.E @ x - pr.b_e, pr.G @ x + s - pr.h


def _start(pr: Problem, kkt: Kkt) -> Point:
    """The least-squares start with ``W = I``, each of ``s`` and ``z`` shifted into the
    cone's interior where it is not well inside."""
    cones = pr.cones
    ones = Scaling(
        np.ones(cones.nonneg), [(1.0, unit(Cones(0, 0, (k,)))) for k in cones.soc], unit(cones)
    )
    kkt.factor(ones)
    x, y, z = kkt.solve(-pr.q, pr.b_e, pr.h)
    s = -z.copy()
    e = unit(cones)
    for v in (s, z):
        lowest = min_eig(v, cones)
        if lowest < 1e-8 * max(1.0, float(np.linalg.norm(v))):
            v += (1.0 - lowest) * e
    return x, y, z, s


def _norm(v: np.ndarray) -> float:
    return float(np.max(np.abs(v), initial=0.0))


@dataclass
class _Measure:
    """How far a point is from optimal, in the equilibrated units."""

    pcost: float
    dcost: float
    r_prim: float
    r_dual: float
    gap: float

    @property
    def worst(self) -> float:
        return max(self.r_prim, self.r_dual, self.gap)


def _measure(
    pr: Problem, point: Point
) -> tuple[_Measure, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The residuals of ``point`` and its measure: relative residuals, and the gap,
    absolute or relative, whichever is smaller (Clarabel's tests)."""
    x, y, z, s = point
    px, rx, ry, rz = _residuals(pr, x, y, z, s)
    gap = float(s @ z)
    pcost = 0.5 * float(x @ px) + float(pr.q @ x)
    dcost = pcost + float(y @ ry) + float(z @ rz) - gap
    r_prim = max(_norm(ry), _norm(rz)) / max(1.0, _norm(pr.b_e), _norm(pr.h), _norm(x))
    r_dual = _norm(rx) / max(1.0, _norm(pr.q), _norm(px))
    relgap = abs(pcost - dcost) / max(1.0, min(abs(pcost), abs(dcost)))
    return _Measure(pcost, dcost, r_prim, r_dual, min(gap, relgap)), (rx, ry, rz)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS held to one thread, as Clarabel is: the dense products here are small, and
    OpenBLAS's threads, woken for each, made a solve five to ten times slower in a
    process where another library had started them and the cores were busy
    (measurements: ``benchmarks/README.md``); a batch already runs a book per core."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def solve(pr: Problem, kkt: Kkt, *, eps: float = EPS, max_iters: int = MAX_ITERS) -> Answer:
    """Mehrotra's predictor–corrector from :func:`_start` until the residuals and the gap
    meet ``eps`` (``Solved``); stopped by ``max_iters`` or a failed step, the last point
    is ``AlmostSolved`` where it meets :data:`ACCEPTABLE`, else ``MaxIterations`` or
    ``NumericalError``."""
    with _one_blas_thread():
        return _iterate(pr, kkt, eps=eps, max_iters=max_iters)


def _iterate(pr: Problem, kkt: Kkt, *, eps: float, max_iters: int) -> Answer:
    """:func:`solve`'s iterations."""
    point = _start(pr, kkt)
    e = unit(pr.cones)
    status, it = "MaxIterations", 0
    best, best_measure = point, _measure(pr, point)[0]
    for it in range(max_iters + 1):
        measure, res = _measure(pr, point)
        if measure.worst <= best_measure.worst:
            best, best_measure = point, measure
        elif max(measure.r_prim, measure.r_dual) > STALL * best_measure.worst:
            status = "NumericalError"  # the residuals grow: the steps lost their accuracy
            break
        if measure.worst <= eps:
            status = "Solved"
            break
        if it == max_iters:
            break
        try:  # a step at the cone's edge may overflow: it is caught as not finite
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                step = _step(pr, kkt, point, res, e)
        except (ArithmeticError, np.linalg.LinAlgError, ValueError):
            step = None
        if step is None:
            status = "NumericalError"
            break
        point = step
    if status != "Solved" and best_measure.worst <= ACCEPTABLE:
        status = "AlmostSolved"
    return _answer(pr, best, best_measure, status, it)


def _answer(pr: Problem, point: Point, measure: _Measure, status: str, iterations: int) -> Answer:
    """``point`` in the program's own units (the equilibration undone)."""
    x, y, z, s = point
    r = pr.row_scale
    return Answer(
        x=pr.col_scale * x,
        z=r * np.concatenate([y, z]) / pr.cost,
        s=np.concatenate([np.zeros(len(y)), s]) / r,
        status=status,
        obj_val=measure.pcost / pr.cost,
        obj_val_dual=measure.dcost / pr.cost,
        r_prim=measure.r_prim,
        r_dual=measure.r_dual,
        gap=measure.gap,
        iterations=iterations,
    )


def _step(
    pr: Problem,
    kkt: Kkt,
    point: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    res: tuple[np.ndarray, np.ndarray, np.ndarray],
    e: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """One predictor–corrector step from ``point``; ``None`` where it is not finite."""
    cones = pr.cones
    x, y, z, s = point
    rx, ry, rz = res
    w = nt_scaling(s, z, cones)
    kkt.factor(w)
    lam = w.lam
    mu = float(lam @ lam) / cones.degree

    def direction(rs: np.ndarray) -> tuple[np.ndarray, ...]:
        v = jordan_solve(lam, rs, cones)  # λ ∘ (W dz + W⁻¹ ds) = rs
        wv = w.apply(v, cones)
        dx, dy, dz = kkt.solve(-rx, -ry, -rz - wv)
        ds = w.apply(v - w.apply(dz, cones), cones)
        return dx, dy, dz, ds

    dx, dy, dz, ds = direction(-jordan(lam, lam, cones))
    alpha = min(1.0, max_step(s, ds, cones), max_step(z, dz, cones))
    shrunk = float((s + alpha * ds) @ (z + alpha * dz)) / max(float(s @ z), 1e-300)
    sigma = min(1.0, max(0.0, shrunk)) ** 3
    cross = jordan(w.apply(ds, cones, inverse=True), w.apply(dz, cones), cones)
    dx, dy, dz, ds = direction(-jordan(lam, lam, cones) + sigma * mu * e - cross)
    alpha = min(1.0, STEP * min(max_step(s, ds, cones), max_step(z, dz, cones)))
    out = (x + alpha * dx, y + alpha * dy, z + alpha * dz, s + alpha * ds)
    if not all(np.isfinite(v).all() for v in out):
        return None
    return out


class SparseKkt:
    """The Newton system factored whole with SuperLU, statically regularized, then
    refined against the exact system: the reference the structured solve is held to."""

    def __init__(self, pr: Problem, *, delta: float = 1e-9, refine: int = 3) -> None:
        self.pr, self.delta, self.refine = pr, delta, refine
        self._lu: spla.SuperLU | None = None
        self._w2: sp.csc_matrix | None = None

    def _w_squared(self, w: Scaling) -> sp.csc_matrix:
        """``W²`` over the cone rows, each second-order cone's block dense."""
        blocks: list[sp.spmatrix] = [sp.diags(w.d * w.d)]
        for eta, wbar in w.soc:
            size = len(wbar)
            wm = eta * (2.0 * np.outer(wbar, wbar) - np.diag(_jay(np.ones(size))))
            blocks.append(sp.csc_matrix(wm @ wm))
        return sp.block_diag(blocks, format="csc")

    def factor(self, scaling: Scaling) -> None:
        pr, d = self.pr, self.delta
        n, me, mg = pr.P.shape[0], pr.E.shape[0], pr.G.shape[0]
        self._w2 = self._w_squared(scaling)
        k = sp.bmat(
            [
                [pr.P + d * sp.identity(n), pr.E.T, pr.G.T],
                [pr.E, -d * sp.identity(me), None],
                [pr.G, None, -self._w2 - d * sp.identity(mg)],
            ],
            format="csc",
        )
        self._lu = spla.splu(k)

    def _apply(self, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
        pr = self.pr
        assert self._w2 is not None
        return np.concatenate(
            [pr.P @ dx + pr.transposed(dy, dz), pr.E @ dx, pr.G @ dx - self._w2 @ dz]
        )

    def solve(
        self, rx: np.ndarray, ry: np.ndarray, rz: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self._lu is not None
        n, me = len(rx), len(ry)
        rhs = np.concatenate([rx, ry, rz])
        sol = self._lu.solve(rhs)
        for _ in range(self.refine):
            sol = sol + self._lu.solve(rhs - self._apply(sol[:n], sol[n : n + me], sol[n + me :]))
        return sol[:n], sol[n : n + me], sol[n + me :]
