"""Queries over the library database. One short transaction per unit of work.

Vectors are stored as little-endian float16 blobs in `vectors`, apart from the image rows:
SQLite is the source of truth and the FAISS file a cache that can always be rebuilt from here. Every
change to a vector is appended to `vector_log` in the same transaction, which is how an
index file (and any reader process) catches up.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import (
    Engine,
    Select,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from clipsearch.store import keywords
from clipsearch.store.tables import (
    Counter,
    Failure,
    Generation,
    Image,
    Meta,
    Root,
    Vector,
    VectorLog,
)

_CHUNK = 20_000  # ids per IN (...) query; SQLite here allows 250k variables


@dataclass(frozen=True)
class ImageRow:
    """An image as the store knows it (without its vector)."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    width: int | None
    height: int | None
    format: str | None
    taken_at: str | None
    source: str
    added_at: float
    updated_at: float
    has_vector: bool


@dataclass(frozen=True)
class RootRow:
    """A folder or file the user indexed, and whether it is offline (see tables.Root)."""

    path: str
    kind: str  # folder | file
    added_at: float
    last_indexed_at: float | None
    device: int | None
    offline_since: float | None
    offline_reason: str | None

    @property
    def offline(self) -> bool:
        return self.offline_since is not None


@dataclass(frozen=True)
class FailureRow:
    path: str
    size: int
    mtime_ns: int
    reason: str
    failed_at: float


@dataclass
class NewImage:
    """Everything needed to insert or replace an image row."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    vector: np.ndarray | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    taken_at: str | None = None
    source: str = "photos"
    hashes: tuple[int, int, int, int] | None = None  # phash, dhash and their mirrors
    # Photo facts read from the file (camera, lens, GPS, place: keywords.FACT_COLUMNS);
    # None: not read (the next `index` reads them), {}: read, the file says nothing.
    facts: dict | None = None


@dataclass
class Changes:
    """One ingest commit. Applied atomically by `Store.apply`."""

    inserts: list[NewImage] = field(default_factory=list)
    replaces: list[tuple[int, NewImage]] = field(default_factory=list)  # re-embedded files
    moves: list[tuple[int, str, int, int]] = field(default_factory=list)  # id, path, size, mtime
    touches: list[tuple[int, int, int]] = field(default_factory=list)  # id, size, mtime
    removes: list[int] = field(default_factory=list)
    failures: list[FailureRow] = field(default_factory=list)
    cleared_failures: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            (
                self.inserts,
                self.replaces,
                self.moves,
                self.touches,
                self.removes,
                self.failures,
                self.cleared_failures,
            )
        )


_ROW_COLUMNS = (
    Image.c.id,
    Image.c.path,
    Image.c.size,
    Image.c.mtime_ns,
    Image.c.content_hash,
    Image.c.width,
    Image.c.height,
    Image.c.format,
    Image.c.taken_at,
    Image.c.source,
    Image.c.added_at,
    Image.c.updated_at,
    Vector.c.image_id.is_not(None),
)
_ROWS_FROM = Image.outerjoin(Vector, Vector.c.image_id == Image.c.id)
_WITH_VECTORS = Image.join(Vector, Vector.c.image_id == Image.c.id)


def _rows() -> Select:
    """Image rows (with whether each has a vector)."""
    return select(*_ROW_COLUMNS).select_from(_ROWS_FROM)


_ROWS_SQL = (
    "SELECT id, path, size, mtime_ns, content_hash, width, height, format, taken_at, source, "
    "added_at, updated_at, vectors.image_id IS NOT NULL FROM images "
    "LEFT JOIN vectors ON vectors.image_id = images.id"
)


def _row(r: Sequence) -> ImageRow:
    return ImageRow(*r[:12], has_vector=bool(r[12]))


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f2").tobytes()


def as_stored(vectors: np.ndarray) -> np.ndarray:
    """`vectors` as they come back from the store: float16-rounded, unit length again (a
    picture searched with its own vector scores 1)."""
    return _unit(np.asarray(vectors, dtype="<f2").astype(np.float32))


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _chunks(items: Sequence, n: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def under(column, roots: Iterable[str]):  # -> ColumnElement[bool]
    """SQL condition: `column` is one of `roots` or inside one (uses the path index)."""
    clauses = [false()]  # no roots: nothing is under them
    for root in roots:
        base = root.rstrip("/")
        # '0' is the character after '/', so this range is exactly "base/...".
        clauses.append(column == base)
        clauses.append((column > base + "/") & (column < base + "0"))
    return or_(*clauses)


class Store:
    """Typed access to one library database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()

    def data_version(self) -> int | None:
        """A number that changes whenever another connection commits (`PRAGMA data_version`
        on a connection of its own: microseconds). Callers remember the last one they saw to
        skip re-reading what cannot have changed; None when it cannot tell."""
        with self._watch_lock:
            try:
                if self._watch is None:
                    self._watch = sqlite3.connect(
                        f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                    )
                return int(self._watch.execute("PRAGMA data_version").fetchone()[0])
            except (sqlite3.Error, UnicodeDecodeError):  # the latter: a damaged schema
                return None

    def close(self) -> None:
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None
        self.engine.dispose()

    @property
    def path(self) -> str:
        """The database file."""
        return str(self.engine.url.database)

    # --- meta ------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(Meta.c.value).where(Meta.c.key == key)).scalar()
        return default if value is None else value

    def all_meta(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(Meta.c.key, Meta.c.value)).all())

    def set_meta(self, values: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            self._set_meta(conn, values)

    @staticmethod
    def _set_meta(conn, values: dict[str, str]) -> None:
        for key, value in values.items():
            stmt = sqlite_insert(Meta).values(key=key, value=str(value))
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[Meta.c.key], set_={"value": stmt.excluded.value}
                )
            )

    def dim(self) -> int | None:
        """The size of the library's vectors (None until a model has made one)."""
        raw = self.get_meta("dim")
        return int(raw) if raw else None

    # --- reads -----------------------------------------------------------------------
    def rows_under(self, roots: Iterable[str]) -> dict[str, ImageRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(_rows().where(under(Image.c.path, roots)))
            return {r[1]: _row(r) for r in rows}

    def failures_under(self, roots: Iterable[str]) -> dict[str, FailureRow]:
        cols = (
            Failure.c.path,
            Failure.c.size,
            Failure.c.mtime_ns,
            Failure.c.reason,
            Failure.c.failed_at,
        )
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).where(under(Failure.c.path, roots)))
            return {r[0]: FailureRow(*r) for r in rows}

    def failures(self, limit: int | None = None) -> list[FailureRow]:
        cols = (
            Failure.c.path,
            Failure.c.size,
            Failure.c.mtime_ns,
            Failure.c.reason,
            Failure.c.failed_at,
        )
        query = select(*cols).order_by(Failure.c.path)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [FailureRow(*r) for r in conn.execute(query)]

    def rows_by_hash(self, hashes: Iterable[str]) -> dict[str, list[ImageRow]]:
        found: dict[str, list[ImageRow]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(hashes))):
                q = _rows().where(Image.c.content_hash.in_(chunk))
                for r in conn.execute(q):
                    found.setdefault(r[4], []).append(_row(r))
        return found

    def get_rows(self, ids: Iterable[int]) -> dict[int, ImageRow]:
        out: dict[int, ImageRow] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks([int(i) for i in ids]):
                # Plain SQL: this is on every search's path, and compiling the expression
                # each time costs more than the query.
                marks = ",".join("?" * len(chunk))
                rows = conn.exec_driver_sql(
                    f"{_ROWS_SQL} WHERE images.id IN ({marks})", tuple(chunk)
                )
                for r in rows:
                    out[r[0]] = _row(r)
        return out

    def rows_at(self, paths: Iterable[str]) -> dict[str, ImageRow]:
        """The rows of these exact paths (those the library has)."""
        found: dict[str, ImageRow] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(paths))):
                for r in conn.execute(_rows().where(Image.c.path.in_(chunk))):
                    found[r[1]] = _row(r)
        return found

    def row_by_path(self, path: str) -> ImageRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(_rows().where(Image.c.path == path)).first()
        return _row(r) if r else None

    def get_vectors(self, ids: Iterable[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) for those of `ids` that have a vector.

        One statement whose text never changes (the ids go in as one JSON array), so SQLite
        reuses it and SQLAlchemy compiles nothing: a search re-ranking 54 candidates reads
        them in ~0.4 ms (an IN list of parameters took ~0.9 ms)."""
        wanted = json.dumps([int(i) for i in ids])
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(_VECTORS_OF, (wanted,)).fetchall()
        return _stack([r[0] for r in rows], [r[1] for r in rows], dim)

    def vector_ids(self) -> np.ndarray:
        """The ids of every image with a vector (read from a narrow index)."""
        with self.engine.connect() as conn:
            ids = conn.execute(select(Vector.c.image_id).order_by(Vector.c.image_id)).scalars()
            return np.fromiter(ids, dtype=np.int64)

    def iter_vectors(
        self, dim: int, chunk: int = 50_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All vectors in id order, `chunk` rows at a time (for index rebuilds)."""
        last = -1
        while True:
            with self.engine.connect() as conn:
                q = (
                    select(Vector.c.image_id, Vector.c.data)
                    .where(Vector.c.image_id > last)
                    .order_by(Vector.c.image_id)
                    .limit(chunk)
                )
                rows = conn.execute(q).all()
            if not rows:
                return
            last = rows[-1][0]
            yield _stack([r[0] for r in rows], [r[1] for r in rows], dim)

    def filter_ids(
        self,
        *,
        roots: Iterable[str] = (),
        source: str | None = None,
        after: str | None = None,
        before: str | None = None,
        among: np.ndarray | None = None,
    ) -> np.ndarray:
        """Ids of images that pass every filter given (a search meets only those with a
        vector: the index holds nothing else); with `among`, only those of these ids.

        `after`/`before` are ISO dates or datetimes compared with the capture time (EXIF),
        or the file's modification time when there is none; `after` is inclusive, `before`
        exclusive. Read from the indexes alone (dated, source, path) and fetched as one
        string (`group_concat`): 50,000 ids in ~10 ms (row by row through the driver, ~22 ms).
        """
        conds = []
        roots = list(roots)
        if roots:
            conds.append(under(Image.c.path, roots))
        if source is not None:
            conds.append(Image.c.source == source)
        dated = func.coalesce(Image.c.taken_at, Image.c.dated)  # indexed: ix_images_dated
        if after is not None:
            conds.append(dated >= after)
        if before is not None:
            conds.append(dated < before)
        with self.engine.connect() as conn:
            if among is None:
                listed = conn.execute(select(func.group_concat(Image.c.id)).where(*conds))
                text = listed.scalar()
                return np.sort(np.array(text.split(",") if text else [], dtype=np.int64))
            else:
                rows = []
                for chunk in _chunks([int(i) for i in among]):
                    q = select(Image.c.id).where(Image.c.id.in_(chunk), *conds)
                    rows.extend(conn.execute(q).cursor.fetchall())
        return np.sort(np.array(rows, dtype=np.int64).reshape(-1))

    def newest(self, ids: np.ndarray, limit: int) -> np.ndarray:
        """The `limit` newest of `ids` (capture time, else modification time), newest first."""
        dated = func.coalesce(Image.c.taken_at, Image.c.dated)
        got: list[tuple[int, str]] = []
        with self.engine.connect() as conn:
            for chunk in _chunks([int(i) for i in ids]):
                q = select(Image.c.id, dated).where(Image.c.id.in_(chunk))
                got.extend(conn.execute(q).cursor.fetchall())
        got.sort(key=lambda r: (r[1] or "", r[0]), reverse=True)
        return np.array([r[0] for r in got[:limit]], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        """How many images (photos, generated), vectors and failures: kept by triggers in
        the transactions that change them (`counters`), read without scanning."""
        with self.engine.connect() as conn:
            kept = dict(conn.execute(select(Counter.c.name, Counter.c.n)).all())
        return {
            "images": kept.get("images", 0),
            "vectors": kept.get("vectors", 0),
            "failures": kept.get("failures", 0),
            "photos": kept.get("source:photos", 0),
            "generated": kept.get("source:generated", 0),
        }

    def vector_count(self) -> int:
        with self.engine.connect() as conn:
            q = select(Counter.c.n).where(Counter.c.name == "vectors")
            return int(conn.execute(q).scalar() or 0)

    def roots(self) -> list[RootRow]:
        """Every root the user indexed, by path."""
        cols = (
            Root.c.path,
            Root.c.kind,
            Root.c.added_at,
            Root.c.last_indexed_at,
            Root.c.device,
            Root.c.offline_since,
            Root.c.offline_reason,
        )
        with self.engine.connect() as conn:
            return [RootRow(*r) for r in conn.execute(select(*cols).order_by(Root.c.path))]

    # --- the vector log ----------------------------------------------------------------
    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(VectorLog.c.seq))).scalar() or int(
                self.get_meta("log_pruned_upto", "0") or 0
            )

    def log_since(self, seq: int) -> list[tuple[int, int, str]]:
        with self.engine.connect() as conn:
            q = select(VectorLog.c.seq, VectorLog.c.image_id, VectorLog.c.op).where(
                VectorLog.c.seq > seq
            )
            return conn.execute(q.order_by(VectorLog.c.seq)).cursor.fetchall()

    def changes_since(
        self, seq: int, dim: int
    ) -> tuple[list[tuple[int, int, str]], np.ndarray, np.ndarray]:
        """The log entries after `seq`, and (ids, vectors) of the images whose last entry
        is an addition and that have a vector now: one query, the log joined with the
        vectors (a reader catching up after a commit: no list of ids sent back)."""
        sql = (
            "SELECT vector_log.seq, vector_log.image_id, vector_log.op, vectors.data "
            "FROM vector_log LEFT JOIN vectors ON vectors.image_id = vector_log.image_id "
            "WHERE vector_log.seq > ? ORDER BY vector_log.seq"
        )
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(sql, (int(seq),)).cursor.fetchall()  # raw rows
        last: dict[int, tuple[str, bytes | None]] = {}
        for _, image_id, op, blob in rows:
            last[image_id] = (op, blob)
        added = [(i, blob) for i, (op, blob) in last.items() if op == "add" and blob is not None]
        entries = [(r[0], r[1], r[2]) for r in rows]
        return entries, *_stack([i for i, _ in added], [b for _, b in added], dim)

    def prune_log(self, upto: int, *, meta: dict[str, str] | None = None) -> None:
        """Forget log entries an index file saved at `upto` already contains (and record
        `meta` about that file in the same transaction)."""
        with self.engine.begin() as conn:
            if meta:
                self._set_meta(conn, meta)
            conn.execute(delete(VectorLog).where(VectorLog.c.seq <= upto))
            current = conn.execute(
                select(Meta.c.value).where(Meta.c.key == "log_pruned_upto")
            ).scalar()
            if current is None or int(current) < upto:
                self._set_meta(conn, {"log_pruned_upto": str(upto)})

    # --- writes ------------------------------------------------------------------------
    def apply(self, changes: Changes) -> tuple[list[int], int | None]:
        """Apply one ingest commit atomically.

        Returns the ids of the inserted rows and the last vector-log seq it wrote (None if
        it changed no vector).
        """
        now = time.time()
        new_ids: list[int] = []
        log: list[dict] = []
        vectors: list[dict] = []
        facts: dict[int, dict] = {}
        with self.engine.begin() as conn:
            if changes.inserts:  # one statement for the batch, ids in the batch's order
                rows = [
                    _values(img) | {"added_at": now, "updated_at": now} for img in changes.inserts
                ]
                q = insert(Image).returning(Image.c.id, sort_by_parameter_order=True)
                inserted = [int(r[0]) for r in conn.execute(q, rows)]
                for img, new_id in zip(changes.inserts, inserted, strict=True):
                    new_ids.append(new_id)
                    if img.facts is not None:
                        facts[new_id] = img.facts
                    if img.vector is not None:
                        log.append({"image_id": new_id, "op": "add"})
                        vectors.append({"image_id": new_id, "data": _blob(img.vector)})
            for image_id, img in changes.replaces:
                conn.execute(
                    update(Image)
                    .where(Image.c.id == image_id)
                    .values(**_values(img), updated_at=now)
                )
                conn.execute(delete(Vector).where(Vector.c.image_id == image_id))
                if img.facts is not None:
                    facts[image_id] = img.facts
                if img.vector is not None:
                    vectors.append({"image_id": image_id, "data": _blob(img.vector)})
                log.append(
                    {"image_id": image_id, "op": "add" if img.vector is not None else "remove"}
                )
            if vectors:
                conn.execute(insert(Vector), vectors)
            for image_id, path, size, mtime_ns in changes.moves:
                conn.execute(
                    update(Image)
                    .where(Image.c.id == image_id)
                    .values(
                        path=path,
                        size=size,
                        mtime_ns=mtime_ns,
                        dated=case((Image.c.taken_at.is_(None), local_iso(mtime_ns)), else_=None),
                        updated_at=now,
                    )
                )
            for image_id, size, mtime_ns in changes.touches:
                conn.execute(
                    update(Image)
                    .where(Image.c.id == image_id)
                    .values(
                        size=size,
                        mtime_ns=mtime_ns,
                        dated=case((Image.c.taken_at.is_(None), local_iso(mtime_ns)), else_=None),
                        updated_at=now,
                    )
                )
            for chunk in _chunks(changes.removes):
                conn.execute(delete(Image).where(Image.c.id.in_(chunk)))
                log.extend({"image_id": i, "op": "remove"} for i in chunk)
            if changes.cleared_failures:
                for chunk in _chunks(changes.cleared_failures):
                    conn.execute(delete(Failure).where(Failure.c.path.in_(chunk)))
            for f in changes.failures:
                stmt = sqlite_insert(Failure).values(
                    path=f.path,
                    size=f.size,
                    mtime_ns=f.mtime_ns,
                    reason=f.reason,
                    failed_at=f.failed_at,
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[Failure.c.path],
                        set_={
                            k: stmt.excluded[k] for k in ("size", "mtime_ns", "reason", "failed_at")
                        },
                    )
                )
            replaced = [i for i, _ in changes.replaces]
            keywords.forget_facts(conn, replaced)  # new content: its facts and text anew
            unread = [img for img in changes.inserts if img.facts is None]
            if unread or any(img.facts is None for _, img in changes.replaces):
                self._set_meta(conn, {"facts_complete": ""})  # the next index reads them
            keywords.write_facts(conn, facts)
            keywords.refresh(conn, [*new_ids, *replaced, *(m[0] for m in changes.moves)])
            last_seq = None
            if log:
                conn.execute(insert(VectorLog), log)
                last_seq = conn.execute(select(func.max(VectorLog.c.seq))).scalar()
        return new_ids, last_seq

    def move_paths(self, src: str, dst: str) -> tuple[int, list[int], int | None]:
        """Rename the image at `src`, or every image under folder `src`, to `dst`, atomically.

        Ids and vectors stay. An image already recorded at a destination path is replaced (its
        row and vector go). Recorded failures move along. Returns (rows moved, ids removed,
        last vector-log seq written or None).
        """
        src, dst = src.rstrip("/"), dst.rstrip("/")
        if src == dst:
            return 0, [], None
        now = time.time()
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(Image.c.id, Image.c.path).where(under(Image.c.path, [src]))
            ).all()
            bad = list(
                conn.execute(select(Failure.c.path).where(under(Failure.c.path, [src]))).scalars()
            )
            moving = {i for i, _ in rows}
            targets = [dst + p[len(src) :] for _, p in rows]
            bad_targets = [dst + p[len(src) :] for p in bad]
            # Whatever was recorded at a destination path is replaced by what moves there.
            clash: list[int] = []
            for chunk in _chunks(targets + bad_targets):
                found = conn.execute(select(Image.c.id).where(Image.c.path.in_(chunk))).scalars()
                clash.extend(i for i in found if i not in moving)
                conn.execute(delete(Failure).where(Failure.c.path.in_(chunk)))
            clash = list(dict.fromkeys(clash))
            for chunk in _chunks(clash):
                conn.execute(delete(Image).where(Image.c.id.in_(chunk)))
            if rows:
                stmt = update(Image).where(Image.c.id == bindparam("row_id"))
                conn.execute(
                    stmt.values(path=bindparam("new_path"), updated_at=now),
                    [{"row_id": i, "new_path": t} for (i, _), t in zip(rows, targets, strict=True)],
                )
            for old, new in zip(bad, bad_targets, strict=True):
                conn.execute(update(Failure).where(Failure.c.path == old).values(path=new))
            keywords.refresh(conn, moving)  # new file and folder names
            last_seq = None
            if clash:
                conn.execute(insert(VectorLog), [{"image_id": i, "op": "remove"} for i in clash])
                last_seq = conn.execute(select(func.max(VectorLog.c.seq))).scalar()
        return len(rows), clash, last_seq

    def remember_roots(self, roots: dict[str, str]) -> None:
        """Record roots (path -> "folder" or "file") the user asked to index."""
        now = time.time()
        with self.engine.begin() as conn:
            for path, kind in roots.items():
                stmt = sqlite_insert(Root).values(path=path, added_at=now, kind=kind)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[Root.c.path], set_={"kind": stmt.excluded.kind}
                    )
                )

    def set_roots_online(self, devices: dict[str, int]) -> None:
        """Roots (path -> st_dev) seen online on this device."""
        with self.engine.begin() as conn:
            for path, device in devices.items():
                conn.execute(
                    update(Root)
                    .where(Root.c.path == path)
                    .values(device=device, offline_since=None, offline_reason=None)
                )

    def set_roots_offline(self, reasons: dict[str, str]) -> None:
        """Roots (path -> why) that are offline; `offline_since` keeps the first time."""
        now = time.time()
        with self.engine.begin() as conn:
            for path, reason in reasons.items():
                conn.execute(
                    update(Root)
                    .where(Root.c.path == path)
                    .values(
                        offline_since=func.coalesce(Root.c.offline_since, now),
                        offline_reason=reason,
                    )
                )

    def mark_indexed(self, paths: Iterable[str]) -> None:
        """These roots were just indexed whole."""
        now = time.time()
        with self.engine.begin() as conn:
            for path in paths:
                conn.execute(update(Root).where(Root.c.path == path).values(last_indexed_at=now))

    def forget_root(self, path: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(Root).where(Root.c.path == path))

    def count_under(self, roots: Iterable[str]) -> int:
        """Images recorded at or under these paths."""
        roots = list(roots)
        if not roots:
            return 0
        with self.engine.connect() as conn:
            q = select(func.count()).select_from(Image).where(under(Image.c.path, roots))
            return int(conn.execute(q).scalar() or 0)

    def clear_vectors(self, meta: dict[str, str]) -> int:
        """Drop every vector (switching models) and record the new model, atomically."""
        with self.engine.begin() as conn:
            ids = list(conn.execute(select(Vector.c.image_id)).scalars())
            conn.execute(delete(Vector))
            if ids:
                conn.execute(insert(VectorLog), [{"image_id": i, "op": "remove"} for i in ids])
            self._set_meta(conn, meta)
        return len(ids)

    def record_generation(self, image_id: int, values: dict) -> None:
        """Mark an image as generated and store how it was made (replacing earlier facts)."""
        with self.engine.begin() as conn:
            conn.execute(update(Image).where(Image.c.id == image_id).values(source="generated"))
            conn.execute(delete(Generation).where(Generation.c.image_id == image_id))
            conn.execute(insert(Generation).values(image_id=image_id, **values))

    def generation(self, image_id: int) -> dict | None:
        """How a generated image was made (the `generations` row), or None."""
        with self.engine.connect() as conn:
            r = conn.execute(select(Generation).where(Generation.c.image_id == image_id)).first()
        return None if r is None else dict(r._mapping)

    def ids_without_vectors(self) -> list[ImageRow]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(_rows().where(Vector.c.image_id.is_(None)))]


def _values(img: NewImage) -> dict:
    return {
        "path": img.path,
        "size": img.size,
        "mtime_ns": img.mtime_ns,
        "content_hash": img.content_hash,
        "width": img.width,
        "height": img.height,
        "format": img.format,
        "taken_at": img.taken_at,
        "source": img.source,
        "dated": None if img.taken_at else local_iso(img.mtime_ns),  # see tables.Image
        **dict(zip(_HASH_COLUMNS, img.hashes or (None,) * 4, strict=True)),
    }


_HASH_COLUMNS = ("phash", "dhash", "phash_mirror", "dhash_mirror")


_VECTORS_OF = (
    "SELECT image_id, data FROM vectors WHERE image_id IN (SELECT value FROM json_each(?))"
)


def _stack(ids: list[int], blobs: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    if not ids:
        return np.empty(0, np.int64), np.empty((0, dim), np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(ids), dim)
    return np.asarray(ids, dtype=np.int64), _unit(matrix.astype(np.float32))


def local_iso(mtime_ns: int) -> str:
    """A modification time as date filters compare it: ISO 8601, local time, to the second."""
    return datetime.fromtimestamp(mtime_ns / 1e9).strftime("%Y-%m-%dT%H:%M:%S")
