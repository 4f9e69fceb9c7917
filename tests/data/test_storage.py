"""The run, its actions, targets and debate go in one transaction, on SQLite and on a real
PostgreSQL server; a retry writes nothing twice; concurrent writers lose nothing."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from data.storage import engine_for, write_run
from optimizer import rebalance
from optimizer.store import store_result
from tests.helpers import decisions, hand_book

TABLES = ("risk_runs", "risk_actions", "target_positions", "risk_debates")


def counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in TABLES}
    engine.dispose()
    return out


def small_result(run_id: str = "r1", *, debate: bool = False):  # type: ignore[no-untyped-def]
    book = hand_book({"AAA": 100.0, "BBB": 50.0}, {("s1", "AAA"): 0.02})
    return rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.08), ("D2", "s1", "BBB", 0.01)]),
        "default",
        run_id=run_id,
        state="NORMAL",
        risk_aversion=None if debate else 0.0,
    )


def test_store_writes_the_whole_run_once(database_url: str) -> None:
    result = small_result(debate=True)
    assert store_result(result, database_url) is True
    n_debate = len(result.debate.transcript) + len(result.debate.name_transcript)
    assert counts(database_url) == {
        "risk_runs": 1,
        "risk_actions": len(result.actions),
        "target_positions": len(result.targets),
        "risk_debates": n_debate,
    }
    assert store_result(result, database_url) is False  # the retry writes nothing twice
    assert counts(database_url)["risk_actions"] == len(result.actions)
    stored = pd.read_sql("select * from risk_actions", sa.create_engine(database_url))
    assert set(stored["action_type"]) == set(result.actions["action_type"])
    details = stored["details_json"].map(lambda d: d if isinstance(d, dict) else json.loads(d))
    assert details.map(lambda d: "attribution" in d).all()


def test_a_failed_write_leaves_nothing(database_url: str) -> None:
    engine_for(database_url).dispose()
    created = dt.datetime(2026, 11, 20, 16, 0, tzinfo=dt.UTC)
    run = {
        "run_id": "x",
        "as_of": dt.date(2026, 11, 20),
        "created_at": created,
        "status": "OPTIMAL",
        "constraint_set": "t",
        "solver": "CLARABEL",
        "gamma": 0.0,
        "state": "NORMAL",
        "record": {},
    }
    good = {
        "action_id": "a1",
        "run_id": "x",
        "timestamp": created,
        "ticker": "AAA",
        "decision_id": "D1",
        "strategy_id": "s1",
        "action_type": "OK",
        "details_json": {},
    }
    with pytest.raises(IntegrityError):
        write_run(database_url, run, [good, dict(good)], [])  # duplicate action_id: the write fails
    assert counts(database_url) == dict.fromkeys(TABLES, 0)
    assert write_run(database_url, run, [good], []) is True  # the retry completes it
    assert counts(database_url)["risk_actions"] == 1


def test_rebalance_store_argument(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    book = hand_book({"AAA": 100.0})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.01)]),
        "default",
        store=url,
        run_id="abc",
        state="NORMAL",
        risk_aversion=0.0,
    )
    assert counts(url)["risk_runs"] == 1
    with sa.create_engine(url).connect() as conn:
        status = conn.execute(
            sa.text("select status from risk_runs where run_id='abc'")
        ).scalar_one()
    assert status == result.status


def _writer(url: str, run_ids: list[str]) -> int:
    stored = 0
    for run_id in run_ids:
        stored += bool(store_result(small_result(run_id), url))
    return stored


def test_two_processes_writing_at_once_lose_nothing_and_duplicate_nothing(
    postgres_url: str,
) -> None:
    url = postgres_url
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS concurrency"))
        conn.execute(sa.text("CREATE DATABASE concurrency"))
    engine.dispose()
    url = url.rsplit("/", 1)[0] + "/concurrency"
    engine_for(url).dispose()
    shared = [f"shared-{k}" for k in range(6)]  # both processes write these run_ids
    jobs = [[f"a-{k}" for k in range(6)] + shared, [f"b-{k}" for k in range(6)] + shared[::-1]]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        stored = pool.starmap(_writer, [(url, ids) for ids in jobs])
    per_run = len(small_result().actions)
    assert sum(stored) == 18  # every run_id stored exactly once, whoever won the race
    assert counts(url)["risk_runs"] == 18
    assert counts(url)["risk_actions"] == 18 * per_run


def test_a_connection_killed_mid_write_leaves_no_partial_run(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/faults"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS faults"))
        conn.execute(sa.text("CREATE DATABASE faults"))
    engine_for(url).dispose()
    result = small_result("killed", debate=True)
    writer = sa.create_engine(url)
    killed: list[int] = []

    @sa.event.listens_for(writer, "before_cursor_execute")
    def kill_mid_write(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        # The run row and its actions are already sent; kill the connection before the targets.
        if not killed and statement.lstrip().upper().startswith("INSERT INTO TARGET_POSITIONS"):
            pid = conn.connection.dbapi_connection.info.backend_pid
            killed.append(pid)
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    with pytest.raises(sa.exc.OperationalError):
        store_result(result, writer)
    assert killed
    assert counts(url) == dict.fromkeys(TABLES, 0)  # nothing of the run was written
    assert store_result(result, url) is True  # the retry completes it, once
    assert store_result(result, url) is False
    assert counts(url)["risk_actions"] == len(result.actions)
    assert counts(url)["target_positions"] == len(result.targets)
    writer.dispose()
    admin.dispose()
