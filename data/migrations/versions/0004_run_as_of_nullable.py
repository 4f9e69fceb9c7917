"""risk_runs.as_of nullable: a DEGRADED run whose book gave no date stores NULL rather than
the day it ran (a downgrade fails, changing nothing, where such a run is stored)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 12:10:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _nullable(nullable: bool) -> None:
    with op.batch_alter_table("risk_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "as_of", existing_type=sa.Date(), nullable=nullable, existing_nullable=not nullable
        )


def upgrade() -> None:
    """Upgrade schema."""
    _nullable(True)


def downgrade() -> None:
    """Downgrade schema."""
    _nullable(False)
