"""What a walk compares the disk against, read lean: (size, mtime) per path, the folders
recorded by the last complete walk (`index --quick`), and which images still lack a vector.

A million rows as `ImageRow`s through SQLAlchemy take ~7.5 s; as plain tuples from one
statement, ~1.5 s. Paths are bound as `FsPath` binds them (raw bytes cast to TEXT when they
are not valid UTF-8), so names from old volumes compare byte-wise as stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert

from clipsearch.store.store import Store
from clipsearch.store.tables import Folder, FsPath

_BATCH = 10_000


def _param(path: str) -> str | bytes:
    return FsPath().process_bind_param(path, None)  # type: ignore[return-value]


def _under_sql(roots: Iterable[str]) -> tuple[str, list]:
    """SQL condition on images.path: at or under one of `roots` (uses the path index)."""
    clauses, params = ["0"], []
    for root in roots:
        base = root.rstrip("/")
        clauses.append("path = CAST(? AS TEXT)")
        clauses.append("(path > CAST(? AS TEXT) AND path < CAST(? AS TEXT))")
        params += [_param(base), _param(base + "/"), _param(base + "0")]
    return "(" + " OR ".join(clauses) + ")", params


def file_states_under(store: Store, roots: Iterable[str]) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every image at or under `roots`."""
    where, params = _under_sql(roots)
    return _states(store, f"SELECT path, size, mtime_ns FROM images WHERE {where}", params)


def file_states_outside(
    store: Store, roots: Iterable[str], skipped: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of the images under `roots` that are not directly in one of
    the `skipped` folders: the pictures of the folders a quick walk listed, and of folders
    that are gone. One pass over the path column in SQLite (~1 s per million rows)."""
    where, params = _under_sql(roots)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS skipped_folders (p TEXT PRIMARY KEY)")
        conn.exec_driver_sql("DELETE FROM skipped_folders")
        raw = conn.connection.driver_connection
        raw.executemany(  # type: ignore[union-attr]
            "INSERT OR IGNORE INTO skipped_folders VALUES (CAST(? AS TEXT))",
            [(_param(f.rstrip("/") + "/"),) for f in skipped],
        )
        # rtrim(path, <the path's characters but '/'>) is the path's folder, with its '/'.
        sql = (
            f"SELECT path, size, mtime_ns FROM images WHERE {where} AND "
            "rtrim(path, replace(path, '/', '')) NOT IN (SELECT p FROM skipped_folders)"
        )
        try:
            return _fetch(conn, sql, params)
        finally:
            conn.exec_driver_sql("DELETE FROM skipped_folders")
            conn.commit()


def _states(store: Store, sql: str, params: list) -> dict[str, tuple[int, int]]:
    with store.engine.connect() as conn:
        return _fetch(conn, sql, params)


def _fetch(conn, sql: str, params: list) -> dict[str, tuple[int, int]]:
    cursor = conn.exec_driver_sql(sql, tuple(params)).cursor
    out: dict[str, tuple[int, int]] = {}
    while chunk := cursor.fetchmany(_BATCH):
        for path, size, mtime_ns in chunk:
            out[path] = (size, mtime_ns)
    return out


def paths_without_vectors(store: Store, roots: Iterable[str]) -> set[str]:
    """Images at or under `roots` that have no vector yet (none when the kept counts say
    every image has one: no scan)."""
    counts = store.counts()
    if counts["images"] <= counts["vectors"]:
        return set()
    where, params = _under_sql(roots)
    sql = (
        "SELECT path FROM images LEFT JOIN vectors ON vectors.image_id = images.id "
        f"WHERE vectors.image_id IS NULL AND {where}"
    )
    with store.engine.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql(sql, tuple(params))}


def recorded_folders(store: Store, roots: Iterable[str]) -> dict[str, int]:
    """folder -> modification time recorded by the last complete walk, at or under `roots`."""
    where, params = _under_sql(roots)
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT path, mtime_ns FROM folders WHERE {where}", tuple(params)
        )
        return {r[0]: r[1] for r in rows}


def record_folders(store: Store, roots: Iterable[str], seen: dict[str, int]) -> None:
    """Replace what is recorded at or under `roots` with the folders a complete walk saw
    (`fs.FolderLog.seen`; a time not to be trusted is recorded as such)."""
    roots = list(roots)
    where, params = _under_sql(roots)
    rows = [{"path": p, "mtime_ns": t} for p, t in seen.items()]
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM folders WHERE {where}", tuple(params))
        for i in range(0, len(rows), _BATCH):
            conn.execute(insert(Folder), rows[i : i + _BATCH])
