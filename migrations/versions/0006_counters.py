"""counters kept by triggers; dated only where there is no capture time

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:20:00.000000

`status` and every "how many" read one row of `counters` instead of scanning: triggers keep
the number of images (and per source), vectors and failures in the transaction that changes
them. The narrow index that made counting vectors cheap goes (13 bytes per image).

`dated` (what date filters compare) repeated the capture time for every photo that has one:
it now holds the file's local modification time only for images without a capture time, and
the filters read an index on coalesce(taken_at, dated) (~20 bytes per image less).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTED = ('images', 'vectors', 'failures', 'source:photos', 'source:generated')

TRIGGERS = (
    """CREATE TRIGGER counters_images_insert AFTER INSERT ON images BEGIN
        UPDATE counters SET n = n + 1 WHERE name IN ('images', 'source:' || NEW.source);
    END""",
    """CREATE TRIGGER counters_images_delete AFTER DELETE ON images BEGIN
        UPDATE counters SET n = n - 1 WHERE name IN ('images', 'source:' || OLD.source);
    END""",
    """CREATE TRIGGER counters_images_source AFTER UPDATE OF source ON images
        WHEN OLD.source IS NOT NEW.source BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'source:' || OLD.source;
        UPDATE counters SET n = n + 1 WHERE name = 'source:' || NEW.source;
    END""",
    """CREATE TRIGGER counters_vectors_insert AFTER INSERT ON vectors BEGIN
        UPDATE counters SET n = n + 1 WHERE name = 'vectors';
    END""",
    """CREATE TRIGGER counters_vectors_delete AFTER DELETE ON vectors BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'vectors';
    END""",
    """CREATE TRIGGER counters_failures_insert AFTER INSERT ON failures BEGIN
        UPDATE counters SET n = n + 1 WHERE name = 'failures';
    END""",
    """CREATE TRIGGER counters_failures_delete AFTER DELETE ON failures BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'failures';
    END""",
)
TRIGGER_NAMES = [t.split()[2] for t in TRIGGERS]


def upgrade() -> None:
    op.create_table(
        'counters',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    conn = op.get_bind()
    counts = {name: 0 for name in COUNTED}
    counts['images'] = conn.execute(sa.text("SELECT count(*) FROM images")).scalar() or 0
    counts['vectors'] = conn.execute(sa.text("SELECT count(*) FROM vectors")).scalar() or 0
    counts['failures'] = conn.execute(sa.text("SELECT count(*) FROM failures")).scalar() or 0
    for source, n in conn.execute(sa.text("SELECT source, count(*) FROM images GROUP BY 1")):
        counts[f'source:{source}'] = n
    conn.execute(
        sa.text("INSERT INTO counters (name, n) VALUES (:name, :n)"),
        [{'name': k, 'n': v} for k, v in counts.items()],
    )
    for trigger in TRIGGERS:
        conn.execute(sa.text(trigger))
    op.drop_index('ix_vectors_count', 'vectors')

    op.drop_index('ix_images_dated', 'images')
    conn.execute(sa.text("UPDATE images SET dated = NULL WHERE taken_at IS NOT NULL"))
    conn.execute(sa.text("CREATE INDEX ix_images_dated ON images (coalesce(taken_at, dated))"))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("DROP INDEX ix_images_dated"))
    conn.execute(sa.text("UPDATE images SET dated = taken_at WHERE taken_at IS NOT NULL"))
    op.create_index('ix_images_dated', 'images', ['dated'], unique=False)
    op.create_index('ix_vectors_count', 'vectors', ['image_id'], unique=False)
    for name in TRIGGER_NAMES:
        conn.execute(sa.text(f"DROP TRIGGER {name}"))
    op.drop_table('counters')
