"""DataFrame contracts of the gate's inputs, checked lazily with pandera.

Every table is validated in one pass and every problem is reported at once, naming the
table, the column and the offending tickers (or rows), as a :class:`ValidationError`.

Decisions are the exception on purpose: a bad decision row (unknown ticker, NaN weight,
duplicated id, ...) must not stop the rest of the book, so only the *shape* of the
decisions table (its columns) is checked here; row-level problems become per-decision
``REJECTED`` actions in the optimizer. A Series of one strategy's target weights is read
whole (:func:`decisions_from_weights`): a bad weight or ticker in it is a ValidationError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from riskopt.data.errors import ValidationError

DEFAULT_LOT_SIZE = 1
DEFAULT_TICK_SIZE = 0.01


def _finite(series: pd.Series) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    return pd.Series(np.isfinite(values.to_numpy(dtype=float, na_value=np.nan)), index=series.index)


_FINITE = pa.Check(_finite, element_wise=False, name="finite", error="must be finite")


def _no_nul(series: pd.Series) -> pd.Series:
    return ~series.astype(str).str.contains("\x00", regex=False)


_NO_NUL = pa.Check(
    _no_nul,
    element_wise=False,
    name="no NUL byte",
    error="must not contain a NUL byte (the runtime database cannot store one)",
)

MARKET_SCHEMA = pa.DataFrameSchema(
    {
        "ticker": pa.Column(str, _NO_NUL, unique=True, nullable=False, coerce=True),
        # A zero or missing price is not a table error: that name is unpriced, its
        # decisions are rejected and its holdings are carried unchanged.
        "price": pa.Column(float, pa.Check.ge(0), nullable=True, coerce=True),
        "adv_shares": pa.Column(float, [pa.Check.ge(0), _FINITE], coerce=True),
        "spread_bps": pa.Column(float, [pa.Check.ge(0), _FINITE], coerce=True),
        "volatility": pa.Column(float, [pa.Check.ge(0), _FINITE], coerce=True),
        "sector": pa.Column(str, _NO_NUL, nullable=False, coerce=True),
        "country": pa.Column(str, _NO_NUL, nullable=False, coerce=True),
        "cluster": pa.Column(str, _NO_NUL, nullable=True, required=False),
        "lot_size": pa.Column(int, pa.Check.ge(1), coerce=True, required=False),
        "tick_size": pa.Column(float, [pa.Check.gt(0), _FINITE], coerce=True, required=False),
    },
    strict=False,
    name="market",
)

POSITIONS_SCHEMA = pa.DataFrameSchema(
    {
        "strategy_id": pa.Column(str, _NO_NUL, nullable=False, coerce=True),
        "ticker": pa.Column(str, _NO_NUL, nullable=False, coerce=True),
        "quantity": pa.Column(float, _FINITE, coerce=True),
    },
    unique=["strategy_id", "ticker"],
    strict=False,
    name="positions",
)

NAV_HISTORY_SCHEMA = pa.DataFrameSchema(
    {
        "date": pa.Column("datetime64[ns]", unique=True, coerce=True),
        "nav": pa.Column(float, [pa.Check.gt(0), _FINITE], coerce=True),
    },
    strict=False,
    name="nav_history",
)

DECISION_COLUMNS = ("decision_id", "ticker", "strategy_id", "target_weight")
"""Required columns of a decisions table; ``confidence`` is optional (default 1)."""


def _describe(err: SchemaErrors, table: pd.DataFrame, key: str | None) -> list[str]:
    """Turn pandera's failure cases into one line per (column, check), naming the rows."""
    cases = err.failure_cases
    lines: list[str] = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        col = (
            "<table>"
            if column is None or (isinstance(column, float) and np.isnan(column))
            else column
        )
        idx = group["index"].dropna()
        where = ""
        if len(idx):
            rows = [int(i) for i in idx if isinstance(i, (int, np.integer))]
            if key is not None and key in table.columns and rows:
                names = [str(x) for x in table[key].iloc[[r for r in rows if r < len(table)]]]
                shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
                where = f" for {key} {shown}"
            elif rows:
                where = f" at rows {rows[:10]}" + (" ..." if len(rows) > 10 else "")
        elif len(group):
            values = [str(x) for x in group["failure_case"]]
            where = f": {', '.join(values[:10])}"
        lines.append(f"{table_name(err)}.{col}: {check}{where}")
    return lines


def table_name(err: SchemaErrors) -> str:
    schema = getattr(err, "schema", None)
    return str(getattr(schema, "name", None) or "table")


def validate(schema: pa.DataFrameSchema, table: Any, *, key: str | None = "ticker") -> pd.DataFrame:
    """Validate ``table`` against ``schema`` lazily; raise one ValidationError listing all."""
    if not isinstance(table, pd.DataFrame):
        raise ValidationError(
            schema.name or "table", [f"expected a DataFrame, got {type(table).__name__}"]
        )
    refuse_repeated_columns(schema.name or "table", table)
    table = table.reset_index(drop=True)
    try:
        return schema.validate(table, lazy=True)
    except SchemaErrors as err:
        raise ValidationError(schema.name or "table", _describe(err, table, key)) from None


def refuse_repeated_columns(name: str, table: pd.DataFrame) -> None:
    """A column label given twice is ambiguous (which one is meant?): a ValidationError."""
    labels = pd.Index(table.columns)
    repeated = labels[labels.duplicated()].unique()
    if len(repeated):
        raise ValidationError(name, [f"column {c!r} appears more than once" for c in repeated])


_TEXT = pd.Series(["text", None]).dtype
"""pandas' own dtype for a column of text with missing values."""


"""The strategy a Series of target weights is read for when the caller names none."""

DecisionsInput = pd.DataFrame | pd.Series | str | Path
"""What the gate takes as decisions: a table, target weights by ticker, or a file."""


def check_decision_columns(decisions: Any) -> pd.DataFrame:
    """Check the decisions table's shape; rows are judged one by one later.

    A Series of target weights by ticker is read by :func:`decisions_from_weights` (for
    the strategy its ``name`` says), and a path by :func:`riskopt.data.loaders.load_decisions`.
    """
    if isinstance(decisions, pd.Series):
        decisions = decisions_from_weights(decisions)
    elif isinstance(decisions, str | Path):
        from riskopt.data.loaders import load_decisions  # the loaders import this module

        return load_decisions(decisions)
    if not isinstance(decisions, pd.DataFrame):
        raise ValidationError(
            "decisions",
            [
                f"expected a DataFrame (or target weights by ticker, or a decisions file), "
                f"got {type(decisions).__name__}"
            ],
        )
    refuse_repeated_columns("decisions", decisions)
    missing = [c for c in DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValidationError("decisions", [f"missing column {c!r}" for c in missing])
    out = decisions.reset_index(drop=True)
    columns: dict[str, Any] = {}
    for col in ("decision_id", "ticker", "strategy_id"):
        if out[col].dtype == _TEXT:  # already what the conversion below gives
            continue
        values = out[col].tolist()
        absent = out[col].isna().tolist()
        columns[col] = [None if a else str(v) for v, a in zip(values, absent, strict=True)]
    for col in ("target_weight", "confidence"):
        if col in out.columns:
            columns[col] = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=float)
        else:
            columns[col] = np.ones(len(out))
    return out.assign(**columns)


def decisions_from_weights(weights: pd.Series, *, strategy: str | None = None) -> pd.DataFrame:
    """A decisions table from one strategy's target weights, indexed by ticker.

    Each name becomes one decision ``"{strategy}:{ticker}"`` with confidence 1, in the
    Series' order. Unlike a table's rows, which are rejected one by one, a Series is the
    whole proposal of one strategy: a missing or infinite weight, a ticker given twice or
    an index that is not ticker text is a :class:`ValidationError` naming it.

    Parameters
    ----------
    weights
        Target weights (signed fractions of NAV), indexed by ticker (text).
    strategy
        The ``strategy_id`` of every decision; by default the Series' ``name``. One of them
        must name the sleeve: weights under a guessed name would open a new sleeve beside
        the book's own, so an unnamed Series with no ``strategy`` is refused.

    Returns
    -------
    pandas.DataFrame
        Columns ``decision_id, ticker, strategy_id, target_weight, confidence``.
    """
    if strategy is None:
        strategy = weights.name if isinstance(weights.name, str) else None
    problems = _weights_problems(weights, strategy)
    if problems or strategy is None:
        raise ValidationError("decisions", problems)
    tickers = [str(t) for t in weights.index]
    return pd.DataFrame(
        {
            "decision_id": [f"{strategy}:{t}" for t in tickers],
            "ticker": tickers,
            "strategy_id": strategy,
            "target_weight": weights.to_numpy(dtype=float),
            "confidence": 1.0,
        },
        columns=[*DECISION_COLUMNS, "confidence"],
    )


def _weights_problems(weights: pd.Series, strategy: object) -> list[str]:
    """Why a Series of target weights cannot be one strategy's decisions (empty if none)."""
    problems: list[str] = []
    if not isinstance(strategy, str) or not strategy or "\x00" in strategy:
        problems.append(
            f"strategy: must be a non-empty name, got {strategy!r} (name the Series, "
            "weights.rename('momentum'), or pass strategy=)"
        )
    index = weights.index
    if len(index) and (
        isinstance(index, pd.MultiIndex)
        or index.hasnans
        or pd.api.types.infer_dtype(index, skipna=False) != "string"
    ):
        problems.append(
            f"target weights: the index must be tickers (text), got {index.dtype} "
            f"{_show([str(t) for t in index[:5]])}"
        )
    elif index.has_duplicates:
        problems.append(
            "target weights: ticker given more than once: "
            + _show(sorted(set(index[index.duplicated()])))
        )
    if pd.api.types.is_bool_dtype(weights) or not pd.api.types.is_numeric_dtype(weights):
        problems.append(f"target weights: must be numbers, got {weights.dtype}")
        return problems
    values = weights.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        problems.append(
            "target weights: not a finite number for ticker " + _show([str(t) for t in index[bad]])
        )
    return problems


def _show(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (" ..." if len(names) > limit else "")
