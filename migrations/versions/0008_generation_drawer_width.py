"""generations.drawer wide enough for every drawer

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00.000000

`generations.drawer` was declared VARCHAR(16) when the drawers were "vqgan" and "pixel";
"transformer+vqgan" is 17 characters. SQLite never enforced the length (rows already stored
are intact), but the declared schema now says 32 so that it matches the models and any
other engine would take the name. SQLite cannot alter a column's type: batch mode copies
the table (its rows, key and cascade kept).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.alter_column(
            'drawer',
            existing_type=sa.String(length=16),
            type_=sa.String(length=32),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('generations', schema=None) as batch_op:
        batch_op.alter_column(
            'drawer',
            existing_type=sa.String(length=32),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
