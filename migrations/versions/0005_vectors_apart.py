"""vectors apart, in float16; a dated column and indexes for the filters

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 17:00:00.000000

Each image's vector moves out of its row into `vectors` (image_id, float16 blob): a row is
small again, so counting, filtering and scanning the images table reads a few pages instead
of every vector; the float16 vector is half the bytes (cosine to the float32 one > 0.99999).
`dated` holds what date filters compare (the capture time, else the file's modification time
in local time), indexed, as `source` is. clipsearch compacts the database after this.
"""

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 20_000


def upgrade() -> None:
    op.create_table(
        'vectors',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id'),
    )
    op.create_index('ix_vectors_count', 'vectors', ['image_id'], unique=False)
    conn = op.get_bind()
    last = -1
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, embedding FROM images WHERE id > :last AND embedding IS NOT NULL "
                "ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": _CHUNK},
        ).fetchall()
        if not rows:
            break
        conn.execute(
            sa.text("INSERT INTO vectors (image_id, data) VALUES (:i, :d)"),
            [
                {"i": i, "d": np.frombuffer(blob, "<f4").astype("<f2").tobytes()}
                for i, blob in rows
            ],
        )
        last = rows[-1][0]
    # Native ALTERs, not a batch "move and copy": dropping and re-creating `images` would
    # cascade-delete every tag, generation and vector that refers to it.
    op.add_column('images', sa.Column('dated', sa.String(length=32), nullable=True))
    try:
        conn.execute(sa.text("ALTER TABLE images DROP COLUMN embedding"))
    except sa.exc.OperationalError:  # SQLite before 3.35: keep the column, empty
        conn.execute(sa.text("UPDATE images SET embedding = NULL"))
    op.create_index('ix_images_dated', 'images', ['dated'], unique=False)
    op.create_index('ix_images_source', 'images', ['source'], unique=False)
    conn.execute(
        sa.text(
            "UPDATE images SET dated = coalesce(taken_at, "
            "strftime('%Y-%m-%dT%H:%M:%S', mtime_ns / 1e9, 'unixepoch', 'localtime'))"
        )
    )


def downgrade() -> None:
    op.drop_index('ix_images_source', 'images')
    op.drop_index('ix_images_dated', 'images')
    op.add_column('images', sa.Column('embedding', sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    conn.execute(sa.text("ALTER TABLE images DROP COLUMN dated"))
    for i, blob in conn.execute(sa.text("SELECT image_id, data FROM vectors")).fetchall():
        conn.execute(
            sa.text("UPDATE images SET embedding = :e WHERE id = :i"),
            {"e": np.frombuffer(blob, "<f2").astype("<f4").tobytes(), "i": i},
        )
    op.drop_table('vectors')
