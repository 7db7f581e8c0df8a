"""The vector index cache: the one owner of the FAISS file, its log position and its replay.

SQLite is the source of truth, vectors included; the FAISS index is a cache of it. Every
change to a vector is appended to `vector_log` in the transaction that makes it, and the
index file is named after the last log entry it contains (`vectors-<seq>.faiss`). So:

- **opening**: load the newest readable file, replay newer log entries (idempotent), and
  rebuild from the vectors table when the file is missing, damaged, of another size, or
  disagrees with the store after replay;
- **committing** (:meth:`VectorCache.apply`, :meth:`VectorCache.move`): the store
  transaction and the in-memory index change together, while searches in this process wait;
- **saving**: only the process holding the library's lock writes the file and prunes the log
  (all but the newest LOG_KEPT entries: a long-lived reader a little behind replays them
  instead of reading the whole new file). The writer saves at its checkpoints; a process that
  on opening had to rebuild, or to replay SAVE_AFTER_REPLAY entries or more, saves when nobody
  writes (taking the lock for it), so the next process does not replay them again. A
  long-lived reader (`serve`) following commits never saves on its search path.

Nobody else touches the index's `seq`, the files or the log pruning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from clipsearch.errors import LibraryError
from clipsearch.store.faiss_index import (
    APPROX_THRESHOLD,
    VectorIndex,
    build_ivf,
    index_files,
    nlist_for,
    steady_memory,
)
from clipsearch.store.lock import WriterLock
from clipsearch.store.store import Changes, Store, as_stored

log = logging.getLogger(__name__)
notice = logging.getLogger("clipsearch.notice")

INDEX_FACTS = "index_file_facts"  # meta: what the last saved index file holds
GROWTH_META = "index_growth"  # meta: the size at which an approximate index was last tried
HEADROOM = 0.1  # of each IVF list, made when a long-lived process loads the index
LOG_KEPT = 100_000  # log entries kept behind the newest index file (a few MB)
SAVE_AFTER_REPLAY = 2_000  # log entries replayed on opening that are worth a save
FOLLOW_EVERY = 0.2  # seconds between a server's looks for other processes' commits


class _Stale(Exception):
    """The index file is older than the pruned log: load a newer one or rebuild."""


class VectorCache:
    """The library's FAISS index, kept in step with the store (thread-safe)."""

    def __init__(self, folder: Path, store: Store, lock: WriterLock) -> None:
        self.folder = folder
        self.store = store
        self._lock = lock
        self._index: VectorIndex | None = None
        self._seen_version: int | None = None  # the store's data_version at the last look
        # Catching up mutates the index: searches in other threads wait for that.
        self._mutex = threading.RLock()
        self._saved_seq = -1  # the log position of the file on disk, as far as we know
        self._headroom = 0.0  # room made in a loaded IVF index for growth (long-lived only)
        self._follower: threading.Thread | None = None
        self._stop = threading.Event()

    def long_lived(self, *, follow: bool = False) -> None:
        """This process stays up and follows commits (`serve`, `watch`): make room in the
        index for growth when it is loaded, and return freed memory to the system, so the
        first search after a commit does not stall and memory stays near the index's size.

        `follow` (a server): a background thread looks for other processes' commits every
        FOLLOW_EVERY seconds and replays them into the loaded index, so a search seldom
        finds the replay still to do (at a million pictures a commit of 2,000 costs ~30 ms
        of replay, which the first search after it would otherwise wait for)."""
        self._headroom = HEADROOM
        steady_memory()
        with self._mutex:
            if self._index is not None:
                self._index.reserve(self._headroom)  # in memory now, with room to grow
        if follow and self._follower is None:
            self._stop.clear()
            self._follower = threading.Thread(
                target=self._follow, name="clipsearch-follow", daemon=True
            )
            self._follower.start()

    def stop_following(self) -> None:
        """End the follower thread (before the store closes)."""
        self._stop.set()
        follower, self._follower = self._follower, None
        if follower is not None and follower is not threading.current_thread():
            follower.join(timeout=10)

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_EVERY):
            if self._index is None:
                continue  # not loaded yet: the first search loads it
            try:
                with self._mutex:
                    if not self._stop.is_set() and self._index is not None:
                        self._current()
            except Exception as exc:  # the next search catches up (and reports) itself
                log.debug("following commits: %s", exc)

    @property
    def dim(self) -> int | None:
        return self.store.dim()

    # --- reading ------------------------------------------------------------------------
    def index(self) -> VectorIndex:
        """The index, loaded, caught up with the store (and repaired if needed).

        With no vectors yet (no vector size recorded) an empty stand-in, not cached.
        """
        with self._mutex:
            return self._current()

    @contextlib.contextmanager
    def reading(self) -> Iterator[VectorIndex]:
        """The caught-up index, held steady (no updates from this process) while in use."""
        with self._mutex:
            yield self._current()

    def describe(self) -> dict:
        """What `status` shows about the index: kind, vectors, nprobe, file.

        From the facts the last save recorded with the file when it holds every committed
        change (reading a 2 GB index just to count it would take seconds); otherwise from the
        index itself, loaded and caught up: what a search would see.
        """
        files = index_files(self.folder)
        name = files[-1].name if files else None
        facts = json.loads(self.store.get_meta(INDEX_FACTS) or "{}")
        unsaved = self.unsaved_changes()
        if self._index is not None or unsaved or self.dim is None or facts.get("file") != name:
            index = self.index() if self.dim is not None else None
            files = index_files(self.folder)  # a rebuild on loading saves a file
            name = files[-1].name if files else None
            return {
                "kind": index.kind if index else None,
                "vectors": index.ntotal if index else 0,
                "nprobe": index.nprobe if index else None,
                "file": name,
                "compressed": bool(index and index.compressed),
                "codes": index.codes if index else None,
                "unsaved_changes": unsaved,
            }
        facts.pop("seq", None)
        return {**facts, "unsaved_changes": 0}

    def unsaved_changes(self) -> int:
        """Vector changes committed since the index file was last written."""
        pruned = int(self.store.get_meta("log_pruned_upto", "0") or 0)
        saved = json.loads(self.store.get_meta(INDEX_FACTS) or "{}").get("seq", 0)
        return max(0, self.store.max_seq() - max(pruned, self._saved_seq, int(saved)))

    # --- committing -------------------------------------------------------------------------
    def apply(self, changes: Changes, *, mirror: bool = True) -> list[int]:
        """Commit `changes` to the store and mirror them in the index, as one step for searches
        in this process. Returns the ids given a (new) vector.

        `mirror=False` (a bulk load that ends with `rebuild` or `adopt`): the store only; the
        index in memory is dropped, and would be reloaded and caught up if used."""
        if not mirror:
            with self._mutex:
                self._index = None
                new_ids, _ = self.store.apply(changes)
                return new_ids + [i for i, n in changes.replaces if n.vector is not None]
        with self._mutex:
            index = self._current_or_none()  # before the commit: catching up must not replay it
            new_ids, last_seq = self.store.apply(changes)
            add_ids = new_ids + [i for i, n in changes.replaces if n.vector is not None]
            if index is None:
                return add_ids
            index.remove([i for i, _ in changes.replaces] + changes.removes)
            add_vecs = [n.vector for n in changes.inserts] + [
                n.vector for _, n in changes.replaces if n.vector is not None
            ]
            if add_ids:  # as the store keeps them, so a rebuilt index is the same index
                index.add(np.asarray(add_ids, np.int64), as_stored(np.stack(add_vecs)))
            if last_seq is not None:
                index.seq = last_seq
            return add_ids

    def move(self, src: str, dst: str) -> int:
        """Rename a file or folder's images in the store (ids and vectors stay); an image
        recorded at a destination path is replaced. Returns the images moved."""
        with self._mutex:
            index = self._current_or_none()
            moved, removed, last_seq = self.store.move_paths(src, dst)
            if index is not None:
                index.remove(removed)
                if last_seq is not None:
                    index.seq = last_seq
            return moved

    def reset(self, meta: dict[str, str]) -> None:
        """Drop every vector and record `meta` (a new model), then start an empty index file.

        The caller holds the writer lock.
        """
        with self._mutex:
            self.store.clear_vectors(meta)
            for f in index_files(self.folder):
                f.unlink()
            self._index = None
            self._current_or_none()  # an empty index, saved (rebuilt indexes are)

    # --- saving -----------------------------------------------------------------------------
    def save(self) -> None:
        """Write the index file if this process's index holds entries the file lacks.

        A writer's checkpoint: afterwards readers replay nothing. Takes the writer lock if
        this process does not hold it. The index is caught up first, so the file never
        claims log entries it does not contain; an index this process never loaded was not
        changed by it and is left alone.
        """
        if self._index is None or self.dim is None:
            return
        with self._lock.holding("clipsearch (saving the index)"):
            with self._mutex:
                index = self._current()  # with the writer lock nobody else writes
                if index.seq > self._saved_seq:
                    self._save(index)
            self._follow_growth(index)

    def _follow_growth(self, index: VectorIndex) -> None:
        """The index follows the library (writer, at a checkpoint): a library that has grown
        past APPROX_THRESHOLD gets an approximate index, trained again each time it doubles.
        Built beside the current index (searches here go on meanwhile), then swapped in.
        An IVF of float16 codes (written before the library's IVF kept 8-bit codes, or
        adopted from `spark index`) is rebuilt with 8-bit codes once: half the disk and memory."""
        dim = self.dim
        state = json.loads(self.store.get_meta(GROWTH_META) or "{}")
        checked = int(state.get("checked_at", 0))
        wide = index.codes == "float16"
        if dim is None or index.ntotal < APPROX_THRESHOLD:
            return
        if index.ntotal < 2 * checked and not wide:
            return
        if index.codes == "pq":  # adopted for its small memory (spark index --max-memory):
            return  # an 8-bit rebuild could need what the machine does not have
        built = self._build(dim, approximate=True)
        with self._mutex:
            try:
                self._catch_up(built)
            except _Stale:
                return  # cannot happen under the writer lock; try at the next checkpoint
            if built.kind != "flat" or index.kind != "flat":
                self._index = built
                self._save(built)
                built.reserve(self._headroom)

    def rebuild(self) -> None:
        """Build the index from the store (streamed: the index and one chunk in memory) and
        save it: after a bulk load, instead of mirroring every commit. Holds the lock."""
        dim = self.dim
        if dim is None:
            return
        with self._lock.holding("clipsearch (building the index)"), self._mutex:
            self._index = None
            self._index = self._rebuild(dim)
            self._index.reserve(self._headroom)

    def adopt(self, index: VectorIndex) -> None:
        """Make `index` (built elsewhere, keyed by this library's image ids, holding every
        vector the store has) the library's index, and save it. The caller holds the lock."""
        with self._mutex:
            have = self.store.vector_count()
            if index.ntotal != have:
                raise LibraryError(f"the index holds {index.ntotal} vectors, the library {have}")
            index.seq = self.store.max_seq()
            self._index = index
            self._seen_version = None
            self._save(index)
            self.store.set_meta(
                {GROWTH_META: json.dumps({"checked_at": index.ntotal, "kind": index.kind})}
            )

    def discard_temp_files(self) -> None:
        """Remove temporary files of a writer killed mid-save. The caller holds the lock."""
        for tmp in self.folder.glob(".vectors-*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    # --- the cache itself ---------------------------------------------------------------------
    def _saved_kind(self) -> str | None:
        """The kind of the newest index file, as its writer recorded it."""
        return json.loads(self.store.get_meta(INDEX_FACTS) or "{}").get("kind")

    def _store_changed(self) -> bool:
        """Whether the database changed since the last look (microseconds, against the
        queries of a catch-up on every search)."""
        version = self.store.data_version()
        changed = version is None or version != self._seen_version
        self._seen_version = version
        return changed

    def _current_or_none(self) -> VectorIndex | None:
        return self._current() if self.dim is not None else None

    def current_dim(self) -> int | None:
        """The vector size of the caught-up index (None: no vectors yet)."""
        with self._mutex:
            index = self._current()
            return None if self._index is None else index.dim

    def _current(self) -> VectorIndex:
        if self._index is not None and not self._store_changed():
            return self._index  # nobody committed since the last look: nothing to replay
        dim = self.dim
        if dim is None:
            self._index = None
            return VectorIndex.empty(1)
        saved_kind = self._saved_kind()
        if self._index is not None and saved_kind and self._index.kind != saved_kind:
            self._index = None  # the writer made an approximate index: load it
        if self._index is not None and self._index.dim == dim:
            try:
                self._catch_up(self._index)
                return self._index
            except _Stale:
                pass
        self._index = None
        self._index = self._load(dim)
        self._index.reserve(self._headroom)
        return self._index

    def _load(self, dim: int) -> VectorIndex:
        for _ in range(3):
            # A one-off process maps an IVF file rather than reading it; a long-lived one
            # reads it (it will change it, with room to grow).
            index = VectorIndex.load_latest(self.folder, mapped=not self._headroom)
            if index is None or index.dim != dim:
                break
            self._saved_seq = index.seq
            try:
                replayed = self._catch_up(index)
                if index.ntotal != self.store.vector_count():
                    replayed += self._catch_up(index)  # a writer may have committed meanwhile
            except _Stale:
                continue  # a writer saved a newer file and pruned the log: load that one
            if index.ntotal == self.store.vector_count():
                if replayed >= SAVE_AFTER_REPLAY:  # so the next process does not replay them
                    self._save_when_free(index)
                return index
            log.warning(
                "index file disagrees with the database (%d vs %d vectors); rebuilding",
                index.ntotal,
                self.store.vector_count(),
            )
            break
        return self._rebuild(dim)

    def _rebuild(self, dim: int) -> VectorIndex:
        while True:
            index = self._build(dim, approximate=None)
            try:
                self._catch_up(index)  # entries committed while we read replay idempotently
            except _Stale:
                continue
            self._save_when_free(index)
            return index

    def _build(self, dim: int, *, approximate: bool | None) -> VectorIndex:
        """A new index from the store's vectors, streamed in chunks (memory: the index and a
        chunk). Approximate at APPROX_THRESHOLD vectors and more (unless told), when the
        data has structure an IVF can use; its `seq` is the log position it reflects."""
        seq = self.store.max_seq()
        n = self.store.vector_count()
        if approximate is None:
            approximate = n >= APPROX_THRESHOLD
        index: VectorIndex | None = None
        if approximate and n >= 1_000:
            notice.info("building the approximate index of %d vectors ...", n)
            ids = self.store.vector_ids()
            rng = np.random.default_rng(1234)
            pick = np.sort(rng.choice(ids, size=min(n, 40 * nlist_for(n)), replace=False))
            sample = self.store.get_vectors(pick, dim)
            index = build_ivf(
                dim,
                n,
                sample,
                lambda: self.store.iter_vectors(dim),
                vectors_of=lambda ids: self._stored(ids, dim),
            )
            self.store.set_meta(
                {
                    GROWTH_META: json.dumps(
                        {"checked_at": n, "kind": index.kind if index else "flat"}
                    )
                }
            )
        if index is None:
            index = VectorIndex.empty(dim)
            for ids, vecs in self.store.iter_vectors(dim):
                index.add(ids, vecs)
        index.seq = seq
        return index

    def _stored(self, ids: np.ndarray, dim: int) -> np.ndarray:
        """The stored vectors of `ids`, in that order (every one must have a vector)."""
        got, vecs = self.store.get_vectors(ids, dim)
        order = np.argsort(got)
        return vecs[order[np.searchsorted(got, ids, sorter=order)]]

    def _catch_up(self, index: VectorIndex) -> int:
        """Replay vector-log entries newer than the index (idempotent); returns how many."""
        pruned = int(self.store.get_meta("log_pruned_upto", "0") or 0)
        if index.seq < pruned:  # entries it needs were pruned after a newer file was saved
            raise _Stale()
        entries, ids, vecs = self.store.changes_since(index.seq, index.dim)
        if not entries:
            return 0
        index.remove(list({image_id for _, image_id, _ in entries}))
        index.add(ids, vecs)
        index.seq = entries[-1][0]
        return len(entries)

    def _save_when_free(self, index: VectorIndex) -> None:
        """A rebuilt index, or one that replayed many log entries, is saved: by the writer,
        or by a reader when nobody writes (else the writer's next checkpoint saves it)."""
        if self._lock.held:
            self._save(index)
            return
        try:
            self._lock.acquire("clipsearch (saving the index)")
        except LibraryError:
            return  # somebody writes: they will save
        try:
            self._save(index)
        finally:
            self._lock.release()

    def _save(self, index: VectorIndex) -> None:
        self.discard_temp_files()
        path = index.save(self.folder, index.seq)
        self._saved_seq = index.seq
        facts = {
            "kind": index.kind,
            "vectors": index.ntotal,
            "nprobe": index.nprobe,
            "file": path.name,
            "compressed": index.compressed,
            "codes": index.codes,
        }
        # The newest LOG_KEPT entries stay: a long-lived reader (`serve`) a little behind
        # replays them instead of reading the whole new file.
        meta = {INDEX_FACTS: json.dumps(facts | {"seq": index.seq})}
        self.store.prune_log(max(0, index.seq - LOG_KEPT), meta=meta)
