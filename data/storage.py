"""SQL storage of the gate's outputs (SQLAlchemy 2): runs, actions, targets, debates.

A run is written in one transaction: its row, every action and every target, or
nothing. Writing a ``run_id`` that is already stored writes nothing (idempotent retry).
JSON columns are JSON on SQLite and JSONB on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    Text,
    event,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


# -- inputs: what the gate reads -------------------------------------------------------------


class Position(Base):
    __tablename__ = "positions"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    strategy_id: Mapped[str] = mapped_column(Text, primary_key=True)
    ticker: Mapped[str] = mapped_column(Text, primary_key=True)
    quantity: Mapped[float] = mapped_column(Float)


class StockMetric(Base):
    __tablename__ = "stock_metrics"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    ticker: Mapped[str] = mapped_column(Text, primary_key=True)
    price: Mapped[float | None] = mapped_column(Float)
    adv_shares: Mapped[float] = mapped_column(Float)
    spread_bps: Mapped[float] = mapped_column(Float)
    volatility: Mapped[float] = mapped_column(Float)
    sector: Mapped[str] = mapped_column(Text)
    country: Mapped[str] = mapped_column(Text)
    cluster: Mapped[str | None] = mapped_column(Text)
    lot_size: Mapped[int] = mapped_column(Integer, default=1)
    tick_size: Mapped[float] = mapped_column(Float, default=0.01)


class PipelineDecision(Base):
    __tablename__ = "pipeline_decisions"

    decision_id: Mapped[str] = mapped_column(Text, primary_key=True)
    run_date: Mapped[dt.date] = mapped_column(index=True)
    pipeline_run_id: Mapped[str | None] = mapped_column(Text, index=True)
    ticker: Mapped[str | None] = mapped_column(Text)
    strategy_id: Mapped[str | None] = mapped_column(Text)
    target_weight: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)


class RiskConfig(Base):
    """A constraint set as its TOML document, parsed to JSON (validated on load)."""

    __tablename__ = "risk_configs"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class StrategyConfig(Base):
    """Per-strategy budgets of a constraint set (its ``[strategies.NAME]`` section)."""

    __tablename__ = "strategy_configs"

    config_name: Mapped[str] = mapped_column(ForeignKey("risk_configs.name"), primary_key=True)
    strategy_id: Mapped[str] = mapped_column(Text, primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)


class BlackSwanStateRow(Base):
    __tablename__ = "black_swan_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(Text)
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
    strategy_id: Mapped[str] = mapped_column(Text, primary_key=True)
    nav: Mapped[float] = mapped_column(Float)


class FactorLoading(Base):
    __tablename__ = "factor_loadings"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    ticker: Mapped[str] = mapped_column(Text, primary_key=True)
    factor: Mapped[str] = mapped_column(Text, primary_key=True)
    loading: Mapped[float] = mapped_column(Float)


class FactorCovariance(Base):
    __tablename__ = "factor_covariance"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    factor_i: Mapped[str] = mapped_column(Text, primary_key=True)
    factor_j: Mapped[str] = mapped_column(Text, primary_key=True)
    covariance: Mapped[float] = mapped_column(Float)


class SpecificVariance(Base):
    __tablename__ = "specific_variance"

    as_of: Mapped[dt.date] = mapped_column(primary_key=True)
    ticker: Mapped[str] = mapped_column(Text, primary_key=True)
    specific_var: Mapped[float] = mapped_column(Float)


# -- outputs: what the gate writes --------------------------------------------------------------


class RiskRun(Base):
    __tablename__ = "risk_runs"

    run_id: Mapped[str] = mapped_column(Text, primary_key=True)
    as_of: Mapped[dt.date | None] = mapped_column()
    """The book's date; NULL for a ``DEGRADED`` run whose book gave none."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text)
    constraint_set: Mapped[str] = mapped_column(Text)
    solver: Mapped[str | None] = mapped_column(Text)
    gamma: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(Text)
    record: Mapped[dict[str, Any]] = mapped_column(JSONType)


class RiskAction(Base):
    __tablename__ = "risk_actions"

    action_id: Mapped[str] = mapped_column(Text, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("risk_runs.run_id"), index=True)
    timestamp: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ticker: Mapped[str | None] = mapped_column(Text)
    decision_id: Mapped[str | None] = mapped_column(Text)
    strategy_id: Mapped[str | None] = mapped_column(Text)
    action_type: Mapped[str] = mapped_column(Text)
    details_json: Mapped[dict[str, Any]] = mapped_column(JSONType)


class TargetPosition(Base):
    __tablename__ = "target_positions"

    run_id: Mapped[str] = mapped_column(ForeignKey("risk_runs.run_id"), primary_key=True)
    ticker: Mapped[str] = mapped_column(Text, primary_key=True)
    current_position: Mapped[float] = mapped_column(Float)
    target_position: Mapped[float] = mapped_column(Float)
    delta_position: Mapped[float] = mapped_column(Float)
    target_weight: Mapped[float | None] = mapped_column(Float)
    proposed_weight: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(Integer)
    action_type: Mapped[str] = mapped_column(Text)
    risk_reasoning_summary: Mapped[str] = mapped_column(Text)


class RiskDebate(Base):
    """One turn of the risk debate: the portfolio proposal (``ticker`` empty) or one name's."""

    __tablename__ = "risk_debates"

    run_id: Mapped[str] = mapped_column(ForeignKey("risk_runs.run_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    round: Mapped[int | None] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(Text)
    ticker: Mapped[str | None] = mapped_column(Text)
    risk_aversion: Mapped[float] = mapped_column(Float)
    rationale: Mapped[str | None] = mapped_column(Text)
    provenance: Mapped[str] = mapped_column(Text)


NUL_REPLACEMENT = "\ufffd"
"""What a NUL byte in stored text becomes: PostgreSQL text cannot hold one, so neither
backend is given one (U+FFFD, the Unicode replacement character, on both)."""


def clean_text(value: str) -> str:
    """``value`` with every NUL byte replaced, storable on every backend."""
    return value.replace("\x00", NUL_REPLACEMENT) if "\x00" in value else value


def strict_json(value: Any) -> Any:
    """``value`` as strict JSON, non-finite numbers as null and NUL bytes replaced.

    PostgreSQL's JSONB refuses NaN, Infinity and ``\\u0000``, which SQLite would store.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {clean_text(str(k)): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [strict_json(v) for v in value]
    if isinstance(value, np.generic):
        return strict_json(value.item())
    return clean_text(str(value))


def _strict_dumps(value: Any) -> str:
    """The JSON serializer of every engine: strict JSON or an error, never NaN."""
    return json.dumps(strict_json(value), allow_nan=False)


def storable(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row ready for any backend: text without NUL bytes, NaN as NULL, JSON strict."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, str):
            value = clean_text(value)
        elif isinstance(value, float) and math.isnan(value):
            value = None
        elif isinstance(value, (Mapping, list)):
            value = strict_json(value)
        out[key] = value
    return out


def make_engine(url: str | URL, *, immediate: bool = False) -> Engine:
    """An engine for ``url`` that writes strict JSON and, on SQLite, wraps DDL in transactions.

    SQLAlchemy's pysqlite recipe emits BEGIN itself (``BEGIN IMMEDIATE`` with ``immediate``,
    taking the file's write lock so that writers and migrations serialise across processes).
    """
    url = sa.make_url(url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, json_serializer=_strict_dumps)
    engine = sa.create_engine(url, json_serializer=_strict_dumps, connect_args={"timeout": 60})
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


_AT_HEAD: set[str] = set()


def forget_schema(url: str) -> None:
    """Make this process read ``url``'s schema again before its next write (after a downgrade)."""
    _AT_HEAD.discard(url)


def engine_for(url: str) -> Engine:
    """An engine for ``url``, its schema brought to head first.

    The schema is read once per URL and process; a database already at head is only read,
    never given DDL.
    """
    if url not in _AT_HEAD:
        from riskopt.data.migrate import ensure_head

        ensure_head(url)
        _AT_HEAD.add(url)
    return make_engine(url, immediate=True)


def write_run(
    url: str | Engine,
    run: Mapping[str, Any],
    actions: Iterable[Mapping[str, Any]],
    targets: Iterable[Mapping[str, Any]],
    debates: Iterable[Mapping[str, Any]] = (),
) -> bool:
    """Write one run, its actions and targets in one transaction.

    Returns ``False`` (and writes nothing) when ``run["run_id"]`` is already stored. Rows
    are made :func:`storable` first, so every backend stores the same values.
    """
    if isinstance(url, str):
        engine = engine_for(url)
        try:
            return write_run(engine, run, actions, targets, debates)
        finally:
            engine.dispose()  # the engine (and its pooled connections) was ours
    engine = url
    run = storable(run)
    actions = [storable(a) for a in actions]
    targets = [storable(t) for t in targets]
    debates = [storable(d) for d in debates]
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
