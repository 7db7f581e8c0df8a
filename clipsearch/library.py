"""Library: a directory holding one photo collection's database, index and extras.

This is the Python API; the CLI is a thin layer over it::

    from clipsearch import Library

    with Library.open("~/clip-lib") as lib:
        summary = lib.index(["~/Pictures"])
        hits = lib.search("a dog on a beach", k=5)
        hits = lib.search(image="query.jpg")
        hits = lib.search("beach", image="sunset.jpg", negative=["people"])

Layout of a library directory::

    clipsearch.db          SQLite (WAL): images, vectors, failures, roots, meta
    vectors-<seq>.faiss    the FAISS index, a cache of the vectors in the database
    lock                   the writer lock (one writer, any number of readers)

On open, the index file is checked against the database: it is caught up from the vector
log, or rebuilt when it is missing, damaged or disagrees.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch import fs
from clipsearch.config import DEFAULT_MODEL, Settings
from clipsearch.encoder import Encoder
from clipsearch.errors import LibraryError, ModelMismatch
from clipsearch.index import VectorIndex, index_files
from clipsearch.ingest import IndexRun, IndexSummary, ProgressFn
from clipsearch.library_features import DupesAndTags
from clipsearch.lock import WriterLock
from clipsearch.models import ModelSpec
from clipsearch.search import Query, Searcher, SearchResult, build_terms
from clipsearch.store import Store, open_database
from clipsearch.store.db import migrate, schema_state

log = logging.getLogger(__name__)

DB_NAME = "clipsearch.db"
_SAVE_AFTER_REPLAY = 2_000  # log entries a writer replays before it re-saves the index file


class Library(DupesAndTags):
    """An open library. Create with :meth:`Library.open`; close (or use `with`)."""

    def __init__(self, path: Path, settings: Settings, store: Store) -> None:
        self.path = path
        self.settings = settings
        self.store = store
        self._lock = WriterLock(path)
        self._encoder: Encoder | None = None
        self._index: VectorIndex | None = None
        # Catching the index up mutates it: searches in other threads wait for that.
        self._index_lock = threading.RLock()
        self._saved_seq = -1  # the log position of the index file on disk, as far as we know

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        model: str | None = None,
        create: bool = True,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> Library:
        """Open the library at `path` (default: settings / CLIPSEARCH_LIBRARY / per-user).

        `model` picks the model for a new library; for an existing one it must match the
        model the library was made with (or be left out). `create=False` refuses to create.
        Other keyword arguments override settings: device, batch_size, threads, workers.
        """
        if settings is None:
            settings = Settings.resolve(library=path, model=model, **overrides)
        else:
            settings = settings.with_(
                **{k: v for k, v in dict(overrides, model=model).items() if v is not None}
            )
            if path is not None:
                settings = settings.with_(library=Path(path).expanduser())
        folder = Path(os.path.abspath(settings.library))
        db_path = folder / DB_NAME
        is_new = not db_path.exists()
        if is_new:
            _check_new_library_dir(folder, create)
            folder.mkdir(parents=True, exist_ok=True)
        store = Store(open_database(db_path))
        lib = cls(folder, settings, store)
        try:
            lib._prepare_schema(is_new)
            lib._check_model(settings.model)
        except BaseException:
            lib.close()
            raise
        return lib

    def _prepare_schema(self, is_new: bool) -> None:
        current, head = schema_state(self.store.engine)
        if current == head:
            return
        with self._writing("upgrading the library"):
            migrate(self.store.engine)
            if is_new or self.store.get_meta("model") is None:
                self.store.set_meta(
                    {
                        "model": ModelSpec.parse(self.settings.model or DEFAULT_MODEL).canonical,
                        "created_at": str(time.time()),
                    }
                )

    def _check_model(self, requested: str | None) -> None:
        if requested is None:
            return
        wanted = ModelSpec.parse(requested).canonical
        current = self.model
        if wanted == current:
            return
        if self.store.vector_count() == 0:  # nothing to mix yet: just switch
            with self._writing("setting the library's model"):
                self.store.clear_vectors({"model": wanted, "model_fingerprint": "", "dim": ""})
            return
        n = self.store.counts()["images"]
        raise ModelMismatch(
            f"the library {self.path} was indexed with model {current}, not {wanted}; "
            "vectors from two models cannot be mixed",
            hint=f"Leave out --model to search with {current}, or re-embed all {n} images with "
            f"the new model:  clipsearch --library {self.path} reindex --model {requested}\n"
            "(or use another --library for the other model).",
        )

    # --- parts, built on first use -------------------------------------------------------
    @property
    def model(self) -> str:
        """The canonical spec of the model this library's vectors come from."""
        return self.store.get_meta("model") or ModelSpec.parse(DEFAULT_MODEL).canonical

    @property
    def encoder(self) -> Encoder:
        """The library's encoder (the model loads on first encode)."""
        if self._encoder is None:
            s = self.settings
            self._encoder = Encoder(
                self.model, device=s.device, batch_size=s.batch_size, threads=s.threads
            )
        return self._encoder

    def _loaded_encoder(self) -> Encoder:
        """The encoder, loaded and checked against what the library recorded."""
        enc = self.encoder.load()
        meta = self.store.all_meta()
        recorded_fp, recorded_dim = meta.get("model_fingerprint", ""), meta.get("dim", "")
        if recorded_fp and enc.fingerprint and recorded_fp != enc.fingerprint:
            raise ModelMismatch(
                f"the weights of model {self.model} changed since this library was indexed",
                hint=f"Re-embed with the new weights: clipsearch --library {self.path} "
                f"reindex --model {self.model}",
            )
        if recorded_dim and int(recorded_dim) != enc.dim:
            raise ModelMismatch(
                f"model {self.model} makes {enc.dim}-d vectors but the library holds "
                f"{recorded_dim}-d ones",
                hint=f"Re-embed: clipsearch --library {self.path} reindex --model {self.model}",
            )
        if ((not recorded_fp and enc.fingerprint) or not recorded_dim) and self._lock.held:
            self.store.set_meta({"model_fingerprint": enc.fingerprint, "dim": str(enc.dim)})
        return enc

    @property
    def dim(self) -> int | None:
        raw = self.store.get_meta("dim")
        return int(raw) if raw else None

    @property
    def vector_index(self) -> VectorIndex:
        """The FAISS index, loaded, caught up with the store (and repaired if needed)."""
        if self.dim is None:
            return VectorIndex.empty(1)  # no vectors yet: an empty stand-in, not cached
        with self._index_lock:
            if self._index is not None:
                try:
                    self._catch_up(self._index)
                    return self._index
                except _Stale:
                    self._index = None
            self._index = self._sync_index()
            return self._index

    @contextlib.contextmanager
    def searching(self) -> Iterator[VectorIndex]:
        """The caught-up index, held steady (no updates from this process) while in use."""
        with self._index_lock:
            yield self.vector_index

    # --- the index cache ----------------------------------------------------------------
    def _sync_index(self) -> VectorIndex:
        dim = self.dim
        assert dim is not None
        for _ in range(3):
            index = VectorIndex.load_latest(self.path)
            if index is None or index.dim != dim:
                break
            self._saved_seq = index.seq
            try:
                self._catch_up(index)
                if index.ntotal != self.store.vector_count():
                    self._catch_up(index)  # a writer may have committed meanwhile
            except _Stale:
                continue  # a writer saved a newer file and pruned the log: load that one
            if index.ntotal == self.store.vector_count():
                return index
            log.warning(
                "index file disagrees with the database (%d vs %d vectors); rebuilding",
                index.ntotal, self.store.vector_count(),
            )  # fmt: skip
            break
        return self._rebuild(dim)

    def _rebuild(self, dim: int) -> VectorIndex:
        while True:
            seq = self.store.max_seq()
            parts = list(self.store.iter_vectors(dim))
            ids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
            vecs = (
                np.concatenate([p[1] for p in parts]) if parts else np.empty((0, dim), np.float32)
            )
            index = VectorIndex.build(dim, ids, vecs)
            index.seq = seq
            try:
                self._catch_up(index)  # entries committed while we read replay idempotently
            except _Stale:
                continue
            self._maybe_save(index, force=True)
            return index

    def _catch_up(self, index: VectorIndex) -> None:
        """Replay vector-log entries newer than the index (idempotent)."""
        pruned = int(self.store.get_meta("log_pruned_upto", "0") or 0)
        if index.seq < pruned:  # entries it needs were pruned after a newer file was saved
            raise _Stale()
        entries = self.store.log_since(index.seq)
        if not entries:
            return
        final: dict[int, str] = {}
        for _, image_id, op in entries:
            final[image_id] = op
        index.remove(list(final))
        ids, vecs = self.store.get_vectors([i for i, op in final.items() if op == "add"], index.dim)
        index.add(ids, vecs)
        index.seq = entries[-1][0]
        self._maybe_save(index, replayed=len(entries))

    def _maybe_save(self, index: VectorIndex, *, force: bool = False, replayed: int = 0) -> None:
        """Writers persist the index (and prune the log); readers never write."""
        if not self._lock.held:
            if not force:
                return
            try:  # a reader that had to rebuild saves if nobody is writing
                self._lock.acquire("clipsearch (saving the index)")
            except LibraryError:
                return
            try:
                self._save(index)
            finally:
                self._lock.release()
            return
        if force or replayed >= _SAVE_AFTER_REPLAY:
            self._save(index)

    def _save(self, index: VectorIndex) -> None:
        if self.dim is None:
            return
        for stale in self.path.glob(".vectors-*.tmp"):  # left by a writer killed mid-save
            stale.unlink(missing_ok=True)
        index.save(self.path, index.seq)
        self._saved_seq = index.seq
        self.store.prune_log(index.seq)

    def save_index(self) -> None:
        """Write the index file if this process's index holds entries the file lacks.

        A writer's checkpoint: afterwards readers replay nothing. Takes the writer lock if
        this process does not hold it. The index is caught up first, so the file never
        claims log entries it does not contain; an index this process never loaded was not
        changed by it and is left alone.
        """
        if self._index is None or self.dim is None:
            return
        with self._writing("clipsearch (saving the index)"), self._index_lock:
            index = self.vector_index  # catch up: with the writer lock nobody else writes
            if index.seq > self._saved_seq:
                self._save(index)

    @contextlib.contextmanager
    def _writing(self, purpose: str) -> Iterator[None]:
        took = not self._lock.held
        if took:
            self._lock.acquire(purpose)
        try:
            yield
        finally:
            if took:
                self._lock.release()

    # --- operations ---------------------------------------------------------------------
    def index(
        self,
        paths: Sequence[str | Path],
        *,
        progress: ProgressFn | None = None,
        source: str = "photos",
    ) -> IndexSummary:
        """Index images under `paths` incrementally; returns what changed.

        New files are embedded, changed ones re-embedded, moved/renamed ones keep their
        vector, files gone from these paths leave the library. Unreadable files are recorded
        with their reason and skipped. Ctrl-C keeps everything committed so far.
        """
        roots = fs.check_roots(paths)
        with self._writing("clipsearch index"):
            return self._run_index(roots, progress=progress, source=source)

    def _run_index(
        self,
        roots: list[str],
        *,
        progress: ProgressFn | None,
        source: str,
        remember: bool = True,
        save: bool = True,
        defer_failure: Callable[[str, str], bool] | None = None,
    ) -> IndexSummary:
        if remember:
            self.store.touch_roots(roots, indexed=False)
        run = IndexRun(
            self.store, self._writer_index, self._loaded_encoder, exclude=[str(self.path)],
            workers=self.settings.workers, batch_size=self.settings.batch_size,
            progress=progress, source=source, index_lock=self._index_lock,
            defer_failure=defer_failure,
        )  # fmt: skip
        try:
            summary = run.run(roots)
        finally:
            if save:
                self.save_index()
        self._tag_new(run.vector_ids)
        if remember and not summary.interrupted:
            self.store.touch_roots(roots, indexed=True)
        return summary

    # --- keeping up with a watched folder (the watch daemon) ------------------------------
    def writer(self, purpose: str) -> contextlib.AbstractContextManager[None]:
        """Hold the writer lock for a long job (the watch daemon); raises LibraryLocked."""
        return self._writing(purpose)

    def warm_up(self) -> None:
        """Load the model and the index now (so the first file a writer sees is fast)."""
        with self._writing("clipsearch (loading)"):
            self._writer_index()
            for tmp in self.path.glob(".vectors-*.tmp"):  # left by a writer that was killed
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def sync_paths(
        self,
        paths: Sequence[str | Path],
        *,
        remember: bool = False,
        save: bool = False,
        defer_failure: Callable[[str, str], bool] | None = None,
    ) -> IndexSummary:
        """Bring exactly these files or folders in line with the disk (the watch daemon's step).

        Like :meth:`index`, but paths that no longer exist are not an error: their images
        leave the library. By default the paths are not remembered as indexed folders and the
        index file is not rewritten (readers replay the change log; see :meth:`save_index`).
        `defer_failure(path, reason)` returning True leaves a failure unrecorded.
        """
        roots = [os.path.abspath(p) for p in paths]
        with self._writing("clipsearch (syncing files)"):
            return self._run_index(
                roots, progress=None, source="photos", remember=remember, save=save,
                defer_failure=defer_failure,
            )  # fmt: skip

    def move_path(self, src: str | Path, dst: str | Path) -> int:
        """Record that a file or folder moved on disk: its images keep ids and vectors.

        An image recorded at a destination path is replaced. Returns the images moved.
        """
        src, dst = os.path.abspath(src), os.path.abspath(dst)
        with self._writing("clipsearch (recording a move)"), self._index_lock:
            index = self.vector_index if self.dim is not None else None  # before the commit
            moved, removed, last_seq = self.store.move_paths(src, dst)
            if index is not None and removed:
                index.remove(removed)
            if index is not None and last_seq is not None:
                index.seq = last_seq
        return moved

    def unsaved_changes(self) -> int:
        """Vector changes committed since the index file was last written."""
        pruned = int(self.store.get_meta("log_pruned_upto", "0") or 0)
        return max(0, self.store.max_seq() - max(pruned, self._saved_seq))

    def watched_roots(self) -> list[str]:
        """The folders `clipsearch watch` was last asked to watch."""
        return json.loads(self.store.get_meta("watched_roots", "[]") or "[]")

    def set_watched_roots(self, roots: Sequence[str]) -> None:
        with self._writing("clipsearch (remembering watched folders)"):
            self.store.set_meta({"watched_roots": json.dumps(list(roots))})

    def _writer_index(self) -> VectorIndex:
        """The index an index run writes to; a new library learns its vector size here."""
        if self.dim is None:
            self._loaded_encoder()  # records dim + fingerprint (the writer lock is held)
        return self.vector_index

    def reindex(self, model: str, *, progress: ProgressFn | None = None) -> IndexSummary:
        """Switch the library to `model` and re-embed every image with it.

        The new model is loaded first, so a model that cannot load changes nothing.
        """
        spec = ModelSpec.parse(model)
        with self._writing("clipsearch reindex"):
            new_encoder = Encoder(
                spec, device=self.settings.device, batch_size=self.settings.batch_size,
                threads=self.settings.threads,
            ).load()  # fmt: skip
            self.store.clear_vectors(
                {"model": spec.canonical, "model_fingerprint": new_encoder.fingerprint,
                 "dim": str(new_encoder.dim)}
            )  # fmt: skip
            for f in index_files(self.path):
                f.unlink()
            self._encoder = new_encoder
            self._index = None
            self._save(self.vector_index)
            roots = [r for r, _ in self.store.roots() if os.path.exists(r)]
            summary = self._run_index(roots, progress=progress, source="photos")
            return self._reembed_generated(summary, progress)

    def _reembed_generated(
        self, summary: IndexSummary, progress: ProgressFn | None
    ) -> IndexSummary:
        """Generated pictures live outside the indexed folders: re-embed them by path."""
        paths = [r.path for r in self.store.ids_without_vectors() if r.source == "generated"]
        if summary.interrupted or not paths:
            return summary
        more = self._run_index(paths, progress=progress, source="generated", remember=False)
        for name in ("added", "updated", "removed", "failed", "embedded"):
            setattr(summary, name, getattr(summary, name) + getattr(more, name))
        summary.failures += more.failures
        summary.interrupted = more.interrupted
        return summary

    def add_generated(self, path: str | Path, provenance: dict[str, Any]) -> int:
        """Index one generated picture at once (source 'generated') with its provenance.

        `provenance` holds the `generations` columns (prompts, seed, steps, ...). Returns the
        image id. Works for files inside the library folder, which `index` runs skip.
        """
        target = fs.normalize_root(path)
        with self._writing("clipsearch generate"):
            summary = self._run_index([target], progress=None, source="generated", remember=False)
            row = self.store.row_by_path(target)
            if row is None or not row.has_vector:
                reason = summary.failures[0].reason if summary.failures else "not indexed"
                raise LibraryError(f"could not add {target} to the library: {reason}")
            self.store.record_generation(row.id, provenance)
            return row.id

    def search(
        self,
        text: str | None = None,
        *,
        image: str | Path | Sequence[str | Path] | None = None,
        negative: Sequence[str] = (),
        negative_image: Sequence[str | Path] = (),
        like: int | Sequence[int] = (),
        k: int = 10,
        min_score: float | None = None,
        within: Sequence[str | Path] = (),
        source: str | None = None,
        after: str | None = None,
        before: str | None = None,
        tag: str | None = None,
    ) -> list[SearchResult]:
        """Search by text, image(s), "more like" ids, with negatives and filters.

        Filters: `within` folders/files, `source` ("photos" or "generated"), `tag` (a label
        `tag()` gave the image), and a date
        range `after` (inclusive) / `before` (exclusive) on the capture time, or the file's
        modification time when the picture has none (e.g. "2024", "2024-06-30").

        `text` accepts rclip's expression syntax (`"2:dog + ./pool.jpg - fruit"`).
        Results are best first; files gone from disk never appear.
        """
        images = [image] if isinstance(image, (str, Path)) else list(image or [])
        likes = [like] if isinstance(like, int) else list(like)
        terms = build_terms(
            text or "", images=images, negatives=negative, negative_images=negative_image,
            like=likes,
        )  # fmt: skip
        query = Query(
            tuple(terms), k=k, min_score=min_score,
            within=tuple(fs.normalize_root(w) for w in within), exclude_ids=tuple(likes),
            source=source, after=after, before=before, tag=tag,
        )  # fmt: skip
        return self.run_query(query)

    def run_query(self, query: Query) -> list[SearchResult]:
        """Run a prepared :class:`Query`."""
        dim = self.dim
        if dim is None:
            return []
        searcher = Searcher(self.store, self.searching, self._loaded_encoder, dim)
        return searcher.search(query)

    def status(self) -> dict[str, Any]:
        """Counts and facts about the library (the `status --json` shape)."""
        counts = self.store.counts()
        meta = self.store.all_meta()
        index = self.vector_index if self.dim else None
        files = index_files(self.path)
        holder = self._lock.holder()
        return {
            "library": str(self.path),
            "model": self.model,
            "dim": int(meta["dim"]) if meta.get("dim") else None,
            "images": counts["images"],
            "photos": counts["photos"],
            "generated": counts["generated"],
            "failures": counts["failures"],
            "vectors": counts["vectors"],
            "index": {
                "kind": index.kind if index else None,
                "vectors": index.ntotal if index else 0,
                "nprobe": index.nprobe if index else None,
                "file": files[-1].name if files else None,
            },
            "roots": [{"path": p, "last_indexed_at": t} for p, t in self.store.roots()],
            "size_bytes": _folder_size(self.path),
            "created_at": float(meta["created_at"]) if meta.get("created_at") else None,
            "writer": holder or None,
            "daemon": _daemon_status(self.path, holder),
            "vocabulary": _vocabulary_status(meta),
        }

    def failures(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Files that could not be indexed, with reasons."""
        return [
            {"path": f.path, "reason": f.reason, "failed_at": f.failed_at}
            for f in self.store.failures(limit)
        ]

    # --- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        self._lock.release()
        self.store.engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Library({str(self.path)!r}, model={self.model!r})"


class _Stale(Exception):
    """The index file is older than the pruned log: rebuild."""


def _check_new_library_dir(folder: Path, create: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise LibraryError(f"{folder} is a file, not a library folder")
    if not create:
        raise LibraryError(
            f"no library at {folder} yet",
            hint=f"Index some photos first: clipsearch --library {folder} index ~/Pictures",
        )
    if folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir()):
        raise LibraryError(
            f"{folder} is not a clipsearch library (no {DB_NAME}) and is not empty",
            hint="Choose a new or empty folder for the library (it is not the photo folder).",
        )


def _vocabulary_status(meta: dict[str, str]) -> dict[str, Any] | None:
    raw = meta.get("tag_vocabulary")
    if not raw:
        return None
    v = json.loads(raw)
    return {"name": v.get("name"), "labels": len(v.get("labels", [])),
            "min_score": v.get("min_score")}  # fmt: skip


def _daemon_status(folder: Path, holder: dict) -> dict[str, Any] | None:
    from clipsearch.daemon import daemon_status

    return daemon_status(folder, holder)


def _folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total
