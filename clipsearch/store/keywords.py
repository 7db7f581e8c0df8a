"""The keyword index (SQLite FTS5) and the photo facts it is partly made of.

`keywords` (migration 0007) has one row per image, rowid = image id, with six columns:

    name      the file name without its extension ("IMG_2041", "invoice march")
    folders   the names of the last folders above it ("Pictures Lisbon 2023")
    ocr       text Tesseract read in the picture (libraries with --ocr)
    tags      its zero-shot tags
    place     city, region and country of its GPS position
    camera    camera make, model and lens

It is derived: `refresh` rewrites the rows of the images given from `images`, `photo_facts`
and `tags`, in the caller's transaction, and every writer that changes one of those calls it
(`Store.apply`, `Store.move_paths`, the facts and tag writers). A trigger drops an image's row
with the image. Tokens are Unicode words with accents folded ("Zürich" matches "zurich").
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import numpy as np
from sqlalchemy import Connection, bindparam, delete, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from clipsearch.store.tables import KEYWORDS, Facts, Image, Tag

COLUMNS = ("name", "folders", "ocr", "tags", "place", "camera")
FOLDER_LEVELS = 4  # folder names indexed above each file
_CHUNK = 5_000
FACT_COLUMNS = (
    "camera_make",
    "camera_model",
    "lens",
    "lat",
    "lon",
    "city",
    "region",
    "country",
    "country_code",
)


def _clean(value: str) -> str:
    """A path piece as FTS5 can store it: a name that is not UTF-8 keeps its readable part."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def name_and_folders(path: str) -> tuple[str, str]:
    folder, base = os.path.split(path)
    stem = os.path.splitext(base)[0] or base
    parts = [p for p in folder.split(os.sep) if p][-FOLDER_LEVELS:]
    return _clean(stem), _clean(" ".join(parts))


def _joined(*values: object) -> str:
    return " ".join(str(v) for v in values if v)


def refresh(conn: Connection, ids: Iterable[int]) -> None:
    """Rewrite the keyword rows of `ids` from the tables (an id no longer there loses its row)."""
    ids = sorted({int(i) for i in ids})
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = conn.execute(
            select(
                Image.c.id,
                Image.c.path,
                Facts.c.ocr_text,
                Facts.c.city,
                Facts.c.region,
                Facts.c.country,
                Facts.c.camera_make,
                Facts.c.camera_model,
                Facts.c.lens,
            )
            .select_from(Image.outerjoin(Facts, Facts.c.image_id == Image.c.id))
            .where(Image.c.id.in_(chunk))
        ).all()
        tags: dict[int, list[str]] = {}
        for image_id, label in conn.execute(
            select(Tag.c.image_id, Tag.c.label).where(Tag.c.image_id.in_(chunk))
        ):
            tags.setdefault(int(image_id), []).append(label)
        conn.execute(
            text(f"DELETE FROM {KEYWORDS} WHERE rowid IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": chunk},
        )
        values = []
        for image_id, path, ocr, city, region, country, make, model, lens in rows:
            name, folders = name_and_folders(path)
            values.append(
                {
                    "id": image_id,
                    "name": name,
                    "folders": folders,
                    "ocr": ocr or "",
                    "tags": " ".join(tags.get(int(image_id), ())),
                    "place": _joined(city, region, country),
                    "camera": _joined(make, model, lens),
                }
            )
        if values:
            conn.execute(
                text(
                    f"INSERT INTO {KEYWORDS} (rowid, {', '.join(COLUMNS)}) "
                    f"VALUES (:id, {', '.join(':' + c for c in COLUMNS)})"
                ),
                values,
            )


# --- FTS5 query text ------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def phrase(words: str, *, prefix: bool = False) -> str | None:
    """Text as one FTS5 phrase (its words in order), safely quoted; None if it has no word."""
    tokens = _WORD.findall(words)
    if not tokens:
        return None
    quoted = '"' + " ".join(tokens).replace('"', '""') + '"'
    return quoted + ("*" if prefix else "")


def in_column(column: str, expression: str) -> str:
    assert column in COLUMNS
    return f"{column} : ({expression})"


def matching_ids(conn: Connection, expression: str, *, limit: int | None = None) -> np.ndarray:
    """Ids whose keywords match an FTS5 expression, best (bm25) first when `limit` is set,
    else in id order (a filter)."""
    sql = f"SELECT rowid FROM {KEYWORDS} WHERE {KEYWORDS} MATCH ?"
    params: tuple = (expression,)
    if limit is not None:
        sql += " ORDER BY rank LIMIT ?"
        params += (int(limit),)
    rows = conn.exec_driver_sql(sql, params).cursor.fetchall()  # plain tuples of integers
    ids = np.array(rows, dtype=np.int64).reshape(-1)
    return ids if limit is not None else np.sort(ids)


def ranked_within(
    conn: Connection, expression: str, allowed: np.ndarray | None, limit: int
) -> np.ndarray:
    """The best `limit` ids matching `expression`, bm25 order, among `allowed` (None: all)."""
    if allowed is None:
        return matching_ids(conn, expression, limit=limit)
    ids = matching_ids(conn, expression, limit=max(limit * 8, 1_000))
    keep = ids[np.isin(ids, allowed)]
    if len(keep) >= limit or len(ids) < max(limit * 8, 1_000):
        return keep[:limit]
    everything = matching_ids(conn, expression, limit=10**9)  # rare: a very common word
    return everything[np.isin(everything, allowed)][:limit]


# --- facts rows (here, not in facts.py, because Store.apply writes them too) ---------------


def write_facts(conn: Connection, facts: dict[int, dict]) -> None:
    """Upsert facts rows in the caller's transaction (the OCR text of a row is kept)."""
    rows = [{"image_id": int(i), **{c: f.get(c) for c in FACT_COLUMNS}} for i, f in facts.items()]
    for start in range(0, len(rows), 2_000):
        stmt = sqlite_insert(Facts)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[Facts.c.image_id],
                set_={c: stmt.excluded[c] for c in FACT_COLUMNS},
            ),
            rows[start : start + 2_000],
        )


def forget_facts(conn: Connection, ids: Iterable[int]) -> None:
    """Drop facts rows (a file whose content changed is read again)."""
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), _CHUNK):
        conn.execute(delete(Facts).where(Facts.c.image_id.in_(ids[start : start + _CHUNK])))
