"""Schema migrations with Alembic: from an empty database to head, and back.

``riskopt db upgrade`` (or :func:`upgrade`) brings any database to the current schema;
the migrations live in ``data/migrations/versions``. Never edit a released migration:
add a new one (``alembic revision --autogenerate`` against a database at head).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
