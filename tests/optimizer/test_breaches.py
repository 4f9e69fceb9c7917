"""A breach is listed once: a row rounding to lots took further past its limit carries its
final figures and what rounding added, not a second entry beside the solve's."""

from __future__ import annotations

import pytest

import riskopt
from riskopt.data import SAMPLES
from riskopt.optimizer.gate import _with_rounding
from riskopt.optimizer.result import _breach_line


def _breach(name: str, label: str, value: float, limit: float) -> dict[str, object]:
    return {
        "constraint": name,
        "description": name,
        "label": label,
        "tier": 3,
        "value": value,
        "limit": limit,
        "breach": value - limit,
    }


def test_each_row_once_with_what_rounding_added() -> None:
    solved = [_breach("turnover.max", "portfolio", 0.50, 0.05), _breach("g", "A", 0.31, 0.30)]
    rounded = [_breach("turnover.max", "portfolio", 0.5008, 0.05), _breach("g", "B", 0.2001, 0.2)]
    out = {(b["constraint"], b["label"]): b for b in _with_rounding(solved, rounded)}
    assert len(out) == 3
    turnover = out["turnover.max", "portfolio"]
    assert turnover["value"] == 0.5008 and turnover["by_lots"] == pytest.approx(0.0008)
    assert "cause" not in turnover
    assert out["g", "B"]["cause"] == "lots"  # only rounding broke it
    assert out["g", "A"]["value"] == 0.31  # rounding mended it: the solve's figure stays
    line = _breach_line(turnover)
    assert line.endswith(
        "50.0800% vs limit 5.0000% (0.0800% of it added by rounding to whole lots)"
    )


def test_a_tight_turnover_cap_on_the_sample_book_is_one_breach() -> None:
    cs = riskopt.ConstraintSet.load("default").replace(**{"turnover.max": 0.05})
    book = riskopt.load_book(SAMPLES / "book")
    decisions = riskopt.load_decisions(SAMPLES / "decisions.csv")
    result = riskopt.rebalance(book, decisions, cs, state="ELEVATED", risk_aversion=0.1)
    keys = [(b["constraint"], b["label"]) for b in result.run.breaches]
    assert len(keys) == len(set(keys))
    (turnover,) = [b for b in result.run.breaches if b["constraint"] == "turnover.max"]
    assert turnover["value"] > 0.05 and turnover.get("cause") != "lots"
