"""Migrations: empty → head → base on SQLite and PostgreSQL; head matches the models; a
migration killed partway changes nothing; first writers racing all succeed; passwords
with any character connect and never show."""

from __future__ import annotations

import multiprocessing
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from typer.testing import CliRunner

from riskopt.data import migrate, storage
from riskopt.data.errors import DatabaseMissingError
from riskopt.data.migrate import (
    current_revision,
    display_url,
    downgrade,
    head_revision,
    init,
    upgrade,
)
from riskopt.data.storage import Base
from riskopt.optimizer.cli import app
from riskopt.optimizer.store import store_result
from tests.data.test_storage import small_result

ROOT = Path(__file__).resolve().parents[2]

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


def revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rev = current_revision(conn)
    engine.dispose()
    return rev


def all_tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    names = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    return names


# Runs the first upgrade and stops, for good, halfway through the first migration.
PAUSED_UPGRADE = """
import sys, time
import sqlalchemy as sa
from riskopt.data.migrate import upgrade

@sa.event.listens_for(sa.Engine, "before_cursor_execute")
def pause(conn, cursor, statement, *args):
    if "CREATE TABLE risk_runs" in statement:
        print("paused", flush=True)
        time.sleep(600)

upgrade(sys.argv[1])
"""


def test_a_kill_during_the_first_migration_leaves_a_usable_database(database_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_UPGRADE, database_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready and proc.stdout.readline().strip() == "paused"
        assert len(all_tables(database_url) & TABLES) == 0  # nothing visible yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert all_tables(database_url) == set()  # rolled back, alembic_version included
    assert store_result(small_result("after-kill"), database_url) is True
    assert revision(database_url) == head_revision()
    assert tables(database_url) == TABLES


def _first_store(url: str, run_id: str, barrier: Any, results: Any) -> None:
    result = small_result(run_id)
    barrier.wait(timeout=300)  # every process starts storing at the same moment
    try:
        results.put((run_id, store_result(result, url)))
    except Exception as err:  # reported, so that the test says what went wrong
        results.put((run_id, repr(err)))


def test_four_first_writers_into_a_new_database_all_succeed(database_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_first_store, args=(database_url, f"first-{k}", barrier, results))
        for k in range(4)
    ]
    for p in procs:
        p.start()
    try:
        outcome = dict(results.get(timeout=420) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert outcome == {f"first-{k}": True for k in range(4)}
    assert revision(database_url) == head_revision()
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from risk_runs")).scalar_one() == 4
    engine.dispose()


def test_a_store_into_a_database_at_head_runs_no_ddl(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(database_url)
    storage.forget_schema(database_url)  # as a new process would find it

    def no_migration(*args: object, **kwargs: object) -> None:
        raise AssertionError("a migration ran on a database at head")

    monkeypatch.setattr(migrate.command, "upgrade", no_migration)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement.lstrip().upper())

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        assert store_result(small_result("at-head"), database_url) is True
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    assert any(s.startswith("INSERT") for s in statements)
    assert not [s for s in statements if s.startswith(("CREATE", "ALTER", "DROP"))]


def test_only_init_creates_a_database(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    url = f"sqlite:///{path}"
    with pytest.raises(DatabaseMissingError, match=r"no database at .*new\.sqlite"):
        downgrade(url)
    with pytest.raises(DatabaseMissingError, match="riskopt db init"):
        upgrade(url, create=False)
    assert not path.exists()
    init(url)
    assert revision(url) == head_revision()
    upgrade(url, create=False)  # an existing database is fine
    downgrade(url)
    assert tables(url) == set()


def test_a_missing_server_database_is_an_error_that_hides_the_password(postgres_url: str) -> None:
    url = sa.make_url(postgres_url).set(password="s3cret-pw", database="nosuchdb")
    text = url.render_as_string(hide_password=False)
    with pytest.raises(DatabaseMissingError) as err:
        downgrade(text)
    assert "nosuchdb" in str(err.value) and "s3cret-pw" not in str(err.value)
    assert display_url(text).count("***") == 1


PASSWORD = "p@ss%word:/?#&'"


def test_a_percent_encoded_password_connects(postgres_url: str) -> None:
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS pct"))
        conn.execute(sa.text("DROP ROLE IF EXISTS pct"))
        quoted = PASSWORD.replace("'", "''")
        conn.execute(sa.text(f"CREATE ROLE pct LOGIN PASSWORD '{quoted}'"))
        conn.execute(sa.text("CREATE DATABASE pct OWNER pct"))
        hba = Path(conn.execute(sa.text("SHOW hba_file")).scalar_one())
        # This role must give its password (the test server trusts everyone else).
        rule = "host all pct 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(rule + hba.read_text())
        conn.execute(sa.text("SELECT pg_reload_conf()"))
    admin.dispose()
    base = sa.make_url(postgres_url).set(username="pct", database="pct")
    url = base.set(password=PASSWORD).render_as_string(hide_password=False)
    assert "p%40ss%25word" in url  # percent-encoded, as a URL must carry it
    upgrade(url, create=False)
    assert store_result(small_result("pct"), url) is True
    assert revision(url) == head_revision()
    wrong = base.set(password="wrong%pw").render_as_string(hide_password=False)
    with pytest.raises(DatabaseMissingError) as err:
        upgrade(wrong, create=False)
    assert "password authentication failed" in str(err.value)
    assert "wrong%pw" not in str(err.value) and "wrong%25pw" not in str(err.value)


def test_a_missing_book_names_the_database_without_its_password(postgres_url: str) -> None:
    from riskopt.data.database import load_book
    from riskopt.data.errors import BookLoadError

    url = sa.make_url(postgres_url).set(password="s3cret-pw", database="nobook")
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS nobook"))
        conn.execute(sa.text("CREATE DATABASE nobook"))
    admin.dispose()
    with pytest.raises(BookLoadError, match=r"no stock_metrics .* in .*\*\*\*@") as err:
        load_book(url.render_as_string(hide_password=False), "2026-11-20")
    assert "s3cret-pw" not in str(err.value)
