"""The shipped solver chain: where Clarabel's direct solve fails, the next member rescues."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import riskopt.optimizer.clarabel_program
from riskopt.constraints.config import ConstraintSet
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance
from riskopt.optimizer.program import ProgramCache


def test_the_next_solver_in_the_shipped_chain_rescues_a_failed_clarabel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clarabel's direct path held to two iterations fails every attempt; the next member
    of the default chain answers, as the unforced gate does, within the hard limits."""
    universe = make_universe(30, 3, 5, years=0.3)
    cs = ConstraintSet.load("default")
    assert cs.solver.chain == ConstraintSet().solver.chain
    expected = rebalance(
        universe.book, universe.decisions, cs, state="NORMAL", risk_aversion=1.0, cache=None
    )
    real = riskopt.optimizer.clarabel_program._clarabel_solver

    def two_iterations(data: Any, cones: Any, max_iters: int, **options: Any) -> Any:
        return real(data, cones, 2, **options)

    monkeypatch.setattr(riskopt.optimizer.clarabel_program, "_clarabel_solver", two_iterations)
    result = rebalance(
        universe.book,
        universe.decisions,
        cs,
        state="NORMAL",
        risk_aversion=1.0,
        cache=ProgramCache(1),
    )
    chain = result.run.solver_chain
    assert result.run.status != "FALLBACK"
    assert [step["solver"] for step in chain] == list(cs.solver.chain[:2])
    assert chain[0]["outcome"].startswith(("failed", "inaccurate")), chain
    assert chain[1]["outcome"] == "optimal"
    # The rescue is the gate's own answer, and keeps the hard trade limit in shares.
    got = result.targets.set_index("ticker").sort_index()
    want = expected.targets.set_index("ticker").sort_index()
    np.testing.assert_allclose(got["solved_weight"], want["solved_weight"], atol=1e-5)
    adv = universe.book.market["adv_shares"].reindex(got.index)
    lot = universe.book.market["lot_size"].reindex(got.index)
    limit = cs.trading.max_trade_pct_adv * adv + lot
    assert (got["delta_position"].abs() <= limit).all()
