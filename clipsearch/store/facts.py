"""Photo facts (camera, lens, GPS, place; OCR text): writing them, reading them for display,
and the place filters. One short transaction per call; the keyword index follows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from clipsearch.store import keywords
from clipsearch.store.keywords import FACT_COLUMNS, write_facts
from clipsearch.store.store import Store, _chunks
from clipsearch.store.tables import Facts, Image

EARTH_KM = 6371.0088


def set_facts(store: Store, facts: dict[int, dict]) -> None:
    """Record facts read from files (by image id) and refresh their keywords."""
    if not facts:
        return
    with store.engine.begin() as conn:
        existing = _existing(conn, facts)
        write_facts(conn, {i: f for i, f in facts.items() if i in existing})
        keywords.refresh(conn, existing)


def set_ocr(store: Store, texts: dict[int, str]) -> None:
    """Record the text OCR found ('' for none) and refresh the keywords."""
    if not texts:
        return
    with store.engine.begin() as conn:
        existing = _existing(conn, texts)
        rows = [{"image_id": i, "ocr_text": t} for i, t in texts.items() if i in existing]
        for chunk in _chunks(rows, 2_000):
            stmt = sqlite_insert(Facts)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[Facts.c.image_id], set_={"ocr_text": stmt.excluded.ocr_text}
                ),
                list(chunk),
            )
        keywords.refresh(conn, existing)


def clear_ocr(store: Store) -> None:
    """Forget every OCR text (the next `index` reads every picture again)."""
    with store.engine.begin() as conn:
        conn.execute(Facts.update().values(ocr_text=None))
        store._set_meta(conn, {"ocr_complete": ""})
        ids = conn.execute(select(Facts.c.image_id)).scalars().all()
        keywords.refresh(conn, ids)


def _existing(conn: Connection, ids: Iterable[int]) -> set[int]:
    out: set[int] = set()
    for chunk in _chunks([int(i) for i in ids]):
        out.update(conn.execute(select(Image.c.id).where(Image.c.id.in_(chunk))).scalars())
    return out


def lacking_facts(store: Store, ids: Iterable[int] | None = None) -> list[tuple[int, str]]:
    """(id, path) of images (all, or among `ids`) not read for facts yet."""
    return _lacking(store, Facts.c.image_id.is_(None), ids)


def lacking_ocr(store: Store, ids: Iterable[int] | None = None) -> list[tuple[int, str]]:
    """(id, path) of images (all, or among `ids`) OCR has not read yet."""
    return _lacking(store, Facts.c.ocr_text.is_(None), ids)


def _lacking(store: Store, cond, ids: Iterable[int] | None) -> list[tuple[int, str]]:
    q = (
        select(Image.c.id, Image.c.path)
        .select_from(Image.outerjoin(Facts, Facts.c.image_id == Image.c.id))
        .where(cond)
        .order_by(Image.c.id)
    )
    out: list[tuple[int, str]] = []
    with store.engine.connect() as conn:
        if ids is None:
            return [(int(i), p) for i, p in conn.execute(q)]
        for chunk in _chunks(sorted({int(i) for i in ids})):
            out.extend((int(i), p) for i, p in conn.execute(q.where(Image.c.id.in_(chunk))))
    return out


def facts_of(store: Store, ids: Iterable[int]) -> dict[int, dict]:
    """Facts of the images given (only those that have any), for display."""
    out: dict[int, dict] = {}
    cols = [Facts.c[c] for c in (*FACT_COLUMNS, "ocr_text")]
    with store.engine.connect() as conn:
        for chunk in _chunks([int(i) for i in ids]):
            q = select(Facts.c.image_id, *cols).where(Facts.c.image_id.in_(chunk))
            for r in conn.execute(q):
                values = {k: v for k, v in r._mapping.items() if k != "image_id" and v}
                if values:
                    out[int(r[0])] = values
    return out


def ids_near(store: Store, lat: float, lon: float, radius_km: float) -> np.ndarray:
    """Ids of photos taken within `radius_km` of (lat, lon), by great-circle distance.

    The latitude index narrows to a band first; longitudes and the exact distance are checked
    on that band with numpy (the band is wrapped at the antimeridian).
    """
    dlat = math.degrees(radius_km / EARTH_KM)
    with store.engine.connect() as conn:
        q = select(Facts.c.image_id, Facts.c.lat, Facts.c.lon).where(
            Facts.c.lat.between(lat - dlat, lat + dlat), Facts.c.lon.is_not(None)
        )
        rows = conn.execute(q).cursor.fetchall()
    if not rows:
        return np.empty(0, np.int64)
    arr = np.array(rows, dtype=np.float64)
    d = haversine_km(lat, lon, arr[:, 1], arr[:, 2])
    return np.sort(arr[d <= radius_km, 0].astype(np.int64))


def ids_in_country(store: Store, country_code: str) -> np.ndarray:
    with store.engine.connect() as conn:
        q = select(Facts.c.image_id).where(Facts.c.country_code == country_code.upper())
        return np.sort(np.array(conn.execute(q).scalars().all(), dtype=np.int64))


def haversine_km(lat1: float, lon1: float, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def facts_counts(store: Store) -> dict[str, int]:
    """How many images have a camera, a GPS position, OCR text (for status)."""
    with store.engine.connect() as conn:
        q = select(
            func.count(Facts.c.camera_model),
            func.count(Facts.c.lat),
            func.count(func.nullif(Facts.c.ocr_text, "")),
        )
        camera, gps, ocr = conn.execute(q).one()
    return {"with_camera": int(camera), "with_gps": int(gps), "with_text": int(ocr)}
