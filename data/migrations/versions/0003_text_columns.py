"""text columns: identifiers and names of any length (a downgrade fails, changing
nothing, where a stored value is longer than the old limit)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 18:04:13.920769

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: dict[str, tuple[tuple[str, int, bool], ...]] = {
    "black_swan_state": (("state", 16, False),),
    "factor_covariance": (
        ("factor_i", 64, False),
        ("factor_j", 64, False),
    ),
    "factor_loadings": (
        ("ticker", 64, False),
        ("factor", 64, False),
    ),
    "pipeline_decisions": (
        ("decision_id", 128, False),
        ("pipeline_run_id", 64, True),
        ("ticker", 64, True),
        ("strategy_id", 128, True),
    ),
    "positions": (
        ("strategy_id", 128, False),
        ("ticker", 64, False),
    ),
    "risk_actions": (
        ("action_id", 96, False),
        ("run_id", 64, False),
        ("ticker", 64, True),
        ("decision_id", 128, True),
        ("strategy_id", 128, True),
        ("action_type", 16, False),
    ),
    "risk_configs": (("name", 128, False),),
    "risk_debates": (
        ("run_id", 64, False),
        ("speaker", 16, False),
        ("ticker", 64, True),
        ("provenance", 16, False),
    ),
    "risk_runs": (
        ("run_id", 64, False),
        ("status", 16, False),
        ("constraint_set", 128, False),
        ("solver", 32, True),
        ("state", 16, False),
    ),
    "specific_variance": (("ticker", 64, False),),
    "stock_metrics": (
        ("ticker", 64, False),
        ("sector", 64, False),
        ("country", 16, False),
        ("cluster", 64, True),
    ),
    "strategy_configs": (
        ("config_name", 128, False),
        ("strategy_id", 128, False),
    ),
    "strategy_nav": (("strategy_id", 128, False),),
    "target_positions": (
        ("run_id", 64, False),
        ("ticker", 64, False),
        ("action_type", 16, False),
    ),
}
"""Per table: each column that becomes Text, its former VARCHAR length, and whether it is
nullable. Both directions read this one list."""


def _alter(to_text: bool) -> None:
    """Every listed column to Text (upgrade) or back to its former VARCHAR (downgrade)."""
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, length, nullable in columns:
                old, new = sa.VARCHAR(length=length), sa.Text()
                batch_op.alter_column(
                    column,
                    existing_type=old if to_text else new,
                    type_=new if to_text else old,
                    existing_nullable=nullable,
                )


def upgrade() -> None:
    """Upgrade schema."""
    _alter(to_text=True)


def downgrade() -> None:
    """Downgrade schema."""
    _alter(to_text=False)
