"""Schema migrations with Alembic: from an empty database to head, and back.

``riskopt db upgrade`` (or :func:`upgrade`) brings any database to the current schema;
the migrations live in ``data/migrations/versions``. Never edit a released migration:
add a new one (``alembic revision --autogenerate`` against a database at head).

Every upgrade or downgrade runs in one transaction (on SQLite too), so a process killed
partway leaves the database as it was; and it holds a lock that serialises migrations
across processes (PostgreSQL: an advisory lock; SQLite: the file's write lock).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from riskopt.data.errors import DatabaseMissingError
from riskopt.data.storage import forget_schema, make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

MIGRATION_LOCK = 0x7269736B6F7074
"""The PostgreSQL advisory lock key held while migrating ("riskopt" in ASCII)."""


def display_url(url: str | sa.URL) -> str:
    """``url`` as it may be shown in a message or log line: the password masked."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable database URL>"


def alembic_config(url: str | sa.URL | None = None) -> Config:
    """Alembic's configuration; ``url`` is escaped for its ini interpolation (``%``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        text = sa.make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str | None:
    """The newest revision of the shipped migrations."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: sa.Connection) -> str | None:
    """The revision ``conn``'s database is at (``None``: no schema yet); reads only."""
    return MigrationContext.configure(conn).get_current_revision()


def _missing_reason(url: str | sa.URL) -> str | None:
    """Why ``url`` names no usable database, or ``None`` when it names one.

    A SQLite file is judged by its path (connecting would create it; an in-memory database
    always exists); a server database by connecting to it.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        name = parsed.database
        if not name or name == ":memory:" or name.startswith("file:") or Path(name).exists():
            return None
        return "no such file"
    engine = make_engine(parsed)
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as err:
        return str(err.orig or err).strip().splitlines()[-1]
    finally:
        engine.dispose()


def require_database(url: str | sa.URL) -> None:
    """Raise :class:`DatabaseMissingError` unless ``url`` names an existing database.

    The ``db`` commands call it first, so that only ``db init`` ever creates a database.
    """
    reason = _missing_reason(url)
    if reason is not None:
        raise DatabaseMissingError(
            f"no database at {display_url(url)} ({reason}): `riskopt db init` creates one"
        )


@contextmanager
def migration_connection(url: str | sa.URL) -> Iterator[sa.Connection]:
    """A connection in one transaction holding the migration lock; commits on success."""
    engine = make_engine(url, immediate=True)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            yield conn
    finally:
        engine.dispose()


def _migrate(url: str | sa.URL, step: Callable[[Config], None]) -> None:
    """Run one Alembic command on a locked connection, in one transaction."""
    with migration_connection(url) as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        step(config)


def upgrade(url: str, revision: str = "head", *, create: bool = True) -> None:
    """Bring ``url``'s schema up to ``revision``, all of it or none of it.

    With ``create=False`` a missing database is an error (:class:`DatabaseMissingError`)
    rather than created (SQLite creates a file on first connect).
    """
    if not create:
        require_database(url)
    _migrate(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str = "base") -> None:
    """Bring ``url``'s schema down to ``revision``; a missing database is an error."""
    require_database(url)
    forget_schema(url)
    _migrate(url, lambda config: command.downgrade(config, revision))


def init(url: str) -> None:
    """Create the database if need be and its schema at head (``riskopt db init``)."""
    upgrade(url, create=True)


def ensure_head(url: str) -> None:
    """Upgrade ``url`` to head unless it is already there (then only one read, no DDL)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            at_head = current_revision(conn) == head_revision()
    finally:
        engine.dispose()
    if not at_head:
        upgrade(url)
