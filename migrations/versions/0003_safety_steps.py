"""safety steps: scheduled_messages.is_safety and red_flag

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('scheduled_messages', schema=None) as batch_op:
        # The server default lets the existing rows (none of them safety steps) take the NOT NULL column.
        batch_op.add_column(sa.Column('is_safety', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('red_flag', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scheduled_messages', schema=None) as batch_op:
        batch_op.drop_column('red_flag')
        batch_op.drop_column('is_safety')
