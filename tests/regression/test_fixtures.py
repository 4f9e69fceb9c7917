"""Golden regressions of the fixed portfolios in data/fixtures/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from riskopt.optimizer.cli import app
from riskopt.optimizer.regression import (
    assert_matches_golden,
    check_fixture,
    fixtures,
    format_differences,
    run_fixture,
)

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "fixtures"


@pytest.mark.parametrize("directory", fixtures(FIXTURES), ids=lambda p: p.name)
def test_fixture_matches_golden(directory: Path) -> None:
    diff = check_fixture(directory)
    assert diff.empty, format_differences(directory.name, diff)


def test_there_are_fixed_portfolios() -> None:
    assert {p.name for p in fixtures(FIXTURES)} >= {
        "long_short_small",
        "breached_holdings",
        "long_only",
        "one_thirty_thirty",
        "market_neutral",
        "emergency",
    }


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


def test_fixtures_are_what_their_names_say() -> None:
    long_only = run_fixture(FIXTURES / "long_only")
    assert long_only.run.exposures_after["short"] == 0.0
    emergency = run_fixture(FIXTURES / "emergency")
    assert emergency.run.state == "EMERGENCY"
    t = emergency.targets
    assert (t["target_position"].abs() <= t["current_position"].abs()).all()
    book = run_fixture(FIXTURES / "one_thirty_thirty").run.exposures_after
    # Lots move the net by at most one lot per name (rounding shrinks positions).
    assert 0.95 - 1e-4 <= book["net"] <= 1.05 + 1e-6 and book["long"] > 1.0
    neutral = run_fixture(FIXTURES / "market_neutral").run.exposures_after
    assert abs(neutral["net"]) <= 0.02 + 1e-6


def test_assert_matches_golden_explains_a_change(tmp_path: Path) -> None:
    directory = tmp_path / "fx"
    shutil.copytree(FIXTURES / "long_short_small", directory)
    assert_matches_golden(directory)
    toml = directory / "constraints.toml"
    toml.write_text(toml.read_text().replace("max_weight = 0.05", "max_weight = 0.02"))
    with pytest.raises(AssertionError, match=r"long_short_small|fx: \d+ difference"):
        assert_matches_golden(directory)


def test_regress_command(tmp_path: Path) -> None:
    root = tmp_path / "fixtures"
    shutil.copytree(FIXTURES / "long_short_small", root / "one")
    runner = CliRunner()
    ok = runner.invoke(app, ["regress", "--fixtures", str(root)])
    assert ok.exit_code == 0 and "one: matches golden" in ok.output
    toml = root / "one" / "constraints.toml"
    toml.write_text(toml.read_text().replace("max_weight = 0.05", "max_weight = 0.02"))
    changed = runner.invoke(app, ["regress", "--fixtures", str(root)])
    assert (
        changed.exit_code == 1
        and "difference(s)" in changed.output
        and "target_position" in changed.output
    )
    updated = runner.invoke(app, ["regress", "--fixtures", str(root), "--update"])
    assert updated.exit_code == 0
    assert runner.invoke(app, ["regress", "--fixtures", str(root)]).exit_code == 0
    missing = runner.invoke(app, ["regress", "--fixtures", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and missing.output.startswith("riskopt: error:")


def test_a_fixture_without_golden_output_is_one_clear_line(tmp_path: Path) -> None:
    directory = tmp_path / "fx"
    shutil.copytree(FIXTURES / "long_only", directory)
    for golden in directory.glob("golden_*.csv"):
        golden.unlink()
    result = CliRunner().invoke(app, ["regress", "--fixtures", str(tmp_path)])
    assert result.exit_code == 2
    assert "no golden output" in result.output and "--update" in result.output
    assert "Traceback" not in result.output
