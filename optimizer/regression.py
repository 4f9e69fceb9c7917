"""Golden regression of fixed portfolios: run, compare with the stored output, explain.

A fixture is a folder holding ``book/``, ``decisions.csv``, ``constraints.toml``,
``fixture.toml`` (``risk_aversion`` and the black-swan ``state``, default NORMAL) and the golden outputs ``golden_targets.csv``,
``golden_actions.csv`` and ``golden_binding.csv``. :func:`check_fixture` reruns the gate
and returns a table of every difference: targets beyond the share/weight tolerances,
labels that changed, and binding constraints that appeared or went away.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from riskopt.constraints.config import ConstraintSet
from riskopt.data.book import Book
from riskopt.data.config_files import ConfigFileError, read_toml
from riskopt.data.errors import ValidationError
from riskopt.data.loaders import load_book, load_decisions
from riskopt.optimizer.rebalance import rebalance
from riskopt.optimizer.result import RebalanceResult

GOLDEN_FILES = ("golden_targets.csv", "golden_actions.csv", "golden_binding.csv")


@dataclass(frozen=True)
class Tolerances:
    shares_lots: float = 1.0
    """Allowed difference in target shares, in lots."""
    weight: float = 1e-6
    """Allowed difference in target weight."""


def run_fixture(directory: str | Path, book: Book | None = None) -> RebalanceResult:
    directory = Path(directory)
    try:
        meta = read_toml(directory / "fixture.toml")
    except (OSError, ConfigFileError) as err:
        raise ValidationError("fixture", [str(err)]) from err
    return rebalance(
        book if book is not None else load_book(directory / "book"),
        load_decisions(directory / "decisions.csv"),
        ConstraintSet.load(directory / "constraints.toml"),
        risk_aversion=float(meta.get("risk_aversion", 0.0)),
        state=str(meta.get("state", "NORMAL")),
        run_id=directory.name,
        cache=None,
    )


def golden_tables(result: RebalanceResult) -> dict[str, pd.DataFrame]:
    targets = result.targets[
        ["ticker", "current_position", "target_position", "target_weight", "action_type"]
    ]
    actions = result.actions[
        ["decision_id", "ticker", "strategy_id", "action_type", "final_weight", "reason"]
    ]
    binding = (
        result.binding.groupby("constraint", as_index=False)
        .agg(rows=("label", "size"))
        .sort_values("constraint")
    )
    return {
        "golden_targets.csv": targets.sort_values("ticker").reset_index(drop=True),
        "golden_actions.csv": actions[actions["decision_id"].notna()]
        .sort_values("decision_id")
        .reset_index(drop=True),
        "golden_binding.csv": binding.reset_index(drop=True),
    }


def write_golden(directory: str | Path, result: RebalanceResult | None = None) -> None:
    directory = Path(directory)
    result = result if result is not None else run_fixture(directory)
    for name, table in golden_tables(result).items():
        table.to_csv(directory / name, index=False, float_format="%.10g")


DIFFERENCE_COLUMNS = ["what", "key", "field", "golden", "now", "why"]


def check_fixture(directory: str | Path, tol: Tolerances = Tolerances()) -> pd.DataFrame:
    """Differences between a fresh run and the golden output (empty when none)."""
    directory = Path(directory)
    missing = [name for name in GOLDEN_FILES if not (directory / name).is_file()]
    if missing:
        raise ValidationError(
            f"fixture {directory.name}",
            [f"no golden output ({', '.join(missing)}): write it with --update"],
        )
    book = load_book(directory / "book")
    result = run_fixture(directory, book)
    fresh = golden_tables(result)
    rows = [
        *_target_differences(
            pd.read_csv(directory / "golden_targets.csv").set_index("ticker"),
            fresh["golden_targets.csv"].set_index("ticker"),
            book.market["lot_size"],
            tol,
        ),
        *_decision_differences(
            pd.read_csv(directory / "golden_actions.csv").set_index("decision_id"),
            fresh["golden_actions.csv"].set_index("decision_id"),
        ),
        *_binding_differences(
            set(pd.read_csv(directory / "golden_binding.csv")["constraint"]),
            set(fresh["golden_binding.csv"]["constraint"]),
        ),
    ]
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def _difference(
    what: str, key: object, field: str, golden: object, now: object, why: object = ""
) -> dict[str, object]:
    return {"what": what, "key": key, "field": field, "golden": golden, "now": now, "why": why}


def _target_differences(
    golden: pd.DataFrame, new: pd.DataFrame, lots: pd.Series, tol: Tolerances
) -> list[dict[str, object]]:
    """Targets present on one side only, shares beyond ``tol.shares_lots`` lots (else a
    weight beyond ``tol.weight``), and changed labels, by ticker."""
    rows: list[dict[str, object]] = []
    for ticker in sorted(set(golden.index) | set(new.index)):
        if ticker not in new.index or ticker not in golden.index:
            rows.append(
                _difference(
                    "target", ticker, "presence", ticker in golden.index, ticker in new.index
                )
            )
            continue
        g, n = golden.loc[ticker], new.loc[ticker]
        lot = float(lots.get(ticker, 1))
        if abs(n["target_position"] - g["target_position"]) > tol.shares_lots * lot + 1e-9:
            field = "target_position"
        elif abs(n["target_weight"] - g["target_weight"]) > tol.weight:
            field = "target_weight"
        else:
            field = ""
        if field:
            rows.append(_difference("target", ticker, field, g[field], n[field]))
        if n["action_type"] != g["action_type"]:
            rows.append(
                _difference("target", ticker, "action_type", g["action_type"], n["action_type"])
            )
    return rows


def _decision_differences(golden: pd.DataFrame, new: pd.DataFrame) -> list[dict[str, object]]:
    """Decisions on both sides whose label changed, with the fresh run's reason."""
    both = golden.index.intersection(new.index)
    changed = both[(golden.loc[both, "action_type"] != new.loc[both, "action_type"]).to_numpy()]
    return [
        _difference(
            "decision",
            decision,
            "action_type",
            golden.loc[decision, "action_type"],
            new.loc[decision, "action_type"],
            new.loc[decision, "reason"],
        )
        for decision in changed
    ]


def _binding_differences(golden: set[str], new: set[str]) -> list[dict[str, object]]:
    """Constraints that bind on one side only."""
    return [
        _difference(
            "binding",
            name,
            "binds",
            name in golden,
            name in new,
            "binds now, not in golden" if name in new else "bound in golden, not now",
        )
        for name in sorted(golden ^ new)
    ]


def format_differences(name: str, diff: pd.DataFrame) -> str:
    if diff.empty:
        return f"{name}: matches golden"
    with pd.option_context(
        "display.max_rows", 200, "display.width", 200, "display.max_colwidth", 120
    ):
        return f"{name}: {len(diff)} difference(s)\n{diff.to_string(index=False)}"


def fixtures(root: str | Path) -> list[Path]:
    return sorted(p for p in Path(root).iterdir() if (p / "fixture.toml").exists())


def assert_matches_golden(directory: str | Path, tol: Tolerances = Tolerances()) -> None:
    """Pytest helper: fail with a readable table of every difference from the golden output.

    In a user's own suite::

        @pytest.mark.parametrize("fixture", fixtures("my_fixtures"), ids=lambda p: p.name)
        def test_fixed_portfolio(fixture):
            assert_matches_golden(fixture)
    """
    directory = Path(directory)
    diff = check_fixture(directory, tol)
    if not diff.empty:
        raise AssertionError(format_differences(directory.name, diff))
