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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    path: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
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
    path: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
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
    """A folder the user indexed (remembered for re-scans and the watch daemon)."""

    __tablename__ = "roots"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    added_at: Mapped[float] = mapped_column(Float, nullable=False)
    last_indexed_at: Mapped[float | None] = mapped_column(Float)


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
    init_image: Mapped[str | None] = mapped_column(Text)
    params: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: lr, cutouts, ... (the rest)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
