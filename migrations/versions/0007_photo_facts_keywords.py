"""photo facts (camera, lens, GPS, place, OCR text) and the FTS5 keyword index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:00:00.000000

`photo_facts` holds what a photo's EXIF says beyond its capture time (camera, lens, GPS and
the place it names, resolved offline) and the text Tesseract read in it. Existing libraries
start with no rows: the next `index` reads the files' EXIF (no re-embedding).

`keywords` is an FTS5 table over file names, folder names, OCR text, tags, places and
cameras (rowid = image id), derived from the tables and kept in step by clipsearch; the
trigger drops an image's row with the image. Rows for existing images are written by the next
`index`, with their facts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYWORDS_DDL = (
    "CREATE VIRTUAL TABLE keywords USING fts5("
    "name, folders, ocr, tags, place, camera, "
    "tokenize = 'unicode61 remove_diacritics 2')"
)
KEYWORDS_TRIGGER = (
    "CREATE TRIGGER keywords_images_delete AFTER DELETE ON images BEGIN "
    "DELETE FROM keywords WHERE rowid = OLD.id; END"
)


def upgrade() -> None:
    op.create_table(
        'photo_facts',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('camera_make', sa.Text(), nullable=True),
        sa.Column('camera_model', sa.Text(), nullable=True),
        sa.Column('lens', sa.Text(), nullable=True),
        sa.Column('lat', sa.Float(), nullable=True),
        sa.Column('lon', sa.Float(), nullable=True),
        sa.Column('city', sa.Text(), nullable=True),
        sa.Column('region', sa.Text(), nullable=True),
        sa.Column('country', sa.Text(), nullable=True),
        sa.Column('country_code', sa.String(length=2), nullable=True),
        sa.Column('ocr_text', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id'),
    )
    op.create_index('ix_photo_facts_lat', 'photo_facts', ['lat'], unique=False)
    op.create_index('ix_photo_facts_country', 'photo_facts', ['country_code'], unique=False)
    conn = op.get_bind()
    conn.execute(sa.text(KEYWORDS_DDL))
    conn.execute(sa.text(KEYWORDS_TRIGGER))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("DROP TRIGGER keywords_images_delete"))
    conn.execute(sa.text("DROP TABLE keywords"))
    op.drop_index('ix_photo_facts_country', 'photo_facts')
    op.drop_index('ix_photo_facts_lat', 'photo_facts')
    op.drop_table('photo_facts')
