"""The runtime database as the gate's source: seed it, and load books, decisions and
constraint documents back (the execution service and orchestrator read the outputs).

Tables are those of :mod:`riskopt.data.storage`; every function takes a SQLAlchemy URL and brings
the schema to head first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from riskopt.data.book import Book, RiskModel
from riskopt.data.contracts import DecisionsInput, check_decision_columns
from riskopt.data.errors import BookLoadError
from riskopt.data.migrate import display_url
from riskopt.data.storage import (
    BlackSwanStateRow,
    FactorCovariance,
    FactorLoading,
    NavHistory,
    PipelineDecision,
    Position,
    RiskConfig,
    SpecificVariance,
    StockMetric,
    StrategyConfig,
    StrategyNav,
    clean_text,
    engine_for,
    storable,
    strict_json,
)

MARKET_COLUMNS = (
    "price",
    "adv_shares",
    "spread_bps",
    "volatility",
    "sector",
    "country",
    "cluster",
    "lot_size",
    "tick_size",
)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [
        {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in out
    ]


def _replace(engine: Engine, model: Any, rows: list[dict[str, Any]], **key: Any) -> None:
    table = model.__table__
    rows = [storable(r) for r in rows]
    with engine.begin() as conn:
        if key:
            conn.execute(sa.delete(table).where(*(table.c[k] == v for k, v in key.items())))
        if rows:
            conn.execute(sa.insert(table), rows)


def seed_book(
    url: str,
    book: Book,
    decisions: DecisionsInput | None = None,
    *,
    pipeline_run_id: str | None = None,
) -> None:
    """Write ``book`` (and its decisions: anything the gate takes as decisions) as of
    ``book.as_of``, replacing that date's rows."""
    engine = engine_for(url)
    as_of = book.as_of
    positions = book.positions.assign(as_of=as_of)[["as_of", "strategy_id", "ticker", "quantity"]]
    _replace(engine, Position, _records(positions), as_of=as_of)
    market = book.market.reset_index()[["ticker", *MARKET_COLUMNS]].assign(as_of=as_of)
    market["cluster"] = market["cluster"].where(market["cluster"].notna(), None)
    _replace(engine, StockMetric, _records(market), as_of=as_of)
    _seed_nav_history(engine, book)
    if book.strategy_nav is not None:
        _seed_strategy_nav(engine, book.strategy_nav)
    if book.risk_model is not None:
        _seed_risk_model(engine, book.risk_model, as_of)
    if decisions is not None:
        d = check_decision_columns(decisions)[
            ["decision_id", "ticker", "strategy_id", "target_weight", "confidence"]
        ]
        d = d.assign(run_date=as_of, pipeline_run_id=pipeline_run_id)
        _replace(engine, PipelineDecision, _records(d), run_date=as_of)
    engine.dispose()


def _seed_nav_history(engine: Engine, book: Book) -> None:
    """The NAV history, with ``book.nav`` as the NAV of ``as_of``; the dates written replace
    the stored ones."""
    as_of = book.as_of
    nav = book.nav_history.rename_axis("date").reset_index()
    nav["date"] = pd.to_datetime(nav["date"]).dt.date
    nav = nav[nav["date"] != as_of]
    nav_rows = [*_records(nav), {"date": as_of, "nav": float(book.nav)}]
    with engine.begin() as conn:
        conn.execute(
            sa.delete(NavHistory).where(NavHistory.date.in_([r["date"] for r in nav_rows]))
        )
        conn.execute(sa.insert(NavHistory), [storable(r) for r in nav_rows])


def _seed_strategy_nav(engine: Engine, strategy_nav: pd.DataFrame) -> None:
    """The per-strategy NAV paths as long rows; the dates written replace the stored ones."""
    paths = (
        strategy_nav.rename_axis("date")
        .reset_index()
        .melt(id_vars="date", var_name="strategy_id", value_name="nav")
        .dropna()
    )
    paths["date"] = pd.to_datetime(paths["date"]).dt.date
    with engine.begin() as conn:
        conn.execute(sa.delete(StrategyNav).where(StrategyNav.date.in_(sorted(set(paths["date"])))))
        conn.execute(sa.insert(StrategyNav), [storable(r) for r in _records(paths)])


def _seed_risk_model(engine: Engine, rm: RiskModel, as_of: dt.date) -> None:
    """Loadings, factor covariance and specific variances as long rows dated ``as_of``."""
    loadings = (
        rm.loadings.rename_axis("ticker")
        .reset_index()
        .melt(id_vars="ticker", var_name="factor", value_name="loading")
        .assign(as_of=as_of)
    )
    _replace(engine, FactorLoading, _records(loadings), as_of=as_of)
    cov = (
        rm.factor_cov.rename_axis("factor_i")
        .reset_index()
        .melt(id_vars="factor_i", var_name="factor_j", value_name="covariance")
        .assign(as_of=as_of)
    )
    _replace(engine, FactorCovariance, _records(cov), as_of=as_of)
    spec = (
        rm.specific_var.rename("specific_var")
        .rename_axis("ticker")
        .reset_index()
        .assign(as_of=as_of)
    )
    _replace(engine, SpecificVariance, _records(spec), as_of=as_of)


def load_book(url: str, as_of: dt.date | str) -> Book:
    """The book as of ``as_of`` from the database (validated like a book from files)."""
    day = pd.Timestamp(as_of).date()
    engine = engine_for(url)
    with engine.connect() as conn:

        def read(model: Any, **key: Any) -> pd.DataFrame:
            table = model.__table__
            query = sa.select(table).where(*(table.c[k] == v for k, v in key.items()))
            return pd.read_sql(query, conn)

        positions = read(Position, as_of=day)
        market = read(StockMetric, as_of=day)
        history = pd.read_sql(sa.select(NavHistory.__table__).where(NavHistory.date <= day), conn)
        loadings = read(FactorLoading, as_of=day)
        cov = read(FactorCovariance, as_of=day)
        spec = read(SpecificVariance, as_of=day)
        paths = pd.read_sql(sa.select(StrategyNav.__table__).where(StrategyNav.date <= day), conn)
    engine.dispose()
    if market.empty:
        raise BookLoadError(f"no stock_metrics as of {day} in {display_url(url)}")
    history["date"] = pd.to_datetime(history["date"])
    history = history.sort_values("date")
    on_day = history[history["date"] == pd.Timestamp(day)]
    if on_day.empty:
        raise BookLoadError(f"no nav_history row for {day} in {display_url(url)}")
    model = None
    if not loadings.empty:
        b = loadings.pivot(index="ticker", columns="factor", values="loading")
        factors = list(b.columns)
        f = cov.pivot(index="factor_i", columns="factor_j", values="covariance").reindex(
            index=factors, columns=factors
        )
        model = RiskModel(
            loadings=b, factor_cov=f, specific_var=spec.set_index("ticker")["specific_var"]
        )
    return Book.create(
        as_of=day,
        nav=float(on_day["nav"].iloc[-1]),
        positions=positions[["strategy_id", "ticker", "quantity"]],
        market=market.drop(columns=["as_of"]),
        risk_model=model,
        nav_history=history.set_index("date")["nav"],
        strategy_nav=None
        if paths.empty
        else paths.assign(date=pd.to_datetime(paths["date"])).pivot(
            index="date", columns="strategy_id", values="nav"
        ),
    )


def load_decisions(
    url: str, *, run_date: dt.date | str | None = None, pipeline_run_id: str | None = None
) -> pd.DataFrame:
    """Decisions of one pipeline run, or of one date."""
    engine = engine_for(url)
    query = sa.select(PipelineDecision.__table__)
    if pipeline_run_id is not None:
        query = query.where(PipelineDecision.pipeline_run_id == pipeline_run_id)
    if run_date is not None:
        query = query.where(PipelineDecision.run_date == pd.Timestamp(run_date).date())
    with engine.connect() as conn:
        frame = pd.read_sql(query.order_by(PipelineDecision.decision_id), conn)
    engine.dispose()
    return check_decision_columns(
        frame[["decision_id", "ticker", "strategy_id", "target_weight", "confidence"]]
    )


def save_constraint_document(url: str, name: str, document: Mapping[str, Any]) -> None:
    """Store a constraint set: its body in risk_configs, each strategy budget in strategy_configs.

    The document is stored as strict JSON (:func:`riskopt.data.storage.strict_json`).
    """
    name = clean_text(name)
    body = strict_json({k: v for k, v in document.items() if k != "strategies"})
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(sa.delete(StrategyConfig).where(StrategyConfig.config_name == name))
        conn.execute(sa.delete(RiskConfig).where(RiskConfig.name == name))
        conn.execute(
            sa.insert(RiskConfig),
            [{"name": name, "body": body, "updated_at": dt.datetime.now(dt.UTC)}],
        )
        rows = [
            {"config_name": name, "strategy_id": clean_text(str(s)), "body": strict_json(b)}
            for s, b in document.get("strategies", {}).items()
        ]
        if rows:
            conn.execute(sa.insert(StrategyConfig), rows)
    engine.dispose()


def load_constraint_document(url: str, name: str) -> dict[str, Any]:
    """The document of a stored constraint set, strategies merged back in (validate it with
    ``ConstraintSet.from_dict``, exactly as a TOML file)."""
    name = clean_text(name)
    engine = engine_for(url)
    with engine.connect() as conn:
        body = conn.execute(
            sa.select(RiskConfig.body).where(RiskConfig.name == name)
        ).scalar_one_or_none()
        strategies = conn.execute(
            sa.select(StrategyConfig.strategy_id, StrategyConfig.body).where(
                StrategyConfig.config_name == name
            )
        ).all()
    engine.dispose()
    if body is None:
        raise BookLoadError(f"no constraint set {name!r} in risk_configs")
    return {**dict(body), "name": name, "strategies": {s: dict(b) for s, b in strategies}}


def save_black_swan_state(
    url: str, state: str, as_of: dt.datetime, overrides: Mapping[str, Any] | None = None
) -> None:
    """Record what the black-swan monitor declares."""
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(BlackSwanStateRow),
            [
                {
                    "state": clean_text(state),
                    "as_of": as_of,
                    "overrides": strict_json(overrides or {}),
                }
            ],
        )
    engine.dispose()


def load_black_swan_state(url: str) -> dict[str, Any] | None:
    """The monitor's latest declaration (``state``, ``as_of``, ``overrides``), or ``None``.

    Pass it as ``rebalance(..., state=BlackSwanState(**row))``: a missing, stale or
    malformed state is then treated by the constraint set's ``states.default_state``.
    """
    engine = engine_for(url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(BlackSwanStateRow.state, BlackSwanStateRow.as_of, BlackSwanStateRow.overrides)
            .order_by(BlackSwanStateRow.as_of.desc(), BlackSwanStateRow.id.desc())
            .limit(1)
        ).first()
    engine.dispose()
    if row is None:
        return None
    as_of = row.as_of if row.as_of.tzinfo else row.as_of.replace(tzinfo=dt.UTC)
    return {"state": row.state, "as_of": as_of, "overrides": dict(row.overrides or {})}
