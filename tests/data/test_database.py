"""The runtime database as a source: a seeded book gives the same result as from files."""

from __future__ import annotations

import tomllib

import pandas as pd
import pytest
from typer.testing import CliRunner

from riskopt.constraints.config import SETS_DIR, ConstraintSet
from riskopt.data.database import (
    load_book,
    load_constraint_document,
    load_decisions,
    save_constraint_document,
    seed_book,
)
from riskopt.data.errors import BookLoadError
from riskopt.optimizer import rebalance
from riskopt.optimizer.cli import app


def test_round_trip_gives_the_same_result(sample, database_url: str) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    seed_book(database_url, book, dec, pipeline_run_id="p1")
    loaded = load_book(database_url, book.as_of)
    assert loaded.nav == book.nav and len(loaded.positions) == len(book.positions)
    from_db = load_decisions(database_url, pipeline_run_id="p1")
    assert len(from_db) == len(dec)
    assert len(load_decisions(database_url, run_date=book.as_of)) == len(dec)
    a = rebalance(book, dec, "default", state="NORMAL", risk_aversion=1.0)
    b = rebalance(loaded, from_db, "default", state="NORMAL", risk_aversion=1.0)
    pd.testing.assert_frame_equal(
        a.targets[["ticker", "target_position", "action_type"]],
        b.targets[["ticker", "target_position", "action_type"]],
    )


def test_constraint_sets_from_rows_validate_like_toml(database_url: str) -> None:
    document = tomllib.loads((SETS_DIR / "default.toml").read_text())
    save_constraint_document(database_url, "default", document)
    from_rows = ConstraintSet.from_dict(
        load_constraint_document(database_url, "default"), source="risk_configs"
    )
    assert from_rows == ConstraintSet.load("default")
    with pytest.raises(BookLoadError):
        load_constraint_document(database_url, "missing")


def test_a_missing_date_is_a_load_error(sample, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    book, dec = sample
    seed_book(url, book, dec)
    with pytest.raises(BookLoadError, match="2020-01-01"):
        load_book(url, "2020-01-01")
    # In a run, an unloadable portfolio state is DEGRADED, never a crash.


def test_seed_demo_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    result = CliRunner().invoke(app, ["db", "seed-demo", "--url", url])
    assert result.exit_code == 0, result.output
    book = load_book(url, "2026-11-20")
    assert len(book.market) == 500
    assert (
        ConstraintSet.from_dict(load_constraint_document(url, "conservative")).name
        == "conservative"
    )


def test_the_latest_black_swan_state_drives_the_run(sample, database_url: str) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from riskopt.constraints.states import BlackSwanState
    from riskopt.data.database import load_black_swan_state, save_black_swan_state

    assert load_black_swan_state(database_url) is None
    now = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)
    save_black_swan_state(database_url, "ELEVATED", now - dt.timedelta(hours=3))
    save_black_swan_state(
        database_url, "EMERGENCY", now - dt.timedelta(hours=1), {"forced_derisk": 0.3}
    )
    row = load_black_swan_state(database_url)
    assert (
        row is not None
        and row["state"] == "EMERGENCY"
        and row["overrides"] == {"forced_derisk": 0.3}
    )
    book, dec = sample
    result = rebalance(
        book, dec, "default", state=BlackSwanState(**row), risk_aversion=1.0, now=now
    )
    assert (result.run.state, result.run.state_source) == ("EMERGENCY", "given")
    stale = rebalance(
        book,
        dec,
        "default",
        state=BlackSwanState(**row),
        risk_aversion=1.0,
        now=now + dt.timedelta(days=3),
    )
    assert (
        stale.run.state_source == "stale" and stale.run.state == "EMERGENCY"
    )  # never relaxed below
