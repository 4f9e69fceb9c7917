"""The run, its actions, targets and debate go in one transaction, on SQLite and on a real
PostgreSQL server; a retry writes nothing twice; concurrent writers lose nothing."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from riskopt.constraints.config import ConstraintSet
from riskopt.data.errors import ValidationError
from riskopt.data.storage import engine_for, make_engine, write_run
from riskopt.optimizer import rebalance
from riskopt.optimizer.store import store_result
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


def stored(url: str, query: str) -> list[sa.Row]:  # type: ignore[type-arg]
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.text(query)))
    engine.dispose()
    return rows


def as_dict(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


LONG_TICKER = "T" * 100 + "-ünï-名前-🚀"
ODD_TICKER = "B'\"\\ %s %(x)s ?_\t\n "


def test_identifiers_of_any_length_and_character_are_stored_as_given(database_url: str) -> None:
    book = hand_book({LONG_TICKER: 100.0, ODD_TICKER: 50.0}, {("s" * 200, LONG_TICKER): 0.02})
    long_id, odd_id, strategy = "D" * 300 + "名", "D2 '%' \\ \"", "s" * 200
    cs = ConstraintSet.from_dict({"name": "set-" + "n" * 300 + "✓"})
    run_id = "r" * 200 + "ü"
    result = rebalance(
        book,
        decisions([(long_id, strategy, LONG_TICKER, 0.05), (odd_id, "s1", ODD_TICKER, 0.01)]),
        cs,
        run_id=run_id,
        state="NORMAL",
        risk_aversion=None,  # the debate's rows carry the tickers too
    )
    assert store_result(result, database_url) is True
    assert store_result(result, database_url) is False  # found again by its long run_id
    runs = stored(database_url, "select run_id, constraint_set from risk_runs")
    assert [tuple(r) for r in runs] == [(run_id, cs.name)]
    actions = stored(database_url, "select decision_id, ticker, strategy_id from risk_actions")
    expected = result.actions[["decision_id", "ticker", "strategy_id"]]
    assert sorted(map(tuple, actions)) == sorted(map(tuple, expected.to_numpy().tolist()))
    assert {(long_id, LONG_TICKER, strategy), (odd_id, ODD_TICKER, "s1")} <= set(
        map(tuple, actions)
    )
    targets = stored(database_url, "select ticker from target_positions")
    assert {r[0] for r in targets} == {LONG_TICKER, ODD_TICKER}
    debated = stored(database_url, "select ticker from risk_debates where ticker is not null")
    assert {r[0] for r in debated} == {LONG_TICKER, ODD_TICKER}


def test_a_nul_byte_rejects_the_decision_and_the_run_is_stored(database_url: str) -> None:
    book = hand_book({"AAA": 100.0, "BBB": 50.0})
    rows = [
        ("D\x001", "s1", "AAA", 0.01),
        ("D2", "s\x00", "AAA", 0.01),
        ("D3", "s1", "B\x00", 0.01),
    ]
    result = rebalance(
        book, decisions([*rows, ("D4", "s1", "BBB", 0.01)]), "default",
        run_id="nul", state="NORMAL", risk_aversion=0.0,
    )  # fmt: skip
    actions = result.actions.set_index("decision_id")
    for decision_id, column in (("D\x001", "decision_id"), ("D2", "strategy_id")):
        assert actions.loc[decision_id, "action_type"] == "REJECTED"
        assert f"{column} contains a NUL byte" in actions.loc[decision_id, "details_json"]
    assert actions.loc["D3", "action_type"] == "REJECTED"  # B\x00 is no ticker of the book
    assert actions.loc["D4", "action_type"] != "REJECTED"
    assert store_result(result, database_url) is True
    ids = {r[0] for r in stored(database_url, "select decision_id from risk_actions")}
    assert ids == {"D\ufffd1", "D2", "D3", "D4"}  # the NUL byte shows as U+FFFD
    strategies = {r[0] for r in stored(database_url, "select strategy_id from risk_actions")}
    assert "s\ufffd" in strategies


def test_a_book_with_a_nul_byte_in_a_name_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"market\.ticker: must not contain a NUL byte"):
        hand_book({"A\x00A": 100.0})
    with pytest.raises(ValidationError, match=r"market\.sector: must not contain a NUL byte"):
        hand_book({"AAA": 100.0}, sectors={"AAA": "Te\x00ch"})


def test_non_finite_numbers_in_json_are_stored_as_null(database_url: str) -> None:
    engine_for(database_url).dispose()
    created = dt.datetime(2026, 11, 20, 16, 0, tzinfo=dt.UTC)
    nan, inf = float("nan"), float("inf")
    record = {"a": nan, "b": [inf, -inf, 1.5], "c": {"d": nan, "k\x00": "x\x00y"}}
    run = {
        "run_id": "j", "as_of": created.date(), "created_at": created, "status": "OPTIMAL",
        "constraint_set": "t", "solver": None, "gamma": 0.0, "state": "NORMAL",
        "record": record,
    }  # fmt: skip
    action = {
        "action_id": "j-1", "run_id": "j", "timestamp": created, "ticker": "AAA",
        "decision_id": "D1", "strategy_id": "s1", "action_type": "REJECTED",
        "details_json": {"target_weight": nan, "limit": np.float64(inf)},
    }  # fmt: skip
    debate = {
        "run_id": "j", "seq": 0, "round": 1, "speaker": "risk", "ticker": None,
        "risk_aversion": 1.0, "rationale": "why\x00not", "provenance": "rule",
    }  # fmt: skip
    assert write_run(database_url, run, [action], [], [debate]) is True
    [(got_record,)] = stored(database_url, "select record from risk_runs")
    assert as_dict(got_record) == {
        "a": None,
        "b": [None, None, 1.5],
        "c": {"d": None, "k\ufffd": "x\ufffdy"},
    }
    [(details,)] = stored(database_url, "select details_json from risk_actions")
    assert as_dict(details) == {"target_weight": None, "limit": None}
    [(rationale,)] = stored(database_url, "select rationale from risk_debates")
    assert rationale == "why\ufffdnot"
    text = stored(database_url, "select cast(record as text) from risk_runs")[0][0]
    assert "NaN" not in text and "Infinity" not in text  # strict JSON in the database itself


def test_a_rejected_nan_weight_is_stored_on_every_backend(database_url: str) -> None:
    book = hand_book({"AAA": 100.0})
    result = rebalance(
        book, decisions([("D1", "s1", "AAA", float("nan"))]), "default",
        run_id="nan", state="NORMAL", risk_aversion=0.0,
    )  # fmt: skip
    assert store_result(result, database_url) is True
    [(kind, details)] = stored(database_url, "select action_type, details_json from risk_actions")
    assert kind == "REJECTED" and "not a finite number" in as_dict(details)["reason"]


def test_the_json_serializer_never_writes_nan() -> None:
    engine = make_engine("sqlite://")
    serialize = engine.dialect._json_serializer  # type: ignore[attr-defined]
    assert serialize({"x": float("nan"), "y": [float("-inf")]}) == '{"x": null, "y": [null]}'
    engine.dispose()
