"""Alembic environment: the models of :mod:`riskopt.data.storage` on the caller's connection.

:mod:`riskopt.data.migrate` passes a connection already in a transaction that holds the migration
lock (``config.attributes["connection"]``), so the URL never goes through the ini file's
``%`` interpolation and the whole command commits or rolls back as one.
"""

from __future__ import annotations

from alembic import context

from riskopt.data.storage import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Migrate on the caller's connection, or on a locked one of the ini's URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    from riskopt.data.migrate import migration_connection

    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    with migration_connection(url) as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
