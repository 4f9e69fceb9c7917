"""The compiled program: sparse, cached by structure, the same solution cold or cached."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from constraints import FAMILIES
from constraints.config import ConstraintSet
from data.synthetic import make_universe
from optimizer.inputs import prepare
from optimizer.program import GateProgram, ProgramCache, Structure


def test_no_dense_n_by_n_matrix_anywhere_in_the_program() -> None:
    n = 300
    universe = make_universe(n, 5, 1, coverage=1.0, years=0.5)
    cs = ConstraintSet.load("default")
    data = prepare(universe.book, universe.decisions, cs).data
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    program = GateProgram(Structure.of(data, limits, costs=False))
    assert any(limit.transform == "vol" for limit in limits)  # every family is on, the cone too
    for constant in program.problem.constants():
        value = constant.value
        if sp.issparse(value):
            continue
        shape = np.shape(value)
        assert not (len(shape) == 2 and min(shape) >= data.n), f"dense {shape} constant"
    for parameter in program.problem.parameters():
        assert len(parameter.shape) <= 1, f"matrix parameter {parameter.name()}"


def test_the_cache_builds_once_per_structure() -> None:
    universe = make_universe(40, 3, 2, years=0.3)
    cs = ConstraintSet.load("default")
    data = prepare(universe.book, universe.decisions, cs).data
    limits = [limit for family in FAMILIES for limit in family.limits(cs, data)]
    cache = ProgramCache()
    first = cache.get(Structure.of(data, limits, costs=False))
    again = cache.get(Structure.of(data, limits, costs=False))
    other = cache.get(Structure.of(data, limits, costs=True))
    assert first is again and other is not first and cache.builds == 2
