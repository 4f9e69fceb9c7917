"""initial schema: inputs and outputs of the gate

Revision ID: 0001
Revises:
Create Date: 2026-11-22 10:00:10.934410

"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema: the tables of the gate's inputs and outputs, in this order."""
    _create_black_swan_state()
    _create_factor_tables()
    _create_input_tables()
    _create_config_and_run_tables()
    _create_market_tables()
    _create_action_tables()
    _create_strategy_and_target_tables()


def _json() -> sa.types.TypeEngine[Any]:
    """JSON, stored as JSONB on PostgreSQL."""
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _create_black_swan_state() -> None:
    """The black-swan monitor's states, indexed by ``as_of``."""
    op.create_table(
        "black_swan_state",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overrides", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("black_swan_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_black_swan_state_as_of"), ["as_of"], unique=False)


def _create_factor_tables() -> None:
    """The risk model's factor covariance and loadings."""
    op.create_table(
        "factor_covariance",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("factor_i", sa.String(length=64), nullable=False),
        sa.Column("factor_j", sa.String(length=64), nullable=False),
        sa.Column("covariance", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("as_of", "factor_i", "factor_j"),
    )
    op.create_table(
        "factor_loadings",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("factor", sa.String(length=64), nullable=False),
        sa.Column("loading", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("as_of", "ticker", "factor"),
    )


def _create_input_tables() -> None:
    """NAV history, the pipeline's decisions and the positions."""
    op.create_table(
        "nav_history",
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("nav", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("date"),
    )
    op.create_table(
        "pipeline_decisions",
        sa.Column("decision_id", sa.String(length=128), nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=64), nullable=True),
        sa.Column("ticker", sa.String(length=64), nullable=True),
        sa.Column("strategy_id", sa.String(length=128), nullable=True),
        sa.Column("target_weight", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("decision_id"),
    )
    with op.batch_alter_table("pipeline_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_decisions_pipeline_run_id"), ["pipeline_run_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_pipeline_decisions_run_date"), ["run_date"], unique=False
        )
    op.create_table(
        "positions",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("strategy_id", sa.String(length=128), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("as_of", "strategy_id", "ticker"),
    )


def _create_config_and_run_tables() -> None:
    """Constraint sets and the run records."""
    op.create_table(
        "risk_configs",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("body", _json(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "risk_runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("constraint_set", sa.String(length=128), nullable=False),
        sa.Column("solver", sa.String(length=32), nullable=True),
        sa.Column("gamma", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("record", _json(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )


def _create_market_tables() -> None:
    """Specific variances and the per-name market data."""
    op.create_table(
        "specific_variance",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("specific_var", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("as_of", "ticker"),
    )
    op.create_table(
        "stock_metrics",
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("adv_shares", sa.Float(), nullable=False),
        sa.Column("spread_bps", sa.Float(), nullable=False),
        sa.Column("volatility", sa.Float(), nullable=False),
        sa.Column("sector", sa.String(length=64), nullable=False),
        sa.Column("country", sa.String(length=16), nullable=False),
        sa.Column("cluster", sa.String(length=64), nullable=True),
        sa.Column("lot_size", sa.Integer(), nullable=False),
        sa.Column("tick_size", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("as_of", "ticker"),
    )


def _create_action_tables() -> None:
    """A run's actions and its debate transcript."""
    op.create_table(
        "risk_actions",
        sa.Column("action_id", sa.String(length=96), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=True),
        sa.Column("decision_id", sa.String(length=128), nullable=True),
        sa.Column("strategy_id", sa.String(length=128), nullable=True),
        sa.Column("action_type", sa.String(length=16), nullable=False),
        sa.Column("details_json", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["risk_runs.run_id"],
        ),
        sa.PrimaryKeyConstraint("action_id"),
    )
    with op.batch_alter_table("risk_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_risk_actions_run_id"), ["run_id"], unique=False)
    op.create_table(
        "risk_debates",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=True),
        sa.Column("speaker", sa.String(length=16), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=True),
        sa.Column("risk_aversion", sa.Float(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("provenance", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["risk_runs.run_id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "seq"),
    )


def _create_strategy_and_target_tables() -> None:
    """Per-strategy configs and a run's target positions."""
    op.create_table(
        "strategy_configs",
        sa.Column("config_name", sa.String(length=128), nullable=False),
        sa.Column("strategy_id", sa.String(length=128), nullable=False),
        sa.Column("body", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_name"],
            ["risk_configs.name"],
        ),
        sa.PrimaryKeyConstraint("config_name", "strategy_id"),
    )
    op.create_table(
        "target_positions",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=False),
        sa.Column("current_position", sa.Float(), nullable=False),
        sa.Column("target_position", sa.Float(), nullable=False),
        sa.Column("delta_position", sa.Float(), nullable=False),
        sa.Column("target_weight", sa.Float(), nullable=True),
        sa.Column("proposed_weight", sa.Float(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("action_type", sa.String(length=16), nullable=False),
        sa.Column("risk_reasoning_summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["risk_runs.run_id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "ticker"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_table("target_positions")
    op.drop_table("strategy_configs")
    op.drop_table("risk_debates")
    with op.batch_alter_table("risk_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_actions_run_id"))

    op.drop_table("risk_actions")
    op.drop_table("stock_metrics")
    op.drop_table("specific_variance")
    op.drop_table("risk_runs")
    op.drop_table("risk_configs")
    op.drop_table("positions")
    with op.batch_alter_table("pipeline_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_decisions_run_date"))
        batch_op.drop_index(batch_op.f("ix_pipeline_decisions_pipeline_run_id"))

    op.drop_table("pipeline_decisions")
    op.drop_table("nav_history")
    op.drop_table("factor_loadings")
    op.drop_table("factor_covariance")
    with op.batch_alter_table("black_swan_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_black_swan_state_as_of"))

    op.drop_table("black_swan_state")
    # ### end Alembic commands ###
