"""SQLAlchemy 2 tables (Core: the ORM is not needed, and not importing it saves a cold
search a fifth of a second). Every change here needs an Alembic migration.

`tests/unit/test_migrations.py` upgrades an empty database and checks these models match.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    cast,
    text,
)


class FsPath(TypeDecorator):
    """A file-system path, stored losslessly as TEXT.

    A file name need not be valid UTF-8 (old Windows, FAT, Samba shares, zip archives:
    `caf\xe9.jpg` in Latin-1). Python hands such names over as `str` with surrogate escapes
    (PEP 383). They are stored as their raw bytes in a TEXT value (bound as a blob and CAST to
    TEXT, which SQLite stores unvalidated), so they sort and compare byte-wise like every other
    path, and come back as the same `str` (connections decode TEXT with surrogateescape, see
    `clipsearch.store.db`). Valid UTF-8 paths are stored exactly as before.
    """

    impl = Text
    cache_ok = True

    def bind_expression(self, bindvalue):  # -> ColumnElement
        return cast(bindvalue, Text)

    def process_bind_param(self, value: str | None, dialect: object) -> str | bytes | None:
        if value is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")
        return value


metadata = MetaData()

# Library-wide facts: the model, its vector size, index bookkeeping.
Meta = Table(
    "meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

# One image file in the collection (its vector is in `vectors`). Date filters compare
# coalesce(taken_at, dated) (indexed): the capture time (EXIF), else `dated`, the file's
# modification time in local time, kept only for images without a capture time.
Image = Table(
    "images",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", FsPath, nullable=False, unique=True),
    Column("size", Integer, nullable=False),
    Column("mtime_ns", Integer, nullable=False),
    Column("content_hash", String(32), nullable=False),
    Column("width", Integer),
    Column("height", Integer),
    Column("format", String(16)),
    Column("taken_at", String(32)),
    Column("source", String(16), nullable=False, server_default="photos"),
    # Perceptual hashes (clipsearch.media.phash), signed 64-bit; NULL until computed.
    Column("phash", Integer),
    Column("dhash", Integer),
    Column("phash_mirror", Integer),
    Column("dhash_mirror", Integer),
    Column("added_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("dated", String(32)),
    Index("ix_images_content_hash", "content_hash"),
    Index("ix_images_dated", text("coalesce(taken_at, dated)")),
    Index("ix_images_source", "source"),
    CheckConstraint("source IN ('photos', 'generated')", name="ck_images_source"),
)

# An image's vector: unit length, float16 little-endian (half the bytes of float32; cosine
# to it > 0.99999). Apart from the rows, so scanning images never reads vectors.
Vector = Table(
    "vectors",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# How many images (in all and per source), vectors and failures there are: kept by triggers
# (migration 0006) in the transaction that changes them, so counting never scans.
Counter = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("n", Integer, nullable=False),
)

# A file that could not be indexed, and why. Retried only when the file changes.
Failure = Table(
    "failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("path", FsPath, nullable=False, unique=True),
    Column("size", Integer, nullable=False),
    Column("mtime_ns", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("failed_at", Float, nullable=False),
)

# Every vector added or removed, in commit order.
#
# The FAISS file records the last `seq` it contains; anyone opening the library replays
# newer entries, so the index catches up with the store without a rebuild.
VectorLog = Table(
    "vector_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("image_id", Integer, nullable=False),
    Column("op", String(8), nullable=False),
    CheckConstraint("op IN ('add', 'remove')", name="ck_vector_log_op"),
    sqlite_autoincrement=True,
)

# A folder (or file) the user indexed: remembered for re-scans and the watch daemon.
#
# `device` is the file system it was last indexed on (st_dev); a root that had pictures and
# is now missing, empty or on another device is offline (`offline_since`, with the reason):
# its pictures stay in the library until it is back, or until `clipsearch offline --remove`.
Root = Table(
    "roots",
    metadata,
    Column("path", FsPath, primary_key=True),
    Column("added_at", Float, nullable=False),
    Column("last_indexed_at", Float),
    Column("kind", String(8), nullable=False, server_default="folder"),
    Column("device", Integer),
    Column("offline_since", Float),
    Column("offline_reason", Text),
)

# A folder's modification time as the last complete walk saw it before listing it (migration
# 0009): `index --quick` lists again only folders whose time has moved.
Folder = Table(
    "folders",
    metadata,
    Column("path", FsPath, primary_key=True),
    Column("mtime_ns", Integer, nullable=False),
    sqlite_with_rowid=False,
)

# What a photo's EXIF says beyond its capture time, and what Tesseract read in it (migration
# 0007). One row per image whose file has been read for them (all NULL when it says nothing):
# a missing row means "not read yet", which the next `index` fills in without re-embedding.
# `ocr_text` is NULL until OCR ran (libraries with --ocr), '' when it found no text.
Facts = Table(
    "photo_facts",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("camera_make", Text),
    Column("camera_model", Text),
    Column("lens", Text),
    Column("lat", Float),
    Column("lon", Float),
    Column("city", Text),
    Column("region", Text),
    Column("country", Text),
    Column("country_code", String(2)),
    Column("ocr_text", Text),
    Index("ix_photo_facts_lat", "lat"),
    Index("ix_photo_facts_country", "country_code"),
)

# The keyword index is an SQLite FTS5 table, `keywords` (rowid = image id; columns name,
# folders, ocr, tags, place, camera), made by migration 0007 and derived from the tables
# above (`clipsearch.store.keywords` keeps it in step). SQLAlchemy does not model virtual
# tables: `include_object` keeps them out of Alembic's comparisons.
KEYWORDS = "keywords"


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object):
    """Alembic's filter: the FTS5 table and its shadow tables are not models."""
    return not (type_ == "table" and name and name.startswith(KEYWORDS))


# A zero-shot tag on an image, with its score (from `clipsearch tag`).
Tag = Table(
    "tags",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("label", Text, primary_key=True),
    Column("score", Float, nullable=False),
    Index("ix_tags_label", "label"),
)

# How a generated image was made (source = 'generated'): its provenance.
Generation = Table(
    "generations",
    metadata,
    Column("image_id", Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("prompts", Text, nullable=False),  # JSON [[text, weight], ...]
    Column("seed", Integer, nullable=False),
    Column("steps", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    # vqgan | pixel | transformer | transformer+vqgan (32 since migration 0008)
    Column("drawer", String(32), nullable=False),
    Column("clip_model", Text, nullable=False),
    Column("vqgan_model", Text),
    Column("init_image", FsPath),
    Column("params", Text, nullable=False),  # JSON: lr, cutouts, ... (the rest)
    Column("created_at", Float, nullable=False),
)
