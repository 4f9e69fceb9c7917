"""Decisions as a quant passes them: a table, a CSV or Parquet file, or one strategy's
target weights as a Series indexed by ticker; each gives the same run as the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import riskopt
from riskopt.data.contracts import check_decision_columns
from riskopt.data.errors import BookLoadError, ValidationError
from riskopt.data.loaders import load_decisions

STRATEGY = "momentum"
RUN = {"state": "NORMAL", "risk_aversion": 1.0, "run_id": "same"}


def _comparable(result: riskopt.RebalanceResult) -> dict[str, pd.DataFrame]:
    """The run's tables without the clock (the only thing two identical runs differ in)."""
    return {
        "targets": result.targets,
        "actions": result.actions.drop(columns=["timestamp"]),
        "binding": result.binding,
    }


def _assert_same_run(a: riskopt.RebalanceResult, b: riskopt.RebalanceResult) -> None:
    assert a.status == b.status and a.run.gamma == b.run.gamma
    for name, table in _comparable(a).items():
        pd.testing.assert_frame_equal(table, _comparable(b)[name], obj=name)


@pytest.fixture(scope="module")
def weights(sample: tuple[riskopt.Book, pd.DataFrame]) -> pd.Series:
    """One strategy's target weights from the sample decisions, indexed by ticker."""
    _, decisions = sample
    rows = decisions[decisions["strategy_id"] == STRATEGY]
    return pd.Series(rows["target_weight"].to_numpy(), index=rows["ticker"].to_numpy())


def _as_table(weights: pd.Series, strategy: str) -> pd.DataFrame:
    """The table a Series of weights stands for (its documented ids and confidence)."""
    return pd.DataFrame(
        {
            "decision_id": [f"{strategy}:{t}" for t in weights.index],
            "ticker": list(weights.index),
            "strategy_id": strategy,
            "target_weight": weights.to_numpy(),
            "confidence": 1.0,
        }
    )


def test_a_series_of_weights_is_one_strategys_decisions(weights: pd.Series) -> None:
    out = load_decisions(weights, strategy=STRATEGY)
    pd.testing.assert_frame_equal(out, check_decision_columns(_as_table(weights, STRATEGY)))
    named = load_decisions(weights.rename(STRATEGY))
    pd.testing.assert_frame_equal(named, out)
    # No name, no strategy: refused, never filed under a guessed sleeve.
    with pytest.raises(ValidationError, match="name the Series"):
        load_decisions(weights)


def test_a_series_gives_the_same_run_as_its_table(
    sample: tuple[riskopt.Book, pd.DataFrame], weights: pd.Series
) -> None:
    book, _ = sample
    table = riskopt.rebalance(book, _as_table(weights, STRATEGY), **RUN)
    named = riskopt.rebalance(book, riskopt.load_decisions(weights, strategy=STRATEGY), **RUN)
    _assert_same_run(table, named)
    # Passed straight to the gate, a Series is read for the strategy it is named after,
    # and an unnamed one is refused.
    direct = riskopt.rebalance(book, weights.rename(STRATEGY), **RUN)
    _assert_same_run(direct, table)
    with pytest.raises(ValidationError, match="name the Series"):
        riskopt.rebalance(book, weights, **RUN)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("as_text", [False, True])
def test_a_decisions_file_gives_the_same_run_as_its_table(
    sample: tuple[riskopt.Book, pd.DataFrame], tmp_path: Path, suffix: str, as_text: bool
) -> None:
    book, decisions = sample
    path = tmp_path / f"decisions{suffix}"
    if suffix == ".csv":
        decisions.to_csv(path, index=False)
    else:
        decisions.to_parquet(path, index=False)
    source: str | Path = str(path) if as_text else path
    pd.testing.assert_frame_equal(load_decisions(source), decisions)
    _assert_same_run(
        riskopt.rebalance(book, source, **RUN),  # type: ignore[arg-type]
        riskopt.rebalance(book, decisions, **RUN),
    )


def test_a_table_passes_through_load_decisions_unchanged(
    sample: tuple[riskopt.Book, pd.DataFrame],
) -> None:
    _, decisions = sample
    pd.testing.assert_frame_equal(load_decisions(decisions), decisions)


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        (pd.Series([0.01, np.nan], index=["AAA", "BBB"]), "not a finite number for ticker BBB"),
        (pd.Series([0.01, np.inf], index=["AAA", "BBB"]), "not a finite number for ticker BBB"),
        (pd.Series([0.01, 0.02], index=["AAA", "AAA"]), "ticker given more than once: AAA"),
        (pd.Series([0.01, 0.02]), "the index must be tickers (text), got int64"),
        (pd.Series([0.01, 0.02], index=["AAA", None]), "the index must be tickers (text)"),
        (
            pd.Series([0.01], index=pd.MultiIndex.from_tuples([("s", "AAA")])),
            "the index must be tickers (text)",
        ),
        (pd.Series(["0.01"], index=["AAA"]), "must be numbers"),
        (pd.Series([True], index=["AAA"]), "must be numbers, got bool"),
    ],
)
def test_a_bad_series_is_a_validation_error_naming_it(
    sample: tuple[riskopt.Book, pd.DataFrame], weights: pd.Series, problem: str
) -> None:
    with pytest.raises(ValidationError, match=r"invalid decisions") as err:
        load_decisions(weights)
    assert any(problem in line for line in err.value.problems), err.value.problems
    assert isinstance(err.value, riskopt.RiskoptError)
    book, _ = sample
    with pytest.raises(ValidationError, match="target weights"):
        riskopt.rebalance(book, weights, **RUN)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["", None, "a\x00b"])
def test_a_series_needs_a_strategy_name(weights: pd.Series, strategy: object) -> None:
    with pytest.raises(ValidationError, match="strategy: must be a non-empty name"):
        load_decisions(weights, strategy=strategy)  # type: ignore[arg-type]


def test_a_missing_file_or_another_kind_of_value_is_a_typed_error(
    sample: tuple[riskopt.Book, pd.DataFrame], tmp_path: Path
) -> None:
    with pytest.raises(BookLoadError, match="decisions file not found"):
        load_decisions(tmp_path / "none.csv")
    with pytest.raises(ValidationError, match=r"expected a DataFrame.*got list"):
        load_decisions([("D1", "AAA", "s", 0.1)])  # type: ignore[arg-type]
    book, _ = sample
    with pytest.raises(BookLoadError, match="decisions file not found"):
        riskopt.rebalance(book, tmp_path / "none.csv", **RUN)  # type: ignore[arg-type]


def test_no_decisions_is_said(sample: tuple[riskopt.Book, pd.DataFrame]) -> None:
    """An empty Series (or table) is a run that only enforces the limits on the holdings:
    legitimate, but said, so that an empty file read by mistake is not silent."""
    book, _ = sample
    result = riskopt.rebalance(book, pd.Series([], dtype=float, name=STRATEGY), **RUN)
    assert "no decisions: every holding is held where the limits allow it" in result.run.warnings
    assert not (result.actions["decision_id"].notna()).any()
