"""perceptual hashes on images (near-duplicate detection)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:50:00.000000

Images indexed before this migration have NULL hashes; `clipsearch dupes` computes the
missing ones on its first run. The tag vocabulary lives in `meta` (key `tag_vocabulary`),
which needs no schema change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ('phash', 'dhash', 'phash_mirror', 'dhash_mirror')


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        for name in _COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
