"""Compiled kernels of the structured Newton solve: each group's LU and its part of
the Schur complement, and the solves with them.

A group is a few to a few dozen unknowns, and there are tens of thousands of them: one
loop over them, compiled by numba (cached on disk, so a process pays the compile once
per install), costs what the arithmetic costs, where NumPy calls cost microseconds each.
The reduced system is given as one CSR matrix ``K`` (both triangles) whose first
``n_local`` rows and columns are the groups' unknowns, contiguous per group.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _lu(block: np.ndarray, piv: np.ndarray) -> None:  # pragma: no cover - compiled
    """``P block = L U`` in place, with partial pivoting (``L`` unit lower below the
    diagonal, ``U`` on and above it; ``piv[j]`` the row swapped with ``j``). The blocks
    are quasi-definite, which factor without pivoting only in exact arithmetic: a
    column with no objective term has a pivot of the regularization's size."""
    s = block.shape[0]
    for j in range(s):
        best, at = abs(block[j, j]), j
        for i in range(j + 1, s):
            if abs(block[i, j]) > best:
                best, at = abs(block[i, j]), i
        piv[j] = at
        if at != j:
            for k in range(s):
                block[j, k], block[at, k] = block[at, k], block[j, k]
        d = block[j, j]
        if d == 0.0:
            continue
        for i in range(j + 1, s):
            f = block[i, j] / d
            block[i, j] = f
            if f != 0.0:
                for k in range(j + 1, s):
                    block[i, k] -= f * block[j, k]


@nb.njit(cache=True)
def _lu_solve(block: np.ndarray, piv: np.ndarray, x: np.ndarray) -> None:  # pragma: no cover
    """``x ← block⁻¹ x`` for each column of ``x`` from :func:`_lu`'s factors."""
    s, m = x.shape
    for c in range(m):
        for j in range(s):
            at = piv[j]
            if at != j:
                x[j, c], x[at, c] = x[at, c], x[j, c]
        for i in range(s):
            v = x[i, c]
            for k in range(i):
                v -= block[i, k] * x[k, c]
            x[i, c] = v
        for i in range(s - 1, -1, -1):
            v = x[i, c]
            for k in range(i + 1, s):
                v -= block[i, k] * x[k, c]
            x[i, c] = v / block[i, i]


@nb.njit(cache=True)
def factor_groups(
    gstart: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_local: int,
    pivots: np.ndarray,
    factors: np.ndarray,
    offset: np.ndarray,
    touched: np.ndarray,
    coupling: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Each group's LU into ``factors`` (row-major from ``offset[g]``; its pivots from
    ``gstart[g]`` in ``pivots``), ``K_LQ`` into ``coupling`` on the rows that touch a
    coupling unknown (``touched[r]``: the row of ``r`` in ``coupling`` and ``out``, -1
    for none), and ``out = K_LL⁻¹ K_LQ`` on those rows: the groups' inverses are needed
    only where ``K_LQ`` has entries."""
    widest = np.max(gstart[1:] - gstart[:-1]) if len(gstart) > 1 else 0
    column = np.empty((widest, 1))
    for g in range(len(gstart) - 1):
        a, b = gstart[g], gstart[g + 1]
        s = b - a
        block = factors[offset[g] : offset[g] + s * s].reshape((s, s))
        block[:] = 0.0
        for r in range(a, b):
            for p in range(indptr[r], indptr[r + 1]):
                c = indices[p]
                if c < n_local:
                    block[r - a, c - a] = data[p]
                else:
                    coupling[touched[r], c - n_local] = data[p]
        _lu(block, pivots[a:b])
        unit = column[:s]
        for j in range(s):
            tj = touched[a + j]
            if tj < 0:
                continue
            unit[:, 0] = 0.0
            unit[j, 0] = 1.0
            _lu_solve(block, pivots[a:b], unit)  # column j of the inverse
            for i in range(s):
                ti = touched[a + i]
                if ti >= 0 and unit[i, 0] != 0.0:
                    f = unit[i, 0]
                    for q in range(out.shape[1]):
                        out[ti, q] += f * coupling[tj, q]


@nb.njit(cache=True)
def solve_groups(
    gstart: np.ndarray, pivots: np.ndarray, factors: np.ndarray, offset: np.ndarray, x: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``x ← K_LL⁻¹ x`` group by group, in place."""
    for g in range(len(gstart) - 1):
        a, b = gstart[g], gstart[g + 1]
        s = b - a
        block = factors[offset[g] : offset[g] + s * s].reshape((s, s))
        part = x[a:b].reshape((s, 1))
        _lu_solve(block, pivots[a:b], part)


@nb.njit(cache=True)
def coupling_times(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_local: int,
    x_q: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out = K_LQ x_q`` (``out`` over the groups' unknowns)."""
    for r in range(n_local):
        acc = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            if c >= n_local:
                acc += data[p] * x_q[c - n_local]
        out[r] = acc


@nb.njit(cache=True)
def coupling_t_times(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_local: int,
    y: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out = K_LQᵀ y`` (``out`` over the coupling unknowns)."""
    out[:] = 0.0
    for r in range(n_local):
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            if c >= n_local:
                out[c - n_local] += data[p] * y[r]
