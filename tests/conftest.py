from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

from riskopt.data.book import Book
from riskopt.data.loaders import load_book, load_decisions

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"

# The property tests draw new random examples on every local run and keep the failures
# they find in .hypothesis/ (which replays them on that machine). Under CI (the CI
# variable set, as CI services do) they replay one fixed sequence instead, so that
# whether a change lands never depends on the draw.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def sample() -> tuple[Book, pd.DataFrame]:
    """The shipped sample book and its decisions."""
    return load_book(SAMPLES / "book"), load_decisions(SAMPLES / "decisions.csv")


@pytest.fixture(scope="session")
def postgres_url():  # type: ignore[no-untyped-def]
    """A fresh PostgreSQL server for the session (skipped, saying why, without binaries)."""
    from tests.postgres import throwaway_server

    with throwaway_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):  # type: ignore[no-untyped-def]
    """Each storage test runs against SQLite and a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.sqlite'}"
    import sqlalchemy as sa

    base = request.getfixturevalue("postgres_url")
    name = f"t{abs(hash(request.node.nodeid)) % 10**12}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"
