"""``rebalance_summary``: the run record of ``rebalance`` without its tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskopt.data.book import Book
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance, rebalance_summary
from riskopt.optimizer.result import BookSummary, RebalanceResult
from tests.helpers import decisions, hand_book, with_price

NOW = dt.datetime(2026, 11, 20, 21, 0, tzinfo=dt.UTC)
PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0, "ZERO": 10.0}


def _record(run: Any) -> dict[str, Any]:
    """The run record but for what differs between two calls (the clock)."""
    out: dict[str, Any] = run.to_dict()
    del out["timings"], out["created_at"]
    return out


def _table_counts(result: RebalanceResult) -> dict[str, int]:
    """Decisions by label, read from the actions table."""
    return {str(k): int(v) for k, v in result.label_counts().items()}


def _messy_book() -> tuple[Book, pd.DataFrame]:
    """A hand book with a holding that has no price (carried) and decisions rejected
    before the solve, one of them without a decision id."""
    book = hand_book(PRICES, {("s1", "ZERO"): 0.01, ("s1", "AAA"): 0.01, ("s2", "CCC"): -0.01})
    book = with_price(book, "ZERO", np.nan)
    dec = decisions(
        [
            ("GOOD", "s1", "BBB", 0.02),
            ("BIG", "s1", "AAA", 0.40),
            ("UNKNOWN", "s1", "NOPE", 0.01),
            ("NAN", "s1", "CCC", float("nan")),
            ("DUP", "s2", "AAA", 0.02),
            ("DUP", "s2", "BBB", 0.01),
            ("NOID", "s2", "CCC", 0.01),
        ]
    )
    dec.loc[dec["decision_id"] == "NOID", "decision_id"] = None
    return book, dec


def _cases() -> dict[str, tuple[Any, pd.DataFrame, dict[str, Any]]]:
    u = make_universe(120, 4, 11, coverage=0.9, years=0.5)
    book, dec = _messy_book()
    return {
        "debate, NORMAL": (u.book, u.decisions, {"state": "NORMAL"}),
        "EMERGENCY": (u.book, u.decisions, {"state": "EMERGENCY"}),
        "long only, given γ": (
            u.book,
            u.decisions,
            {"constraint_set": "long_only", "state": "NORMAL", "risk_aversion": 2.0},
        ),
        "rejected rows, unpriced holding": (book, dec, {"state": "NORMAL"}),
        # OSQP cannot state the default set's volatility cone: no solver answers.
        "no solver: fallback": (u.book, u.decisions, {"state": "NORMAL", "solvers": ["OSQP"]}),
        "book that does not load": ("/nonexistent/book", u.decisions, {}),
    }


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_the_summary_is_the_full_runs_record(case: str) -> None:
    """Same record (status, counts, exposures, breaches, warnings, debate) and the same
    number of names as the full result, and the counts are the actions table's."""
    book, dec, options = CASES[case]
    options = {"run_id": "r", "now": NOW, "cache": None, **options}  # each builds its program
    full = rebalance(book, dec, **options)
    summary = rebalance_summary(book, dec, **options)
    assert isinstance(summary, BookSummary)
    assert _record(summary.run) == _record(full.run)
    assert summary.names == len(full.targets)
    assert full.run.counts == _table_counts(full)
    assert set(summary.run.timings) == set(full.run.timings)
    assert sum(full.run.counts.values()) > 0


def test_the_cases_reach_what_they_are_for() -> None:
    """The cases above cover every label, a carried name, a rejected row without an id
    (not counted, as in the table), the fallback and a book that does not load."""
    runs = {
        case: rebalance(book, dec, run_id="r", now=NOW, **options)
        for case, (book, dec, options) in CASES.items()
    }
    labels = {label for r in runs.values() for label, n in r.run.counts.items() if n}
    assert labels == {"OK", "SCALED_DOWN", "CAPPED", "REJECTED"}
    messy = runs["rejected rows, unpriced holding"]
    assert "ZERO" in set(messy.targets["ticker"])
    assert messy.actions["decision_id"].isna().any()
    assert runs["no solver: fallback"].status == "FALLBACK"
    assert runs["book that does not load"].status == "DEGRADED"
