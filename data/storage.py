"""SQL storage of the gate's outputs (SQLAlchemy 2): runs, actions, targets, debates.

A run is written in one transaction: its row, every action and every target, or
nothing. Writing a ``run_id`` that is already stored writes nothing (idempotent retry).
JSON columns are JSON on SQLite and JSONB on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class RiskRun(Base):
    __tablename__ = "risk_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[dt.date] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    constraint_set: Mapped[str] = mapped_column(String(128))
    solver: Mapped[str | None] = mapped_column(String(32))
    gamma: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    record: Mapped[dict[str, Any]] = mapped_column(JSONType)


class RiskAction(Base):
    __tablename__ = "risk_actions"

    action_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("risk_runs.run_id"), index=True)
    timestamp: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ticker: Mapped[str | None] = mapped_column(String(64))
    decision_id: Mapped[str | None] = mapped_column(String(128))
    strategy_id: Mapped[str | None] = mapped_column(String(128))
    action_type: Mapped[str] = mapped_column(String(16))
    details_json: Mapped[dict[str, Any]] = mapped_column(JSONType)


class TargetPosition(Base):
    __tablename__ = "target_positions"

    run_id: Mapped[str] = mapped_column(ForeignKey("risk_runs.run_id"), primary_key=True)
    ticker: Mapped[str] = mapped_column(String(64), primary_key=True)
    current_position: Mapped[float] = mapped_column(Float)
    target_position: Mapped[float] = mapped_column(Float)
    delta_position: Mapped[float] = mapped_column(Float)
    target_weight: Mapped[float | None] = mapped_column(Float)
    proposed_weight: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(Integer)
    action_type: Mapped[str] = mapped_column(String(16))
    risk_reasoning_summary: Mapped[str] = mapped_column(Text)


class RiskDebate(Base):
    """One turn of the risk debate: the portfolio proposal (``ticker`` empty) or one name's."""

    __tablename__ = "risk_debates"

    run_id: Mapped[str] = mapped_column(ForeignKey("risk_runs.run_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    round: Mapped[int | None] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(16))
    ticker: Mapped[str | None] = mapped_column(String(64))
    risk_aversion: Mapped[float] = mapped_column(Float)
    rationale: Mapped[str | None] = mapped_column(Text)
    provenance: Mapped[str] = mapped_column(String(16))


def engine_for(url: str) -> Engine:
    """An engine for ``url`` with the schema created if missing."""
    engine = create_engine(url, future=True)
    Base.metadata.create_all(engine)
    return engine


def write_run(
    url: str | Engine,
    run: Mapping[str, Any],
    actions: Iterable[Mapping[str, Any]],
    targets: Iterable[Mapping[str, Any]],
    debates: Iterable[Mapping[str, Any]] = (),
) -> bool:
    """Write one run, its actions and targets in one transaction.

    Returns ``False`` (and writes nothing) when ``run["run_id"]`` is already stored.
    """
    engine = engine_for(url) if isinstance(url, str) else url
    try:
        with Session(engine) as session, session.begin():
            exists = session.scalar(select(RiskRun.run_id).where(RiskRun.run_id == run["run_id"]))
            if exists is not None:
                return False
            session.add(RiskRun(**run))
            session.flush()
            session.add_all(RiskAction(**a) for a in actions)
            session.add_all(TargetPosition(**t) for t in targets)
            session.add_all(RiskDebate(**d) for d in debates)
    except IntegrityError:
        # Two writers raced on the same run_id: the other one stored it (whole, in its
        # own transaction), so this retry has nothing to add. Any other conflict re-raises.
        with Session(engine) as session:
            if (
                session.scalar(select(RiskRun.run_id).where(RiskRun.run_id == run["run_id"]))
                is not None
            ):
                return False
        raise
    return True
