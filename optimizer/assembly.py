"""The gate's conic program assembled for Clarabel with scipy.sparse: columns, rows of
each cone, the objective and the exact reductions (left-out rows, substituted columns)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from riskopt.constraints.base import Transform
from riskopt.constraints.transforms import (
    TransformRule,
    reads_pairs,
    rule,
    shifted,
    transform_bounds,
)
from riskopt.optimizer.structure import OBJECTIVE_SCALE, Structure, Values, _digest

SLACK_COST = 0.1
"""The objective coefficient of every slack column Clarabel sees. Each slack is written
as ``s = u·s'`` with ``u = SLACK_COST / (scale·ρ)``, in its block's rows and in ``s' ≥ 0``
alike: an exact change of variable that leaves the rows' multipliers as they are (the
slacks are multiplied back by ``u``). With slacks in weight, a tier's penalty dwarfed
the rest of ``q`` and Clarabel spent its first iterations shedding that scale
(measurements: ``benchmarks/README.md``)."""


NARROW_SUMS_BELOW = 1_500
"""Names below which narrow shared sums are written too: a sector's, country's or
cluster's net rows above and below (and its gross rows, where two blocks read them) read
one sum ``y_g = Σ_{i∈g} h_i`` instead of each repeating the group's members. Faster for
small books, mostly slower above (the fill-reducing ordering decides, which Python cannot
steer; measurements: ``benchmarks/README.md``); wide rows are shared at every size."""


Coef = tuple[np.ndarray, np.ndarray, np.ndarray] | np.ndarray | float


def _triplets(
    matrix: sp.spmatrix | np.ndarray, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO triplets of ``scale · matrix`` (a CSR matrix's read off its arrays)."""
    if isinstance(matrix, sp.csr_matrix):
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        return rows, matrix.indices, scale * matrix.data.astype(float)
    coo = sp.coo_matrix(matrix)
    return coo.row, coo.col, scale * coo.data.astype(float)


class _Rows:
    """Rows of ``A x + s = b`` gathered as COO triplets, one cone at a time."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.b: list[np.ndarray] = []
        self.m = 0

    def add(self, b: np.ndarray, *parts: tuple[int, Coef]) -> slice:
        """Append ``len(b)`` rows; each part is (first column, coefficients): COO triplets
        ``(rows, columns, values)`` local to the part, a vector (a diagonal) or a scalar
        (that times the identity)."""
        b = np.asarray(b, dtype=float).reshape(-1)
        r = len(b)
        for col, coef in parts:
            if isinstance(coef, tuple):
                local_rows, local_cols, vals = coef
                self.rows.append(local_rows + self.m)
                self.cols.append(local_cols + col)
                self.vals.append(vals)
            else:
                diag = np.asarray(coef, dtype=float)
                self.rows.append(np.arange(self.m, self.m + r))
                self.cols.append(np.arange(col, col + r))
                self.vals.append(diag.copy() if diag.shape == (r,) else np.full(r, diag))
        self.b.append(b)
        rows = slice(self.m, self.m + r)
        self.m += r
        return rows

    def triplets(self, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, values) with the rows shifted by ``offset``."""
        if not self.rows:
            return np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0)
        return (
            np.concatenate(self.rows) + offset,
            np.concatenate(self.cols),
            np.concatenate(self.vals),
        )


def _sum_rows(rows: _Rows, c: sp.csr_matrix, columns: np.ndarray, first: int) -> int:
    """Append ``y_r − C_r x = 0`` for each row ``r`` of ``y`` that has a column (``columns``,
    -1 for none; ``x`` from column ``first``); returns how many rows that is."""
    read = np.flatnonzero(columns >= 0)
    if len(read):
        own = (np.arange(len(read)), columns[read], np.ones(len(read)))
        c = c if len(read) == c.shape[0] else c[read]  # indexing a CSR matrix is slow
        rows.add(np.zeros(len(read)), (0, own), (first, _triplets(c, -1.0)))
    return len(read)


def redundant_rows(
    limit_a: sp.csr_matrix | None,
    transform: Transform,
    rhs: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """Rows of ``A · T(h) ≤ rhs`` that the hard box ``lo ≤ h ≤ hi`` already implies.

    Such a row can never bind, so its slack is zero and its multiplier may be taken as zero
    in a KKT point: leaving it out of the program changes neither the solution nor the
    attribution, and on a book that sits inside its limits most per-name rows go.
    """
    t_lo, t_hi = transform_bounds(transform, lo, hi)
    if limit_a is None:
        upper = t_hi
    elif transform != "id" or not limit_a.nnz or limit_a.data.min() >= 0:
        upper = np.asarray(limit_a @ t_hi).reshape(-1)  # A ≥ 0: the max is at T's max
    elif limit_a.data.max() <= 0:
        upper = np.asarray(limit_a @ t_lo).reshape(-1)  # A ≤ 0: at T's min
    else:
        upper = np.asarray(limit_a.maximum(0) @ t_hi + limit_a.minimum(0) @ t_lo).reshape(-1)
    return np.asarray(upper <= rhs)


@dataclass(frozen=True)
class SharedSum:
    """``y = C x``: row sums that several policy blocks read, written once.

    The book's gross, net (above and below), long and short caps all read ``Σh`` or
    ``Σ|h|``. Each such row touches every name, so each is a dense row of the KKT system,
    refactorized on every interior-point iteration. Written once as ``y = C x``, the five
    caps become rows on ``y`` and the KKT system keeps two dense rows instead of five
    (measurements: ``benchmarks/README.md``). A band on a factor whose loadings are dense reads ``f = Bᵀh``,
    which the program has already: its rows need no sum and no dense row at all (a factor
    with sparse loadings, such as an industry, has sparse band rows to begin with).

    Wide rows (each touching half the columns or more) are shared at every size. Sector,
    country and cluster rows are narrow: they are shared below :data:`NARROW_SUMS_BELOW`
    names, where that was measured faster, and not above, where it was mostly slower.
    """

    on: str
    C: sp.csr_matrix
    factor: np.ndarray | None
    """The factor of each row, where every row is a factor's loadings."""


def shared_sums(
    blocks: tuple[tuple[str, Transform, str, int, sp.csr_matrix | None], ...],
    loadings: np.ndarray | None,
    *,
    narrow: bool = False,
) -> tuple[list[SharedSum], list[tuple[int, float] | None]]:
    """The shared sums of a program's blocks, and each block's (sum, sign) or ``None``.

    A block reads a sum when its ``A`` is ``±C``. A sum is written when its rows are
    factor loadings, or when two blocks or more read it and its rows are wide (or
    ``narrow`` is set).
    """
    keyed: dict[tuple[object, ...], int] = {}
    found: list[tuple[str, sp.csr_matrix]] = []
    of_block: list[tuple[int, float] | None] = []
    for _, transform, on, _, a in blocks:
        if a is None or transform == "vol" or shifted(on) or not (narrow or _wide(a)):
            of_block.append(None)
            continue
        if not (a.has_canonical_format and a.data.all()):  # summed, sorted, no zeros
            a = sp.csr_matrix(a, copy=True)
            a.sum_duplicates()
            a.eliminate_zeros()
        sign = -1.0 if a.nnz and a.data[0] < 0.0 else 1.0  # A and −A read one sum
        data = sign * a.data
        key = (on, a.shape, _digest(a.indptr, a.indices, data))
        if key not in keyed:  # a matrix only for each sum found, not for every block
            keyed[key] = len(found)
            found.append((on, sp.csr_matrix((data, a.indices.copy(), a.indptr.copy()), a.shape)))
        of_block.append((keyed[key], sign))
    uses = np.bincount([u[0] for u in of_block if u is not None], minlength=len(found))
    only_id = np.ones(len(found), dtype=bool)
    for (_, transform, *_), use in zip(blocks, of_block, strict=True):
        if use is not None and transform != "id":
            only_id[use[0]] = False
    sums: list[SharedSum] = []
    index: dict[int, tuple[int, float]] = {}
    for j, (on, c) in enumerate(found):
        factor, flip = None, 1.0
        if on == "h" and only_id[j]:  # a band on a factor: its rows are ±(loadings)
            factor = _factor_rows(c, loadings)
            if factor is None and (factor := _factor_rows(-c, loadings)) is not None:
                c, flip = -c, -1.0
        if uses[j] >= 2 or factor is not None:
            index[j] = (len(sums), flip)
            sums.append(SharedSum(on=on, C=c, factor=factor))
    return sums, [
        None if u is None or u[0] not in index else (index[u[0]][0], u[1] * index[u[0]][1])
        for u in of_block
    ]


def _reads_abs(transform: str) -> bool:
    """Whether rows of ``transform`` read the operand's ``|x|`` column (a cost budget's
    linear part does)."""
    return transform == "cost" or (transform != "vol" and bool(rule(transform).aux))


def _wide(a: sp.csr_matrix) -> bool:
    """Whether every row touches half the columns or more."""
    rows = a if isinstance(a, sp.csr_matrix) else sp.csr_matrix(a)
    return bool((np.diff(rows.indptr) * 2 >= a.shape[1]).all())


def _factor_rows(c: sp.csr_matrix, loadings: np.ndarray | None) -> np.ndarray | None:
    """The factor whose loadings each row of ``c`` is, where every row is one."""
    if loadings is None or c.shape[1] != loadings.shape[0] or c.shape[0] > loadings.shape[1]:
        return None
    by_value = {np.ascontiguousarray(column).tobytes(): j for j, column in enumerate(loadings.T)}
    rows = [by_value.get(row.tobytes()) for row in c.toarray()]
    return None if None in rows else np.array(rows, dtype=int)


@dataclass
class Assembly:
    """Clarabel's data for one solve, and where each piece of the answer sits in it."""

    P: sp.csc_matrix
    q: np.ndarray
    A: sp.csc_matrix
    b: np.ndarray
    cones: tuple[int, int, int]
    """Sizes of the zero cone, the non-negative orthant and the second-order cone."""
    w: np.ndarray
    """The column of each pair's weight (a sole pair's is its ticker's)."""
    h: slice
    upper: slice
    lower: slice
    pair_upper: slice
    pair_lower: slice
    """Rows of the pair box, one per pair in :attr:`Structure.shared_pairs`."""
    shared_pairs: np.ndarray
    pairs: int
    blocks: list[tuple[slice, bool, np.ndarray, int]]
    """Per block: its rows of ``A``, whether they are the cone, the rows kept, the first
    slack column."""
    slack_units: list[float]
    """Per block: the weight one unit of its slack column stands for (1 with the slacks
    in weight, else :data:`SLACK_COST` over the scaled penalty)."""
    constant: float
    """``Σ c w̃²`` (unscaled), left out of ``q``."""
    sums: int = 0
    """Rows ``y = C x`` of the shared sums (in the zero cone)."""
    power: int = 0
    """Three-dimensional power cones ``u^{2/3} ≥ |x|`` after the second-order cone."""

    def on_pairs(self, shared: np.ndarray) -> np.ndarray:
        """Per pair, from values of the pairs with rows of their own (0 elsewhere)."""
        out = np.zeros(self.pairs)
        out[self.shared_pairs] = shared
        return out


@dataclass
class _Layout:
    """Where each column of one solve's assembly sits, and which policy rows it keeps."""

    col_w: int
    col_h: int
    col_f: int
    ncols: int
    col_t: int = 0
    keep: list[np.ndarray] = field(default_factory=list)
    """Per block, the rows kept (those the hard box does not already imply)."""
    aux: dict[str, int] = field(default_factory=dict)
    """Per operand, the first column of its epigraph variable ``a ≥ |x|``."""
    power: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)
    """Per traded operand, the first column of ``u ≥ |x|^{3/2}`` and the elements that
    have one (those some row or the objective charges impact on; a power cone each)."""
    sum_h: list[np.ndarray] = field(default_factory=list)
    sum_a: list[np.ndarray] = field(default_factory=list)
    """Per shared sum, the column of each row of ``C x`` and ``C |x|`` (-1: none)."""
    slack: list[int] = field(default_factory=list)
    units: list[float] = field(default_factory=list)


@dataclass
class _Cones:
    """The rows of one assembly by cone, and where the fixed rows sit among them."""

    zero: _Rows = field(default_factory=lambda: _Rows())
    nonneg: _Rows = field(default_factory=lambda: _Rows())
    soc: _Rows = field(default_factory=lambda: _Rows())
    power: _Rows = field(default_factory=lambda: _Rows())
    upper: slice = field(default_factory=lambda: slice(0, 0))
    lower: slice = field(default_factory=lambda: slice(0, 0))
    pair_upper: slice = field(default_factory=lambda: slice(0, 0))
    pair_lower: slice = field(default_factory=lambda: slice(0, 0))
    aux: dict[str, tuple[slice, slice]] = field(default_factory=dict)
    sums: int = 0


class Assembler:
    """The gate's conic program assembled with scipy.sparse and handed to Clarabel.

    Variables ``x = (w, h, f, t, aux…, slacks…)``; Clarabel's form is
    ``min ½xᵀPx + qᵀx  s.t.  Ax + s = b, s ∈ {0}ᵐ¹ × ℝ₊ᵐ² × SOC``. The rows are those of
    :class:`CvxpyProgram` (same scaling), written down directly: no canonicalization, no
    parameter tensor, so a cold solve costs the assembly (milliseconds) plus the solver.
    Three exact reductions make the program smaller than cvxpy's: rows the hard box
    already implies are left out (:func:`redundant_rows`); one auxiliary ``a ≥ |x|`` serves
    every ``|x|``, ``x⁺`` and ``x⁻``; and columns equal to another up to sign are
    substituted (a pair alone on its ticker is the ticker's weight; a name whose box fixes
    its sign has ``|h_i| = ±h_i``), with the rows that then say nothing. At N = 2,000
    with every family on, the last one takes the KKT system from 26,000 to 17,000 rows.
    Blocks that read the same sums (the book's exposure caps; a small book's group caps)
    read them from one :class:`SharedSum`, and a factor band reads ``f``: fewer dense
    rows, not fewer rows.
    """

    def __init__(self, structure: Structure) -> None:
        self.structure = structure
        s = structure
        self._minus_m = _triplets(s.M, -1.0)
        self._minus_loadings_t = None if s.loadings is None else _triplets(s.loadings.T, -1.0)
        self._minus_chol_t = None if s.chol is None else _triplets(s.chol.T, -1.0)
        self._factor_cov = None if s.chol is None else s.chol @ s.chol.T
        self._sqrt_specific = None if s.specific is None else np.sqrt(s.specific)
        # A pair that is its ticker's only pair, with coefficient one, *is* that ticker's
        # weight: ``w_j = h_i``. Such pairs get no column (nor ``h = M w`` row) of their own.
        by_pair = s.M.tocsc()
        per_pair = np.diff(by_pair.indptr)
        first = np.minimum(by_pair.indptr[:-1], max(by_pair.nnz - 1, 0))
        ticker = by_pair.indices[first] if by_pair.nnz else np.zeros(s.p, dtype=int)
        coefficient = by_pair.data[first] if by_pair.nnz else np.zeros(s.p)
        per_ticker = np.diff(s.M.indptr)
        sole = (per_pair == 1) & (coefficient == 1.0) & (per_ticker[ticker] == 1)
        self._sole_pairs = np.flatnonzero(sole)
        self._sole_tickers = ticker[sole]
        self._sums, self._block_sum = shared_sums(
            s.blocks, s.loadings, narrow=s.n < NARROW_SUMS_BELOW
        )
        self._block_triplets = [None if a is None else _triplets(a) for *_, a in s.blocks]

    def assemble(self, v: Values, *, rescale_slacks: bool = True) -> Assembly:
        """The conic data of one solve (scaled by :data:`OBJECTIVE_SCALE`; each slack in
        units of :data:`SLACK_COST`, or of weight with ``rescale_slacks=False``)."""
        layout = self._layout(v, rescale_slacks=rescale_slacks)
        rows = self._fixed_rows(layout, v)
        block_rows = [
            self._block_rows(layout, v, rows, j) for j in range(len(self.structure.blocks))
        ]
        diag, q = self._objective(layout, v)
        return self._reduced(layout, v, rows, block_rows, diag, q)

    def _layout(self, v: Values, *, rescale_slacks: bool) -> _Layout:
        """The columns of one solve: ``w, h, f, t``, an epigraph column per operand that a
        kept row reads through ``|x|``, the shared sums' columns, then the slacks."""
        s = self.structure
        layout = _Layout(col_w=0, col_h=s.p, col_f=s.p + s.n, ncols=s.p + s.n)
        if self._factor_cov is not None:
            layout.ncols += s.k
        layout.col_t = layout.ncols
        if s.costs:
            layout.ncols += s.n
        for (_, transform, on, m, a), rhs in zip(s.blocks, v.rhs, strict=True):
            if transform == "vol" or on != "h":
                layout.keep.append(np.ones(m, dtype=bool))
            else:
                layout.keep.append(~redundant_rows(a, transform, rhs, v.lo, v.hi))
        # One auxiliary ``a ≥ |x|`` per operand serves every transform: each is
        # ``T(x) = aux · a + base · x`` (its table entry), exact under non-negative ``A``.
        for (_, transform, on, _, _), kept in zip(s.blocks, layout.keep, strict=True):
            if _reads_abs(transform) and kept.any() and on not in layout.aux:
                layout.aux[on] = layout.ncols
                layout.ncols += s.p if reads_pairs(on) else s.n
        for on, elements in self._impacted(v).items():
            layout.power[on] = (layout.ncols, elements)
            layout.ncols += len(elements)
        for j, total in enumerate(self._sums):
            self._sum_columns(layout, j, total)
        # Each block's slack in the solver's units: its column stands for ``unit`` of
        # weight, so that its objective coefficient is SLACK_COST whatever the tier.
        scale = OBJECTIVE_SCALE
        layout.units = [
            SLACK_COST / (scale * rho) if rescale_slacks and rho > 0 else 1.0 for rho in v.rho
        ]
        for kept in layout.keep:
            layout.slack.append(layout.ncols)
            layout.ncols += int(kept.sum())
        return layout

    def _sum_columns(self, layout: _Layout, j: int, total: SharedSum) -> None:
        """Columns of shared sum ``j``: ``y_h = C x`` and ``y_a = C |x|``, one for each row a
        kept row reads (a factor's ``y_h`` is ``f`` itself), -1 for the rest."""
        need_h = np.zeros(total.C.shape[0], dtype=bool)  # rows read as C x ...
        need_a = np.zeros(total.C.shape[0], dtype=bool)  # ... and as C |x|
        for (_, transform, _, _, _), kept, use in zip(
            self.structure.blocks, layout.keep, self._block_sum, strict=True
        ):
            if use is None or use[0] != j:
                continue
            if rule(transform).base:  # id, pos and neg read y_h
                need_h |= kept
            if rule(transform).aux:  # abs, pos and neg read y_a
                need_a |= kept
        columns_h = np.full(len(need_h), -1)
        if total.factor is not None:
            columns_h[need_h] = layout.col_f + total.factor[need_h]
        else:
            columns_h[need_h] = layout.ncols + np.arange(need_h.sum())
            layout.ncols += int(need_h.sum())
        columns_a = np.full(len(need_a), -1)
        columns_a[need_a] = layout.ncols + np.arange(need_a.sum())
        layout.ncols += int(need_a.sum())
        layout.sum_h.append(columns_h)
        layout.sum_a.append(columns_a)

    def _base(self, layout: _Layout, on: str) -> int:
        """The first column of the operand ``on`` (a trade reads the weights it shifts)."""
        return layout.col_w if reads_pairs(on) else layout.col_h

    def _held(self, v: Values, on: str) -> np.ndarray:
        """What the operand ``on`` is measured from: ``h0`` or ``w0`` for a trade, else 0."""
        if shifted(on):
            return v.w0 if reads_pairs(on) else v.h0
        return np.zeros(self.structure.p if reads_pairs(on) else self.structure.n)

    def _fixed_rows(self, layout: _Layout, v: Values) -> _Cones:
        """Every row but the policy blocks': ``h = M w``, ``f = Bᵀh``, the shared sums, the
        hard boxes, the trade sizes of the costs and the epigraph rows ``a ≥ ±x``."""
        s = self.structure
        n, col_h, col_w, col_t = s.n, layout.col_h, layout.col_w, layout.col_t
        rows = _Cones()
        zero, nonneg = rows.zero, rows.nonneg
        zero.add(np.zeros(n), (col_h, 1.0), (col_w, self._minus_m))
        if self._minus_loadings_t is not None:
            zero.add(np.zeros(s.k), (layout.col_f, 1.0), (col_h, self._minus_loadings_t))
        for total, columns_h, columns_a in zip(self._sums, layout.sum_h, layout.sum_a, strict=True):
            # y_h = C x (unless y_h is f itself) and y_a = C |x|: the |x| column exists
            # whenever a kept row reads y_a.
            if total.factor is None:
                rows.sums += _sum_rows(zero, total.C, columns_h, self._base(layout, total.on))
            if (columns_a >= 0).any():
                rows.sums += _sum_rows(zero, total.C, columns_a, layout.aux[total.on])
        rows.upper = nonneg.add(v.hi, (col_h, 1.0))
        rows.lower = nonneg.add(-v.lo, (col_h, -1.0))
        shared = s.shared_pairs
        on_shared = (np.arange(len(shared)), shared, np.ones(len(shared)))
        rows.pair_upper = nonneg.add(v.w_hi[shared], (col_w, on_shared))
        rows.pair_lower = nonneg.add(-v.w_lo[shared], (col_w, (*on_shared[:2], -on_shared[2])))
        if s.costs:
            nonneg.add(v.h0, (col_h, 1.0), (col_t, -1.0))
            nonneg.add(-v.h0, (col_h, -1.0), (col_t, -1.0))
            nonneg.add(np.zeros(n), (col_t, -1.0))
        for on, col in layout.aux.items():
            # a ≥ x and a ≥ −x, x being h − h0 (or w − w0) for a trade: b carries the shift.
            held = self._held(v, on)
            above_b, below_b = held, -held
            base = self._base(layout, on)
            above = nonneg.add(above_b, (base, 1.0), (col, -1.0))
            below = nonneg.add(below_b, (base, -1.0), (col, -1.0))
            rows.aux[on] = (above, below)
        for on, (col_u, elements) in layout.power.items():
            self._power_rows(rows.power, v, on, (col_u, elements), self._base(layout, on))
        return rows

    def _impacted(self, v: Values) -> dict[str, np.ndarray]:
        """Per traded operand, the elements whose impact ``|x|^{3/2}`` some cost budget or
        the objective charges (an element no row charges gets no cone: its ``u`` would be
        a free column)."""
        s = self.structure
        charged: dict[str, np.ndarray] = {}
        blocks = zip(s.blocks, self._block_triplets, strict=True)
        for (_, transform, on, _, _), triplets in blocks:
            if transform != "cost" or triplets is None:
                continue
            size = s.p if reads_pairs(on) else s.n
            columns = triplets[1][(triplets[1] >= size) & (triplets[2] != 0)] - size
            charged[on] = np.union1d(charged.get(on, np.zeros(0, dtype=int)), columns)
        if s.impact:
            charged["trade"] = np.union1d(
                charged.get("trade", np.zeros(0, dtype=int)), np.flatnonzero(v.impact > 0)
            )
        return {on: e.astype(int) for on, e in sorted(charged.items()) if len(e)}

    def _power_rows(
        self, power: _Rows, v: Values, on: str, at: tuple[int, np.ndarray], col_x: int
    ) -> None:
        """``(u_e, 1, x_e − x0_e)`` in the power cone ``u^{2/3} · 1^{1/3} ≥ |x − x0|``, that
        is ``u_e ≥ |x_e − x0_e|^{3/2}``, for each charged element ``e``: three rows each."""
        col_u, elements = at
        count = len(elements)
        j = np.arange(count)
        b = np.zeros((count, 3))
        b[:, 1] = 1.0
        b[:, 2] = -self._held(v, on)[elements]
        minus = -np.ones(count)
        power.add(b.reshape(-1), (col_u, (3 * j, j, minus)), (col_x, (3 * j + 2, elements, minus)))

    def _block_rows(self, layout: _Layout, v: Values, rows: _Cones, j: int) -> tuple[_Rows, slice]:
        """Block ``j``'s rows ``A · T(x) ≤ rhs + u·s'`` and ``s' ≥ 0`` (or the cone's), and
        where they sit."""
        _, transform, on, _, a = self.structure.blocks[j]
        kept, col_s, unit = layout.keep[j], layout.slack[j], layout.units[j]
        if transform == "vol":
            return self._cone_rows(layout, v.rhs[j], rows, col_s, unit)
        if transform == "cost":
            return self._cost_rows(layout, v.rhs[j], rows, j, col_s, unit)
        count = int(kept.sum())
        if not count:
            return rows.nonneg, slice(0, 0)
        r = rule(transform)
        rhs = v.rhs[j][kept]
        if shifted(on) and r.base:  # A · (x − x0): A x0 moves to the right-hand side
            held = self._held(v, on)
            rhs = rhs + r.base * (held if a is None else np.asarray(a @ held))[kept]
        if self._block_sum[j] is not None:
            terms = self._sum_terms(layout, j, kept, r)
        else:
            terms = self._own_terms(layout, j, kept, r)
        span = rows.nonneg.add(rhs, *terms, (col_s, -unit))
        rows.nonneg.add(np.zeros(count), (col_s, -unit))  # s' ≥ 0, in the same units
        return rows.nonneg, span

    def _cost_rows(
        self, layout: _Layout, rhs: np.ndarray, rows: _Cones, j: int, col_s: int, unit: float
    ) -> tuple[_Rows, slice]:
        """A cost budget's rows ``A (κ ∘ a + λ ∘ u) ≤ rhs + u·s'`` and ``s' ≥ 0``, ``a`` and
        ``u`` being its operand's ``|x|`` and ``|x|^{3/2}`` columns."""
        _, _, on, m, _ = self.structure.blocks[j]
        triplets = self._block_triplets[j]
        assert triplets is not None
        rr, c, vals = triplets
        size = self.structure.p if reads_pairs(on) else self.structure.n
        col_u, elements = layout.power.get(on, (0, np.zeros(0, dtype=int)))
        slot = np.full(size, -1)
        slot[elements] = np.arange(len(elements))
        impact = (c >= size) & (vals != 0)
        linear = c < size
        span = rows.nonneg.add(
            np.asarray(rhs, dtype=float),
            (layout.aux[on], (rr[linear], c[linear], vals[linear])),
            (col_u, (rr[impact], slot[c[impact] - size], vals[impact])),
            (col_s, -unit),
        )
        rows.nonneg.add(np.zeros(m), (col_s, -unit))
        return rows.nonneg, span

    def _cone_rows(
        self, layout: _Layout, rhs: np.ndarray, rows: _Cones, col_s: int, unit: float
    ) -> tuple[_Rows, slice]:
        """``‖(Lᵀf, √d ∘ h)‖ ≤ rhs + u·s'`` and ``s' ≥ 0``: the volatility cap's cone."""
        if self._minus_chol_t is None or self._sqrt_specific is None:
            raise ValueError("a volatility cap needs a risk model")
        soc = rows.soc
        span = soc.add(np.asarray(rhs, dtype=float), (col_s, -unit))
        soc.add(np.zeros(self.structure.k), (layout.col_f, self._minus_chol_t))
        soc.add(np.zeros(self.structure.n), (layout.col_h, -self._sqrt_specific))
        rows.nonneg.add(np.zeros(1), (col_s, -unit))
        return soc, span

    def _sum_terms(
        self, layout: _Layout, j: int, kept: np.ndarray, r: TransformRule
    ) -> list[tuple[int, Coef]]:
        """Block ``j``'s rows on its shared sum: ``aux · y_a + base · (±y_h)``."""
        use = self._block_sum[j]
        assert use is not None
        total, sign = use
        count = int(kept.sum())
        rr = np.arange(count)
        terms: list[tuple[int, Coef]] = []
        if r.aux:
            terms.append((0, (rr, layout.sum_a[total][kept], np.full(count, r.aux))))
        if r.base:
            terms.append((0, (rr, layout.sum_h[total][kept], np.full(count, r.base * sign))))
        return terms

    def _own_terms(
        self, layout: _Layout, j: int, kept: np.ndarray, r: TransformRule
    ) -> list[tuple[int, Coef]]:
        """Block ``j``'s kept rows of ``A`` (renumbered), on the epigraph column of its
        operand (times ``aux``) and on the operand itself (times ``base``)."""
        _, _, on, m, _ = self.structure.blocks[j]
        triplets = self._block_triplets[j]
        count = int(kept.sum())
        if triplets is not None:
            rr, c, vals = triplets
            if count < m:  # the kept rows, renumbered
                live = kept[rr]
                rr, c, vals = (np.cumsum(kept) - 1)[rr[live]], c[live], vals[live]
        else:  # elementwise rows: row j is the j-th kept name
            rr, c, vals = np.arange(count), np.flatnonzero(kept), np.ones(count)
        terms: list[tuple[int, Coef]] = []
        if r.aux:
            terms.append((layout.aux[on], (rr, c, vals if r.aux == 1.0 else r.aux * vals)))
        if r.base:
            terms.append(
                (self._base(layout, on), (rr, c, vals if r.base == 1.0 else r.base * vals))
            )
        return terms

    def _objective(self, layout: _Layout, v: Values) -> tuple[np.ndarray, np.ndarray]:
        """The diagonal of ``P`` and ``q``, per column before the substitutions, scaled."""
        s, scale = self.structure, OBJECTIVE_SCALE
        col_w, col_h, col_t = layout.col_w, layout.col_h, layout.col_t
        diag = np.zeros(layout.ncols)
        diag[col_w : col_w + s.p] = 2.0 * scale * v.c
        diag[col_h : col_h + s.n] += 2.0 * scale * np.maximum(v.specific_weight, 0.0)
        q = np.zeros(layout.ncols)
        q[col_w : col_w + s.p] = -2.0 * scale * v.c * v.w_tilde
        if s.costs:
            q[col_t : col_t + s.n] = scale * v.kappa
        if s.impact and "trade" in layout.power:
            col_u, elements = layout.power["trade"]
            q[col_u : col_u + len(elements)] = scale * v.impact[elements]
        for col_s, kept, rho, unit in zip(
            layout.slack, layout.keep, v.rho, layout.units, strict=True
        ):
            q[col_s : col_s + int(kept.sum())] = scale * rho * unit
        return diag, q

    def _substitutions(
        self, layout: _Layout, v: Values, rows: _Cones
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact substitutions: each column's target and the sign it is taken with, and the
        rows that then say nothing.

        A sole pair's ``w_j`` is ``h_i`` (its ``h = M w`` row goes); a name whose hard box
        fixes its sign has ``|h_i| = ±h_i`` (its two ``a ≥ ±h`` rows go); a sole pair's
        ``|w_j|`` is then ``|h_i|`` (its two rows go too).
        """
        target = np.arange(layout.ncols)
        flip = np.ones(layout.ncols)
        sole, ticker = self._sole_pairs, self._sole_tickers
        target[layout.col_w + sole] = layout.col_h + ticker
        drop = [ticker]
        aux, zero_m = layout.aux, rows.zero.m
        if "h" in aux:
            signed = np.flatnonzero((v.lo >= 0.0) | (v.hi <= 0.0))
            target[aux["h"] + signed] = layout.col_h + signed
            flip[aux["h"] + signed] = np.where(v.lo[signed] >= 0.0, 1.0, -1.0)
            above, below = rows.aux["h"]
            drop += [zero_m + above.start + signed, zero_m + below.start + signed]
            if "w" in aux:
                target[aux["w"] + sole] = target[aux["h"] + ticker]
                flip[aux["w"] + sole] = flip[aux["h"] + ticker]
                above, below = rows.aux["w"]
                drop += [zero_m + above.start + sole, zero_m + below.start + sole]
        return target, flip, np.concatenate(drop)

    def _reduced(
        self,
        layout: _Layout,
        v: Values,
        rows: _Cones,
        block_rows: list[tuple[_Rows, slice]],
        diag: np.ndarray,
        q: np.ndarray,
    ) -> Assembly:
        """The assembly with the substitutions made: ``A``, ``b``, ``P``, ``q`` over the
        columns and rows that are left, and where each piece of the answer sits."""
        s = self.structure
        cones = (rows.zero, rows.nonneg, rows.soc, rows.power)
        zero, nonneg, soc, power = cones
        starts = np.cumsum([0, *(r.m for r in cones)])
        offsets = {id(r): int(start) for r, start in zip(cones, starts[:-1], strict=True)}
        parts = [r.triplets(offsets[id(r)]) for r in cones]
        a_rows, a_cols, a_vals = (np.concatenate([part[i] for part in parts]) for i in range(3))
        target, flip, drop = self._substitutions(layout, v, rows)
        before_col = np.concatenate([[0], np.cumsum(target == np.arange(layout.ncols))])
        column = before_col[target]
        kept_row = np.ones(int(starts[-1]), dtype=bool)
        kept_row[drop] = False
        before_row = np.concatenate([[0], np.cumsum(kept_row)])
        live = kept_row[a_rows]
        n_kept = int(before_col[-1])
        A = sp.csc_matrix(
            (a_vals[live] * flip[a_cols[live]], (before_row[a_rows[live]], column[a_cols[live]])),
            shape=(int(before_row[-1]), n_kept),
        )

        def absolute(at: _Rows, span: slice) -> slice:
            start = offsets[id(at)]
            return slice(int(before_row[start + span.start]), int(before_row[start + span.stop]))

        zero_m = int(before_row[zero.m])
        return Assembly(
            P=self._quadratic(v, diag, column, before_col, n_kept),
            q=np.bincount(column, weights=q * flip, minlength=n_kept),
            A=A,
            b=np.concatenate([*zero.b, *nonneg.b, *soc.b, *power.b])[kept_row],
            cones=(zero_m, int(before_row[zero.m + nonneg.m]) - zero_m, soc.m),
            w=column[layout.col_w : layout.col_w + s.p],
            h=slice(int(before_col[layout.col_h]), int(before_col[layout.col_h]) + s.n),
            upper=absolute(nonneg, rows.upper),
            lower=absolute(nonneg, rows.lower),
            pair_upper=absolute(nonneg, rows.pair_upper),
            pair_lower=absolute(nonneg, rows.pair_lower),
            shared_pairs=s.shared_pairs,
            pairs=s.p,
            blocks=[
                (absolute(at, span), at is soc, kept, int(before_col[col_s]))
                for (at, span), kept, col_s in zip(
                    block_rows, layout.keep, layout.slack, strict=True
                )
            ],
            constant=float(v.c @ (v.w_tilde * v.w_tilde)),
            sums=rows.sums,
            slack_units=layout.units,
            power=power.m // 3,
        )

    def _quadratic(
        self,
        v: Values,
        diag: np.ndarray,
        column: np.ndarray,
        before_col: np.ndarray,
        n_kept: int,
    ) -> sp.csc_matrix:
        """``P``: the diagonal, plus the factor block's upper triangle; one COO build sums
        where they meet, and entries that are zero are not stored."""
        p_diag = np.bincount(column, weights=diag, minlength=n_kept)
        p_at = np.flatnonzero(p_diag)
        p_rows, p_cols, p_vals = [p_at], [p_at], [p_diag[p_at]]
        if self._factor_cov is not None and v.gamma > 0:
            k = self.structure.k
            fr, fc = np.triu_indices(k)
            f0 = before_col[self.structure.p + self.structure.n]
            p_rows.append(fr + f0)
            p_cols.append(fc + f0)
            p_vals.append(2.0 * OBJECTIVE_SCALE * v.gamma * self._factor_cov[fr, fc])
        P = sp.csc_matrix(
            (np.concatenate(p_vals), (np.concatenate(p_rows), np.concatenate(p_cols))),
            shape=(n_kept, n_kept),
        )
        P.eliminate_zeros()
        return P
