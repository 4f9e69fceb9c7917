"""The override report on a database with several days of runs."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import sqlalchemy as sa
from typer.testing import CliRunner

from riskopt.optimizer import rebalance
from riskopt.optimizer.cli import app
from riskopt.optimizer.report import decision_actions, override_table


def test_report_counts_match_the_actions_written(sample, database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    book, dec = sample
    for k, state in enumerate(("NORMAL", "ELEVATED", "NORMAL")):
        day = book.as_of + dt.timedelta(days=k)
        rebalance(
            dataclasses.replace(book, as_of=day),
            dec,
            "default",
            state=state,
            risk_aversion=1.0,
            store=database_url,
            run_id=f"day{k}",
        )
    table = override_table(decision_actions(database_url))
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        written = pd.read_sql(
            "select strategy_id, action_type, count(*) as n from risk_actions "
            "where decision_id is not null group by strategy_id, action_type",
            conn,
        )
    engine.dispose()
    for row in written.itertuples(index=False):
        assert table.loc[row.strategy_id, row.action_type] == row.n
    assert table["decisions"].sum() == 3 * len(dec)
    shares = table[[f"{label} share" for label in ("OK", "SCALED_DOWN", "CAPPED", "REJECTED")]].sum(
        axis=1
    )
    assert (abs(shares - 1) < 1e-12).all()
    since = override_table(decision_actions(database_url, since=book.as_of + dt.timedelta(days=2)))
    assert since["decisions"].sum() == len(dec)

    png = tmp_path / "overrides.png"
    result = CliRunner().invoke(app, ["report", "--db", database_url, "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "momentum" in result.output and "most frequent causes" in result.output
    assert png.stat().st_size > 1000
    empty = CliRunner().invoke(app, ["report", "--db", database_url, "--since", "2099-01-01"])
    assert empty.exit_code == 2 and "no stored decisions" in empty.output
