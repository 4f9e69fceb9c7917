"""The run, its actions and targets go in one transaction; a retry writes nothing twice."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from data.storage import engine_for, write_run
from optimizer import rebalance
from optimizer.store import store_result
from tests.helpers import decisions, hand_book


def counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in ("risk_runs", "risk_actions", "target_positions")
        }


@pytest.fixture()
def result():  # type: ignore[no-untyped-def]
    book = hand_book({"AAA": 100.0, "BBB": 50.0}, {("s1", "AAA"): 0.02})
    return rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.08), ("D2", "s1", "BBB", 0.01)]),
        "default",
        run_id="r1",
        risk_aversion=0.0,
    )


def test_store_writes_the_whole_run_once(result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    assert store_result(result, url) is True
    assert counts(url) == {
        "risk_runs": 1,
        "risk_actions": len(result.actions),
        "target_positions": len(result.targets),
    }
    assert store_result(result, url) is False
    assert counts(url)["risk_actions"] == len(result.actions)
    stored = pd.read_sql("select * from risk_actions", sa.create_engine(url))
    assert set(stored["action_type"]) == set(result.actions["action_type"])
    assert stored["details_json"].str.contains("attribution").all()


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    engine_for(url)
    run = {
        "run_id": "x",
        "as_of": pd.Timestamp("2026-11-20").date(),
        "created_at": pd.Timestamp.now(tz="UTC"),
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
        "timestamp": run["created_at"],
        "ticker": "AAA",
        "decision_id": "D1",
        "strategy_id": "s1",
        "action_type": "OK",
        "details_json": {},
    }
    with pytest.raises(IntegrityError):
        write_run(url, run, [good, dict(good)], [])  # duplicate action_id: the write fails
    assert counts(url) == {"risk_runs": 0, "risk_actions": 0, "target_positions": 0}


def test_rebalance_store_argument(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    book = hand_book({"AAA": 100.0})
    result = rebalance(
        book,
        decisions([("D1", "s1", "AAA", 0.01)]),
        "default",
        store=url,
        run_id="abc",
        risk_aversion=0.0,
    )
    assert counts(url)["risk_runs"] == 1
    with sa.create_engine(url).connect() as conn:
        status = conn.execute(
            sa.text("select status from risk_runs where run_id='abc'")
        ).scalar_one()
    assert status == result.status
