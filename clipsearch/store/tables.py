"""SQLAlchemy 2 table definitions. Every change here needs an Alembic migration.

`tests/unit/test_migrations.py` upgrades an empty database and checks these models match.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    cast,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Library-wide facts: the model, its vector size, index bookkeeping."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Image(Base):
    """One image file in the collection, with its vector (float32, unit length)."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, nullable=False, unique=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    mtime_ns: Mapped[int] = mapped_column(Integer, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(32), nullable=False)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    taken_at: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16), nullable=False, server_default="photos")
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Perceptual hashes (clipsearch.media.phash), signed 64-bit; NULL until computed.
    phash: Mapped[int | None] = mapped_column(Integer)
    dhash: Mapped[int | None] = mapped_column(Integer)
    phash_mirror: Mapped[int | None] = mapped_column(Integer)
    dhash_mirror: Mapped[int | None] = mapped_column(Integer)
    added_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)

    __table_args__ = (
        Index("ix_images_content_hash", "content_hash"),
        CheckConstraint("source IN ('photos', 'generated')", name="ck_images_source"),
    )


class Failure(Base):
    """A file that could not be indexed, and why. Retried only when the file changes."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, nullable=False, unique=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    mtime_ns: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    failed_at: Mapped[float] = mapped_column(Float, nullable=False)


class VectorLog(Base):
    """Every vector added or removed, in commit order.

    The FAISS file records the last `seq` it contains; anyone opening the library replays
    newer entries, so the index catches up with the store without a rebuild.
    """

    __tablename__ = "vector_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(Integer, nullable=False)
    op: Mapped[str] = mapped_column(String(8), nullable=False)

    __table_args__ = (
        CheckConstraint("op IN ('add', 'remove')", name="ck_vector_log_op"),
        {"sqlite_autoincrement": True},
    )


class Root(Base):
    """A folder (or file) the user indexed: remembered for re-scans and the watch daemon.

    `device` is the file system it was last indexed on (st_dev); a root that had pictures and
    is now missing, empty or on another device is offline (`offline_since`, with the reason):
    its pictures stay in the library until it is back, or until `clipsearch offline --remove`.
    """

    __tablename__ = "roots"

    path: Mapped[str] = mapped_column(FsPath, primary_key=True)
    added_at: Mapped[float] = mapped_column(Float, nullable=False)
    last_indexed_at: Mapped[float | None] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(8), nullable=False, server_default="folder")
    device: Mapped[int | None] = mapped_column(Integer)
    offline_since: Mapped[float | None] = mapped_column(Float)
    offline_reason: Mapped[str | None] = mapped_column(Text)


class Tag(Base):
    """A zero-shot tag on an image, with its score (from `clipsearch tag`)."""

    __tablename__ = "tags"

    image_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(Text, primary_key=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)

    __table_args__ = (Index("ix_tags_label", "label"),)


class Generation(Base):
    """How a generated image was made (source = 'generated'): its provenance."""

    __tablename__ = "generations"

    image_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    prompts: Mapped[str] = mapped_column(Text, nullable=False)  # JSON [[text, weight], ...]
    seed: Mapped[int] = mapped_column(Integer, nullable=False)
    steps: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    drawer: Mapped[str] = mapped_column(String(16), nullable=False)  # vqgan | pixel
    clip_model: Mapped[str] = mapped_column(Text, nullable=False)
    vqgan_model: Mapped[str | None] = mapped_column(Text)
    init_image: Mapped[str | None] = mapped_column(FsPath)
    params: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: lr, cutouts, ... (the rest)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
