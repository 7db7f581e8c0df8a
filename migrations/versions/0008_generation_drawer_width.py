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

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _widen(width_from: int, width_to: int) -> None:
    """Batch mode reflects the tables the copy refers to; SQLAlchemy cannot reflect the images
    table's expression index (ix_images_dated) and would say so on the user's stderr. That
    index is not on this table and is not touched: the warning is silenced here."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore', message='Skipped unsupported reflection', category=sa.exc.SAWarning
        )
        with op.batch_alter_table('generations', schema=None) as batch_op:
            batch_op.alter_column(
                'drawer',
                existing_type=sa.String(length=width_from),
                type_=sa.String(length=width_to),
                existing_nullable=False,
            )


def upgrade() -> None:
    _widen(16, 32)


def downgrade() -> None:
    _widen(32, 16)
