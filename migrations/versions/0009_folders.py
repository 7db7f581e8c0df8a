"""folders: each folder's modification time as the last complete walk saw it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00.000000

`index --quick` lists again only the folders whose modification time moved since the last
complete walk (adding, removing or renaming a file changes it), so a catch-up over a large,
mostly unchanged collection does not stat every file. Filled by the next `index`; an empty
table means every folder is listed, as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'folders',
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('mtime_ns', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('path'),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table('folders')
