"""The Newton system of :mod:`riskopt.optimizer.ipm` solved by the gate program's structure.

Most rows of the program touch one name's few columns (its box, its ``a ≥ ±h`` rows,
a per-name cap and its slack, ``h = M w`` over its sleeves): those are *local*. The
columns they connect form small groups (a name's weight, its ``|h|``, its slacks), and
the local rows' part of the Newton system is block diagonal over the groups, each block
a few columns wide. Everything else couples the groups: the wide rows (the book's
sums, sectors, the factor exposures), columns the objective couples (the factor
block) and each second-order cone's rank-two part. Those are few, so the system is
solved by eliminating the groups (a batched dense inverse per group size) and
factoring the small dense Schur complement of what couples them; iterative refinement
against the exact system makes up for the static regularization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from riskopt.optimizer.ipm import Problem, Scaling, _jay
from riskopt.optimizer.structure import SolverFailed

SMALL_ROW = 8
"""Rows with at most this many entries may be local (join their columns' group)."""
GROUP_CAP = 48
"""The most unknowns a group may have: a component above it gives up its widest rows."""
COUPLING_CAP = 2_000
"""The most coupling unknowns the dense Schur complement is formed for: a program with
more does not fit the structure (its solve goes to Clarabel)."""
DELTA = 1e-12
"""Static regularization: ``+δ`` on the columns, ``−δ`` on the equality rows."""
REFINE = 10
"""Refinement steps at most, each against the exact (unregularized) system."""
REFINE_TOLERANCE = 1e-13
"""Refinement stops once the residual is this small relative to the right-hand side."""


class Unstructured(SolverFailed):
    """The program does not fit the per-group + coupling structure."""


def _row_of(m: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))


@dataclass
class _Roles:
    """Which columns are global, the group of each other column, and which rows of ``E``
    and ``G`` are local (in a group) or coupling (in the Schur complement)."""

    group: np.ndarray
    """Per column, its group (-1: global)."""
    local_e: np.ndarray
    local_g: np.ndarray


def _roles(pr: Problem) -> _Roles:
    """Groups by the connected components of the small rows over the non-global columns;
    rows of a component above :data:`GROUP_CAP` are made coupling, widest first."""
    n = pr.P.shape[0]
    p = pr.P.tocoo()
    glob = np.zeros(n, dtype=bool)
    glob[p.row[p.row != p.col]] = True
    rows = sp.vstack([pr.E, pr.G], format="csr")
    nnz = np.diff(rows.indptr)
    small = nnz <= SMALL_ROW
    for _ in range(SMALL_ROW):
        labels, sizes = _components(rows, small, glob, n)
        over = sizes[labels] > GROUP_CAP
        if not over.any():
            break
        touched = np.zeros(rows.shape[0], dtype=bool)
        np.logical_or.at(touched, _row_of(rows), over[rows.indices] & ~glob[rows.indices])
        widest = (nnz == nnz[touched & small].max()) & touched & small
        small &= ~widest
    else:
        raise Unstructured("groups stay above their cap")
    group = np.where(glob, -1, labels)
    on_local = np.zeros(rows.shape[0], dtype=bool)
    np.logical_or.at(on_local, _row_of(rows), ~glob[rows.indices])
    local = small & on_local
    me = pr.E.shape[0]
    return _Roles(group, local[:me], local[me:])


def _components(
    rows: sp.csr_matrix, small: np.ndarray, glob: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the non-global columns joined by the small rows, and
    each component's size."""
    row = _row_of(rows)
    keep = small[row] & ~glob[rows.indices]
    r, c = row[keep], rows.indices[keep]
    first = np.full(rows.shape[0], -1)
    first[r[::-1]] = c[::-1]  # each row's first kept column
    graph = sp.coo_matrix((np.ones(len(r)), (first[r], c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels, np.bincount(labels)


@dataclass
class _Unknowns:
    """Where each column, equality row, coupling cone row and cone correction sits among
    the unknowns: the groups' first (contiguous, by size), the coupling ones last."""

    col: np.ndarray
    eq: np.ndarray
    aug: np.ndarray
    """Per row of ``G``, its unknown (-1: local, reduced into its group)."""
    soc: np.ndarray
    """Per second-order cone, its two correction unknowns."""
    n_local: int
    total: int
    gstart: np.ndarray
    """Where each group's unknowns start (and, last, ``n_local``)."""


def _group_of_rows(rows: sp.csr_matrix, which: np.ndarray, group: np.ndarray) -> np.ndarray:
    """The group of each of ``rows[which]``: that of its first column in a group."""
    part = rows[which]
    row = _row_of(part)
    on_group = group[part.indices] >= 0
    out = np.full(len(which), -1)
    out[row[on_group][::-1]] = group[part.indices[on_group]][::-1]
    return out


def _unknowns(pr: Problem, roles: _Roles) -> _Unknowns:
    """Number the unknowns: group members (columns, then local rows) sorted by group size,
    then the coupling ones."""
    n, me, mg = pr.P.shape[0], pr.E.shape[0], pr.G.shape[0]
    group = roles.group
    cols = np.flatnonzero(group >= 0)
    e_rows, g_rows = np.flatnonzero(roles.local_e), np.flatnonzero(roles.local_g)
    item_group = np.concatenate(
        [group[cols], _group_of_rows(pr.E, e_rows, group), _group_of_rows(pr.G, g_rows, group)]
    )
    size = np.bincount(item_group)
    order = np.lexsort((np.arange(len(item_group)), item_group, size[item_group]))
    position = np.empty(len(order), dtype=int)
    position[order] = np.arange(len(order))
    n_local = len(order)
    col, eq, aug = np.full(n, -1), np.full(me, -1), np.full(mg, -1)
    col[cols] = position[: len(cols)]
    eq[e_rows] = position[len(cols) : len(cols) + len(e_rows)]
    aug[g_rows] = position[len(cols) + len(e_rows) :]
    nxt = n_local
    for at, where in ((col, group < 0), (eq, ~roles.local_e), (aug, ~roles.local_g)):
        chosen = np.flatnonzero(where)
        at[chosen] = nxt + np.arange(len(chosen))
        nxt += len(chosen)
    soc = nxt + np.arange(2 * len(pr.cones.soc)).reshape(-1, 2)
    nxt += soc.size
    if nxt - n_local > COUPLING_CAP:
        raise Unstructured(f"{nxt - n_local} coupling unknowns (at most {COUPLING_CAP})")
    ordered = item_group[order]
    gstart = np.concatenate([[0], np.flatnonzero(np.diff(ordered)) + 1, [n_local]])
    return _Unknowns(col, eq, aug, soc, n_local, nxt, gstart.astype(np.int64))


def _both(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries at ``(r, c)`` and at ``(c, r)``."""
    return np.concatenate([r, c]), np.concatenate([c, r])


class StructuredKkt:
    """The :class:`~riskopt.optimizer.ipm.Kkt` of a program, solved by its groups and the
    dense Schur complement of its coupling unknowns (module docstring)."""

    def __init__(self, pr: Problem) -> None:
        # numba loads here, not with the package: a process that never takes this
        # solver never pays its import.
        from riskopt.optimizer import structured_kernels

        self._kernels = structured_kernels
        self.pr = pr
        self.roles = roles = _roles(pr)
        self.u = u = _unknowns(pr, roles)
        self._static_terms(pr, u)
        self._soc_rows = self._cone_rows(pr)
        self._scaling: Scaling | None = None
        self._soc_scaling: list[tuple[float, np.ndarray]] = []

    def _cone_rows(self, pr: Problem) -> list[sp.csr_matrix]:
        """Each second-order cone's rows of ``G``."""
        start = pr.cones.nonneg
        out = []
        for size in pr.cones.soc:
            out.append(pr.G[start : start + size])
            start += size
        return out

    def _static_terms(self, pr: Problem, u: _Unknowns) -> None:
        """The positions of every term of the reduced system, in a fixed order, and how
        they sum into its entries."""
        p, e, g = pr.P.tocoo(), pr.E.tocoo(), pr.G.tocoo()
        cols = u.col
        e_r, e_c = _both(u.eq[e.row], cols[e.col])
        g_r, g_c = _both(u.aug[g.row], cols[g.col])
        parts = [
            (cols[p.row], cols[p.col], p.data),  # P
            (cols, cols, np.full(len(cols), DELTA)),  # +δ
            (e_r, e_c, np.concatenate([e.data, e.data])),  # E and Eᵀ
            (u.eq, u.eq, np.full(len(u.eq), -DELTA)),  # −δ
            (g_r, g_c, np.concatenate([g.data, g.data])),  # G and Gᵀ
        ]
        dyn_r, dyn_c = [u.aug], [u.aug]  # −W² (its diagonal part) − δ
        self._soc_cols = []
        for k, rows in enumerate(self._cone_rows(pr)):
            touched = np.unique(rows.indices)
            self._soc_cols.append(touched)
            t0, t1 = u.soc[k]
            for t in (t0, t1):
                r, c = _both(np.full(len(touched), t), cols[touched])
                dyn_r.append(r)
                dyn_c.append(c)
            dyn_r.append(np.array([t0, t0, t1, t1]))
            dyn_c.append(np.array([t0, t1, t0, t1]))
        rows_all = np.concatenate([x[0] for x in parts] + dyn_r)
        cols_all = np.concatenate([x[1] for x in parts] + dyn_c)
        static_values = np.concatenate([x[2] for x in parts])
        keys, inverse = np.unique(rows_all * u.total + cols_all, return_inverse=True)
        count = len(static_values)
        self._static_data = np.bincount(inverse[:count], static_values, minlength=len(keys))
        self._dynamic_at = inverse[count:]
        self._entry_r, self._entry_c = keys // u.total, keys % u.total
        self._place()

    def _place(self) -> None:
        """The reduced system's CSR pattern (its entries are sorted by row, then column),
        each group's place among the factors, and the coupling block's entries."""
        u, r, c = self.u, self._entry_r, self._entry_c
        nl = u.n_local
        self._indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=u.total))])
        self._indices = c.astype(np.int64)
        sizes = np.diff(u.gstart)
        self._offset = np.concatenate([[0], np.cumsum(sizes * sizes)]).astype(np.int64)
        self._factors = np.zeros(int(self._offset[-1]))
        self._pivots = np.zeros(nl, dtype=np.int64)
        self._qq = np.flatnonzero((r >= nl) & (c >= nl))
        rows = np.unique(r[(r < nl) & (c >= nl)])  # the groups' rows with coupling entries
        self._touched = np.full(nl, -1, dtype=np.int64)
        self._touched[rows] = np.arange(len(rows))
        self._n_touched = len(rows)

    def _weights(self, w: Scaling) -> np.ndarray:
        """Per row of ``G``, the weight of its reduced term: ``1/d²`` on the orthant,
        ``η⁻²`` on a second-order cone (whose rank-two rest is its correction)."""
        parts = [1.0 / (w.d * w.d)]
        for (eta, _), size in zip(w.soc, self.pr.cones.soc, strict=True):
            parts.append(np.full(size, eta**-2))
        return np.concatenate(parts)

    def _corrections(self, w: Scaling) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
        """Per cone, ``Gᵀu`` and ``Gᵀv`` on its columns, ``η²`` and ``β = vᵀv``, with
        ``W⁻² = η⁻²(I + 4β uuᵀ − 2uvᵀ − 2vuᵀ)`` and ``u = Jv``."""
        out = []
        for (eta, v), rows, touched in zip(w.soc, self._soc_rows, self._soc_cols, strict=True):
            gu = np.asarray(rows.T @ _jay(v))[touched]
            gv = np.asarray(rows.T @ v)[touched]
            out.append((gu, gv, eta * eta, float(v @ v)))
        return out

    def factor(self, scaling: Scaling) -> None:
        """The groups' inverses and the Schur complement's LU for this scaling."""
        self._scaling = scaling
        self._soc_scaling = scaling.soc
        omega = self._weights(scaling)
        corr = self._corrections(scaling)
        dynamic = [-1.0 / omega - DELTA]
        for gu, gv, eta2, beta in corr:
            dynamic += [gu, gu, gv, gv, np.array([0.0, eta2 / 2, eta2 / 2, eta2 * beta])]
        data = self._static_data.copy()
        data[self._dynamic_at] += np.concatenate(dynamic)  # each at an entry of its own
        nl, nq = self.u.n_local, self.u.total - self.u.n_local
        schur = np.zeros((nq, nq))
        schur[self._entry_r[self._qq] - nl, self._entry_c[self._qq] - nl] = data[self._qq]
        coupling = np.zeros((self._n_touched, nq))  # filled by the kernel
        solved = np.zeros_like(coupling)
        self._data = data
        self._kernels.factor_groups(
            self.u.gstart,
            self._indptr,
            self._indices,
            data,
            nl,
            self._pivots,
            self._factors,
            self._offset,
            self._touched,
            coupling,
            solved,
        )
        schur -= coupling.T @ solved
        self._lu = sla.lu_factor(schur, check_finite=True)

    def _groups_solve(self, x: np.ndarray) -> np.ndarray:
        """``K_LL⁻¹ x`` group by group."""
        out = np.array(x, dtype=float)
        self._kernels.solve_groups(self.u.gstart, self._pivots, self._factors, self._offset, out)
        return out

    def _solve_once(
        self, rx: np.ndarray, ry: np.ndarray, rz: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One solve of the regularized system, reduced and back."""
        u, pr = self.u, self.pr
        rhs = np.zeros(u.total)
        rhs[u.col] = rx
        rhs[u.eq] = ry
        rhs[u.aug] = rz
        start = pr.cones.nonneg
        for k, ((_, v), size) in enumerate(zip(self._soc_scaling, pr.cones.soc, strict=True)):
            part = rz[start : start + size]
            rhs[u.soc[k]] = [_jay(v) @ part, v @ part]
            start += size
        nl = u.n_local
        y_l = self._groups_solve(rhs[:nl])
        coupled = np.empty(u.total - nl)
        self._kernels.coupling_t_times(self._indptr, self._indices, self._data, nl, y_l, coupled)
        x_q = sla.lu_solve(self._lu, rhs[nl:] - coupled)
        back = np.empty(nl)
        self._kernels.coupling_times(self._indptr, self._indices, self._data, nl, x_q, back)
        sol = np.concatenate([y_l - self._groups_solve(back), x_q])
        dx, dy, dz = sol[u.col], sol[u.eq], sol[u.aug]
        start = pr.cones.nonneg
        for k, ((_, v), size) in enumerate(zip(self._soc_scaling, pr.cones.soc, strict=True)):
            t0, t1 = sol[u.soc[k]]
            dz[start : start + size] += t0 * _jay(v) + t1 * v
            start += size
        return dx, dy, dz

    def _apply(
        self, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact system's product: ``(P dx + Eᵀdy + Gᵀdz, E dx, G dx − W² dz)``."""
        pr, w = self.pr, self._scaling
        assert w is not None
        w2 = w.apply(w.apply(dz, pr.cones), pr.cones)
        return pr.P @ dx + pr.transposed(dy, dz), pr.E @ dx, pr.G @ dx - w2

    def solve(
        self, rx: np.ndarray, ry: np.ndarray, rz: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The regularized solve, refined against the exact system; the most accurate of the
        refined solutions is returned (a step that made it worse is dropped)."""
        dx, dy, dz = self._solve_once(rx, ry, rz)
        target = REFINE_TOLERANCE * (
            1.0 + max(np.abs(rx).max(), np.abs(ry).max(initial=0.0), np.abs(rz).max())
        )
        best, last = (dx, dy, dz), np.inf
        for _ in range(REFINE):
            ax, ay, az = self._apply(dx, dy, dz)
            ex, ey, ez = rx - ax, ry - ay, rz - az
            error = max(np.abs(ex).max(), np.abs(ey).max(initial=0.0), np.abs(ez).max())
            if error >= last:
                break  # a refinement step that made it worse is not taken
            best, last = (dx, dy, dz), error
            if error <= target:
                break
            ex, ey, ez = self._solve_once(ex, ey, ez)
            dx, dy, dz = dx + ex, dy + ey, dz + ez
        return best
