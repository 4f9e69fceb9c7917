"""Migrations: empty → head → base on SQLite and PostgreSQL; head matches the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from typer.testing import CliRunner

from data.migrate import downgrade, upgrade
from data.storage import Base
from optimizer.cli import app

TABLES = {
    "positions",
    "stock_metrics",
    "pipeline_decisions",
    "risk_configs",
    "strategy_configs",
    "black_swan_state",
    "nav_history",
    "strategy_nav",
    "factor_loadings",
    "factor_covariance",
    "specific_variance",
    "risk_runs",
    "risk_actions",
    "target_positions",
    "risk_debates",
}


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    names = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    return names


def test_upgrade_to_head_matches_the_models_and_downgrade_empties(database_url: str) -> None:
    upgrade(database_url)
    assert tables(database_url) == TABLES
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], diff  # the migrations build exactly the schema the models describe
    downgrade(database_url)
    assert tables(database_url) == set()
    upgrade(database_url)  # and up again
    assert tables(database_url) == TABLES


def test_db_commands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    runner = CliRunner()
    assert runner.invoke(app, ["db", "init", "--url", url]).exit_code == 0
    assert tables(url) == TABLES
    assert runner.invoke(app, ["db", "downgrade", "--url", url]).exit_code == 0
    assert tables(url) == set()
    assert runner.invoke(app, ["db", "upgrade", "--url", url]).exit_code == 0
    bad = runner.invoke(app, ["db", "upgrade", "--url", "notadb://x"])
    assert bad.exit_code == 2 and bad.output.startswith("riskopt: error:")
