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


# -- inputs: what the gate reads -------------------------------------------------------------


class Position(Base):
    __tablename__ = "positions"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    strategy_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ticker: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[float] = mapped_column(Float)


class StockMetric(Base):
    __tablename__ = "stock_metrics"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    ticker: Mapped[str] = mapped_column(String(64), primary_key=True)
    price: Mapped[float | None] = mapped_column(Float)
    adv_shares: Mapped[float] = mapped_column(Float)
    spread_bps: Mapped[float] = mapped_column(Float)
    volatility: Mapped[float] = mapped_column(Float)
    sector: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(16))
    cluster: Mapped[str | None] = mapped_column(String(64))
    lot_size: Mapped[int] = mapped_column(Integer, default=1)
    tick_size: Mapped[float] = mapped_column(Float, default=0.01)


class PipelineDecision(Base):
    __tablename__ = "pipeline_decisions"

    decision_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_date: Mapped[dt.date] = mapped_column(index=True)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ticker: Mapped[str | None] = mapped_column(String(64))
    strategy_id: Mapped[str | None] = mapped_column(String(128))
    target_weight: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)


class RiskConfig(Base):
    """A constraint set as its TOML document, parsed to JSON (validated on load)."""

    __tablename__ = "risk_configs"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class StrategyConfig(Base):
    """Per-strategy budgets of a constraint set (its ``[strategies.NAME]`` section)."""

    __tablename__ = "strategy_configs"

    config_name: Mapped[str] = mapped_column(ForeignKey("risk_configs.name"), primary_key=True)
    strategy_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)


class BlackSwanStateRow(Base):
    __tablename__ = "black_swan_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    overrides: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class NavHistory(Base):
    __tablename__ = "nav_history"

    date: Mapped[dt.date] = mapped_column(primary_key=True)
    nav: Mapped[float] = mapped_column(Float)


class StrategyNav(Base):
    """Each strategy's own NAV path (per-strategy drawdown budgets)."""

    __tablename__ = "strategy_nav"

    date: Mapped[dt.date] = mapped_column(primary_key=True)
    strategy_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    nav: Mapped[float] = mapped_column(Float)


class FactorLoading(Base):
    __tablename__ = "factor_loadings"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    ticker: Mapped[str] = mapped_column(String(64), primary_key=True)
    factor: Mapped[str] = mapped_column(String(64), primary_key=True)
    loading: Mapped[float] = mapped_column(Float)


class FactorCovariance(Base):
    __tablename__ = "factor_covariance"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    factor_i: Mapped[str] = mapped_column(String(64), primary_key=True)
    factor_j: Mapped[str] = mapped_column(String(64), primary_key=True)
    covariance: Mapped[float] = mapped_column(Float)


class SpecificVariance(Base):
    __tablename__ = "specific_variance"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    ticker: Mapped[str] = mapped_column(String(64), primary_key=True)
    specific_var: Mapped[float] = mapped_column(Float)


# -- outputs: what the gate writes --------------------------------------------------------------


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


_MIGRATED: set[str] = set()


def engine_for(url: str) -> Engine:
    """An engine for ``url``, its schema brought to head by the migrations (once per process)."""
    if url not in _MIGRATED:
        from data.migrate import upgrade

        upgrade(url)
        _MIGRATED.add(url)
    return create_engine(url, future=True)


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
    if isinstance(url, str):
        engine = engine_for(url)
        try:
            return write_run(engine, run, actions, targets, debates)
        finally:
            engine.dispose()  # the engine (and its pooled connections) was ours
    engine = url
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
