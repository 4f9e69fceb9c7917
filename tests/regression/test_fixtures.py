"""Golden regressions of the fixed portfolios in data/fixtures/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from optimizer.regression import check_fixture, fixtures, format_differences, run_fixture

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "fixtures"


@pytest.mark.parametrize("directory", fixtures(FIXTURES), ids=lambda p: p.name)
def test_fixture_matches_golden(directory: Path) -> None:
    diff = check_fixture(directory)
    assert diff.empty, format_differences(directory.name, diff)


def test_there_are_fixed_portfolios() -> None:
    assert {p.name for p in fixtures(FIXTURES)} >= {"long_short_small", "breached_holdings"}


def test_breached_fixture_is_relaxed_and_reports_the_residual() -> None:
    result = run_fixture(FIXTURES / "breached_holdings")
    assert result.status == "RELAXED"
    caps = [b for b in result.breaches if b["constraint"] == "position.max_weight"]
    assert len(caps) >= 3
    targets = result.targets.set_index("ticker")
    for b in caps:
        assert abs(targets.loc[b["label"], "target_weight"]) < abs(
            targets.loc[b["label"], "current_weight"]
        )


def test_a_changed_limit_is_reported(tmp_path: Path) -> None:
    directory = tmp_path / "fx"
    shutil.copytree(FIXTURES / "long_short_small", directory)
    toml = directory / "constraints.toml"
    toml.write_text(toml.read_text().replace("max_weight = 0.05", "max_weight = 0.02"))
    diff = check_fixture(directory)
    assert not diff.empty
    # Independently: the names whose target moved by more than a lot, and whose label changed.
    golden = pd.read_csv(directory / "golden_targets.csv").set_index("ticker")
    now = run_fixture(directory).targets.set_index("ticker").loc[golden.index]
    lots = (
        pd.read_csv(directory / "book" / "market.csv")
        .set_index("ticker")["lot_size"]
        .loc[golden.index]
    )
    moved = set(golden.index[(now["target_position"] - golden["target_position"]).abs() > lots])
    relabelled = set(golden.index[now["action_type"] != golden["action_type"]])
    targets = diff[diff["what"] == "target"]
    assert set(targets[targets["field"] == "target_position"]["key"]) == moved
    assert set(targets[targets["field"] == "action_type"]["key"]) == relabelled
