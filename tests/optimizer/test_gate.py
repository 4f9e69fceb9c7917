"""The gate's stages: each callable alone, and the calmer-state envelope through the
solve stage only (an EMERGENCY run builds its tables once and gives what it gave)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import riskopt.optimizer.gate as gate_module
from riskopt.constraints.config import ConstraintSet
from riskopt.data.book import Book
from riskopt.optimizer import rebalance
from riskopt.optimizer.gate import Options, calmer_optimum
from riskopt.optimizer.solve import Solution

EXPECTED = Path(__file__).with_name("emergency_sample_targets.csv")
"""The sample book's EMERGENCY targets as the gate gave them before its stages were split
(the envelope then ran a whole nested rebalance per calmer state)."""


def _options(**changes: object) -> Options:
    values: dict[str, object] = dict(
        state=None,
        risk_aversion=None,
        name_risk_aversion=None,
        solvers=None,
        cache=None,
        strict=False,
        now=None,
    )
    return Options(**(values | changes))  # type: ignore[arg-type]


def test_emergency_run_builds_tables_once_and_solves_each_state(
    sample: tuple[Book, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    book, decisions = sample
    tables: list[str] = []
    solves: list[int] = []
    build_tables, solve = gate_module.build_tables, gate_module.solve

    def counted_tables(gated: gate_module.Gated) -> object:
        tables.append(gated.run.state)
        return build_tables(gated)

    def counted_solve(*args: object, **kwargs: object) -> Solution:
        solves.append(1)
        return solve(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gate_module, "build_tables", counted_tables)
    monkeypatch.setattr(gate_module, "solve", counted_solve)
    result = rebalance(book, decisions, state="EMERGENCY")
    assert result.run.state == "EMERGENCY"
    assert tables == ["EMERGENCY"]  # the calmer states build none
    assert len(solves) == 3  # EMERGENCY, and its envelope's ELEVATED and NORMAL


def test_emergency_run_is_unchanged(sample: tuple[Book, pd.DataFrame]) -> None:
    book, decisions = sample
    targets = rebalance(book, decisions, state="EMERGENCY").targets
    expected = pd.read_csv(EXPECTED)
    assert targets["ticker"].tolist() == expected["ticker"].tolist()
    # Weights to 1e-8 of NAV: the solve stops at a 1e-11 gap, and another CPU's
    # floating-point kernels move a weight the solve leaves near zero by a few 1e-9
    # (measured: 4e-9 on an AMD EPYC against the Xeon that wrote the file).
    for column in ("target_weight", "solved_weight"):
        np.testing.assert_allclose(
            targets[column].to_numpy(dtype=float),
            expected[column].to_numpy(dtype=float),
            rtol=0,
            atol=1e-8,
        )
    assert (targets["target_position"].to_numpy() == expected["target_position"].to_numpy()).all()
    assert targets["action_type"].tolist() == expected["action_type"].tolist()


def test_calmer_optimum_is_the_calmer_runs_solution(sample: tuple[Book, pd.DataFrame]) -> None:
    book, decisions = sample
    base = ConstraintSet.load("default")
    optimum = calmer_optimum(book, decisions, base, "NORMAL", _options(risk_aversion=1.0))
    assert optimum is not None
    tickers, h = optimum
    normal = rebalance(book, decisions, base, state="NORMAL", risk_aversion=1.0).targets
    solved = normal.dropna(subset=["solved_weight"])
    assert list(tickers) == solved["ticker"].tolist()
    assert (h == solved["solved_weight"].to_numpy(dtype=float)).all()


def test_targets_are_indexed_by_ticker(sample: tuple[Book, pd.DataFrame]) -> None:
    book, decisions = sample
    targets = rebalance(book, decisions, state="NORMAL", risk_aversion=1.0).targets
    assert targets.index.tolist() == targets["ticker"].tolist()
    assert targets.index.is_unique
    assert targets.loc["MAT00075", "ticker"] == "MAT00075"
    assert targets.sort_values("ticker")["ticker"].is_monotonic_increasing  # not ambiguous
