"""Queries for the duplicate finder and the tagger: perceptual hashes and tags.

Kept apart from `store.py` (the ingest path); each function is one short transaction on the
library's `Store`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, select, update

from clipsearch.store import keywords
from clipsearch.store.store import _CHUNK, Store, _chunks
from clipsearch.store.tables import Image, Tag, Vector


def missing_hashes(store: Store) -> list[tuple[int, str]]:
    """(id, path) of images with no perceptual hashes yet (indexed before they existed)."""
    with store.engine.connect() as conn:
        q = select(Image.c.id, Image.c.path).where(Image.c.phash.is_(None)).order_by(Image.c.id)
        return [(int(i), p) for i, p in conn.execute(q)]


def set_hashes(store: Store, hashes: dict[int, tuple[int, int, int, int]]) -> None:
    """Record perceptual hashes for images by id."""
    if not hashes:
        return
    stmt = (
        update(Image)
        .where(Image.c.id == bindparam("row_id"))
        .values(
            phash=bindparam("p"),
            dhash=bindparam("d"),
            phash_mirror=bindparam("pm"),
            dhash_mirror=bindparam("dm"),
        )
    )
    rows = [{"row_id": i, "p": h[0], "d": h[1], "pm": h[2], "dm": h[3]} for i, h in hashes.items()]
    with store.engine.begin() as conn:
        for chunk in _chunks(rows):
            conn.execute(stmt, list(chunk))


def get_hashes(store: Store, ids: Iterable[int]) -> dict[int, tuple[int, int, int, int]]:
    out: dict[int, tuple[int, int, int, int]] = {}
    cols = (Image.c.id, Image.c.phash, Image.c.dhash, Image.c.phash_mirror, Image.c.dhash_mirror)
    with store.engine.connect() as conn:
        for chunk in _chunks([int(i) for i in ids]):
            q = select(*cols).where(Image.c.id.in_(chunk), Image.c.phash.is_not(None))
            for r in conn.execute(q):
                out[int(r[0])] = (int(r[1]), int(r[2]), int(r[3]), int(r[4]))
    return out


def all_hashes(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """(ids, hashes) of every image that has them: int64 (N,) and int64 (N, 4)."""
    cols = (Image.c.id, Image.c.phash, Image.c.dhash, Image.c.phash_mirror, Image.c.dhash_mirror)
    with store.engine.connect() as conn:
        rows = (  # plain tuples from the driver: numpy reads them at once (not Row objects)
            conn.execute(
                select(*cols).where(Image.c.phash.is_not(None)).order_by(Image.c.id)
            ).cursor.fetchall()
        )
    if not rows:
        return np.empty(0, np.int64), np.empty((0, 4), np.int64)
    arr = np.asarray(rows, dtype=np.int64)
    return arr[:, 0].copy(), arr[:, 1:].copy()


def all_content_hashes(store: Store) -> list[tuple[int, str]]:
    """(id, content hash) of every image."""
    with store.engine.connect() as conn:
        return conn.execute(select(Image.c.id, Image.c.content_hash)).cursor.fetchall()


# --- tags ---------------------------------------------------------------------------------


def replace_tags(
    store: Store, tags: dict[int, Sequence[tuple[str, float]]], *, everything: bool = False
) -> None:
    """Write tags for the images given (their old tags go), in one transaction.

    `everything=True` first drops every tag in the library (a full re-tag).
    """
    with store.engine.begin() as conn:
        before: list[int] = []
        if everything:
            before = list(conn.execute(select(Tag.c.image_id).distinct()).scalars())
            conn.execute(delete(Tag))
        else:
            for chunk in _chunks(list(tags)):
                conn.execute(delete(Tag).where(Tag.c.image_id.in_(chunk)))
        rows = [
            {"image_id": i, "label": label, "score": float(score)}
            for i, labels in tags.items()
            for label, score in labels
        ]
        # Only images that still exist (one may have left the library meanwhile).
        existing: set[int] = set()
        for chunk in _chunks(list(tags)):
            existing.update(conn.execute(select(Image.c.id).where(Image.c.id.in_(chunk))).scalars())
        rows = [r for r in rows if r["image_id"] in existing]
        for start in range(0, len(rows), _CHUNK):
            conn.execute(insert(Tag), rows[start : start + _CHUNK])
        keywords.refresh(conn, [*before, *existing])


def tags_of(store: Store, ids: Iterable[int]) -> dict[int, list[tuple[str, float]]]:
    """Tags of the images given, best score first."""
    out: dict[int, list[tuple[str, float]]] = {}
    with store.engine.connect() as conn:
        for chunk in _chunks([int(i) for i in ids]):
            q = select(Tag.c.image_id, Tag.c.label, Tag.c.score).where(Tag.c.image_id.in_(chunk))
            for i, label, score in conn.execute(q.order_by(Tag.c.image_id, Tag.c.score.desc())):
                out.setdefault(int(i), []).append((label, float(score)))
    return out


def ids_with_tag(store: Store, label: str) -> np.ndarray:
    """Ids of images carrying `label` (case-insensitive)."""
    with store.engine.connect() as conn:
        q = select(Tag.c.image_id).where(func.lower(Tag.c.label) == label.strip().lower())
        return np.fromiter(conn.execute(q).scalars(), dtype=np.int64)


def tag_counts(store: Store) -> list[tuple[str, int]]:
    """Every label in use with how many images carry it, most used first."""
    with store.engine.connect() as conn:
        q = select(Tag.c.label, func.count()).group_by(Tag.c.label)
        rows = conn.execute(q.order_by(func.count().desc(), Tag.c.label)).all()
    return [(label, int(n)) for label, n in rows]


def ids_with_vectors_after(store: Store, ids: Iterable[int]) -> list[int]:
    """Those of `ids` that still exist with a vector."""
    out: list[int] = []
    with store.engine.connect() as conn:
        for chunk in _chunks([int(i) for i in ids]):
            q = select(Vector.c.image_id).where(Vector.c.image_id.in_(chunk))
            out.extend(int(i) for i in conn.execute(q).scalars())
    return out
