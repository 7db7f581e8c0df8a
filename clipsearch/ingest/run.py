"""Indexing: scan -> diff against the store -> read/hash/decode -> encode -> commit -> index.

Stages (clip-retrieval style: reader / mapper / writer):

1. **scan** the roots; compare size + mtime with the store. Unchanged files are not read.
2. **prepare** (decode threads): read each new or changed file once, hash it, and look the hash
   up. A known hash needs no model: the file moved (its old path is gone: keep the row and
   vector, change the path), was copied (reuse the vector) or was only touched. Otherwise
   decode and resize for the model. Decoding runs while the model encodes the previous batch.
3. **encode** batches with the model; **commit** rows + vectors + failures in one transaction
   per batch, then update the in-memory index. A kill loses at most the batch in flight.
4. **remove** rows whose files are gone from the scanned roots.

A file that cannot be read is recorded with its reason and skipped; the run goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from clipsearch.errors import UnreadableImage
from clipsearch.ingest import reading
from clipsearch.ingest.reading import facts_row
from clipsearch.ingest.roots import NO_PICTURES, OfflineRoot, RootStates
from clipsearch.ingest.roots import check as check_roots
from clipsearch.media import fs, phash
from clipsearch.media.images import (
    ImageInfo,
    PreprocessParams,
    content_hash,
    open_image,
    prepare,
    read_file,
)
from clipsearch.model.encoder import Encoder
from clipsearch.store import folders
from clipsearch.store.facts import lacking_facts, lacking_ocr
from clipsearch.store.features import get_hashes
from clipsearch.store.store import Changes, FailureRow, ImageRow, NewImage, Store
from clipsearch.store.vector_cache import VectorCache


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str


@dataclass
class IngestSummary:
    """What an index run did. `to_dict()` is the stable `--json` shape."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    failures: list[FailedFile] = field(default_factory=list)
    interrupted: bool = False
    offline: list[OfflineRoot] = field(default_factory=list)  # roots kept, not scanned
    seconds: float = 0.0
    embedded: int = 0  # images that went through the model
    facts_read: int = 0  # images read for camera, GPS and place apart from the model
    texts_read: int = 0  # images OCR read (libraries with --ocr)
    ocr_skipped: str | None = None  # why OCR did not run although the library asks for it
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, other: IngestSummary) -> None:
        """Add another run's counts and failures to this one (e.g. a second pass)."""
        self.added += other.added
        self.updated += other.updated
        self.moved += other.moved
        self.removed += other.removed
        self.unchanged += other.unchanged
        self.failed += other.failed
        self.embedded += other.embedded
        self.facts_read += other.facts_read
        self.texts_read += other.texts_read
        self.ocr_skipped = self.ocr_skipped or other.ocr_skipped
        self.failures += other.failures
        self.offline += other.offline
        self.interrupted = self.interrupted or other.interrupted

    def to_dict(self) -> dict:
        out = asdict(self)
        out["failures"] = [asdict(f) for f in self.failures]
        out["seconds"] = round(self.seconds, 3)
        out["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return out


@dataclass(frozen=True)
class Progress:
    """A progress report: `phase` is 'scan', 'embed', 'remove', 'facts' or 'ocr'."""

    phase: str
    done: int
    total: int | None


ProgressFn = Callable[[Progress], None]


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM until the block ends, so a commit and its bookkeeping (the
    in-memory index, the summary) happen together or not at all. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:  # deliver it now, to whatever handler was in place
            signal.raise_signal(caught[0])


def _stat(path: str) -> fs.FileStat | None:
    """The file at `path` as a scan would see it (None: gone, or not a regular file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return fs.FileStat(path, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


# --- stage 2: prepare (runs in decode threads) -------------------------------------------


@dataclass
class _Job:
    kind: str  # new | changed | pending
    stat: fs.FileStat
    row: ImageRow | None


@dataclass
class _Prepared:
    job: _Job
    hash: str | None = None
    pixels: np.ndarray | None = None
    info: ImageInfo | None = None
    matches: list[ImageRow] = field(default_factory=list)  # rows with this content + vector
    hashes: tuple[int, int, int, int] | None = None  # perceptual hashes (phash.compute)
    facts: dict | None = None  # camera, GPS, place (photo_facts columns); None: not read
    error: str | None = None
    vanished: bool = False


def _prepare(job: _Job, params: PreprocessParams, store: Store) -> _Prepared:
    out = _Prepared(job)
    try:
        data = read_file(job.stat.path)
    except UnreadableImage as exc:
        out.error, out.vanished = exc.reason, exc.reason == "file not found"
        return out
    out.hash = content_hash(data)
    if job.row is not None and job.kind == "changed" and job.row.content_hash == out.hash:
        return out  # touched, content unchanged
    if job.kind != "pending":
        out.matches = [r for r in store.rows_by_hash([out.hash]).get(out.hash, []) if r.has_vector]
        if out.matches:
            return out
    try:
        img, out.info = open_image(data, draft_size=min(params.size), name=job.stat.path)
        out.pixels = prepare(img, params)
        out.hashes = phash.compute(img).as_tuple()  # from the same decode
        facts = out.info.facts  # None: the picture's EXIF says nothing (it was read)
        out.facts = facts_row(facts) if facts is not None else {}
    except UnreadableImage as exc:
        out.error = exc.reason
    return out


# --- the run ------------------------------------------------------------------------------


def _lower_priority(levels: int) -> None:
    """Run this decode thread `levels` nice levels below the model's threads (Linux).

    The encoder says how many (`decode_priority`). torch's threads stall when a decode thread
    takes one of few cores, so decoding yields to them (+10: measured 0.78x -> 0.90x of the
    batched forward on 2 cores). ONNX Runtime loses nothing to decoding at equal priority and
    int8 needs the decoding done faster (measured 1.15-1.30x images/s at 0 against +10), so its
    encoder asks for 0. Best effort.
    """
    if levels <= 0:
        return
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + levels)


def _warm(encoder: Encoder) -> threading.Thread | None:
    """Load the encoder's image tower in a thread (errors surface at the first encode)."""
    warm = getattr(encoder, "warm_images", None)
    if warm is None:
        return None

    def run() -> None:
        with contextlib.suppress(Exception):
            warm()

    thread = threading.Thread(target=run, name="clipsearch-model-load", daemon=True)
    thread.start()
    return thread


class IngestRun:
    """One `index` run over some roots. Not reusable."""

    def __init__(
        self,
        store: Store,
        vectors: VectorCache,
        encoder: Callable[[], Encoder],
        *,
        exclude: Iterable[str] = (),
        workers: int | None = None,
        batch_size: int = 32,
        progress: ProgressFn | None = None,
        source: str = "photos",
        defer_failure: Callable[[str, str], bool] | None = None,
        accept_device: bool = False,
        ocr: str | None = None,
        quick: bool = False,
    ) -> None:
        self.store = store
        # Skip folders whose modification time has not moved since the last complete walk
        # (`index --quick`); every run records the times it saw when it completes.
        self.quick = quick
        self.folder_log = fs.FolderLog()
        self._deferred = 0  # failures left to the caller to retry: the walk is not complete
        self.ocr = ocr  # Tesseract's language(s) when the library reads text in pictures
        self.accept_device = accept_device  # trust roots that moved to another device
        self.root_states = RootStates({}, {})
        # Called with (path, reason) for a file that cannot be read; True leaves it unrecorded
        # (the caller retries it later: the watch daemon gives a settling file a second try).
        self.defer_failure = defer_failure
        self.vectors = vectors  # commits go through it: the store and the index in step
        self._encoder_provider = encoder  # called on first file that needs the model
        self.exclude = list(exclude)
        self.workers = workers if workers is not None else min(4, os.cpu_count() or 1)
        self.batch_size = batch_size
        self.progress = progress or (lambda p: None)
        self.source = source
        self.summary = IngestSummary()
        self._changes = Changes()
        self._batch: list[_Prepared] = []
        self._moved_ids: set[int] = set()
        self._missing: dict[str, ImageRow] = {}
        # Contents embedded by this run (Python hashes of their digests: ~60 bytes each, not
        # the 2 KB vector): a second file with the same content takes the committed vector.
        self._run_hashes: set[int] = set()
        self.vector_ids: list[int] = []  # images given a (new) vector by this run, committed
        # Counted into the summary only once committed: an interrupted commit did nothing.
        self._uncommitted = dict.fromkeys(("added", "updated", "moved", "unchanged", "failed"), 0)
        self._uncommitted_failures: list[FailedFile] = []
        self._t = dict.fromkeys(("scan", "wait", "encode", "commit", "remove"), 0.0)
        self._warming: threading.Thread | None = None
        # Encoded batches not yet stored: (future vectors, their items), oldest first. The
        # encoder may run several batches side by side (`batch_streams`); commits stay in order.
        self._inflight: deque[tuple[Future[np.ndarray], list[_Prepared]]] = deque()
        self._encode_pool: ThreadPoolExecutor | None = None
        self._streams = 1

    @property
    def encoder(self) -> Encoder:
        return self._encoder_provider()

    def run(self, roots: list[str]) -> IngestSummary:
        start = time.perf_counter()
        try:
            # Roots on an unmounted drive are kept as they are, never scanned or emptied.
            self.root_states = check_roots(self.store, roots, accept_device=self.accept_device)
            roots = [r for r in roots if self.root_states.offline_root_of(r) is None]
            if not roots:  # nothing online to scan
                self.summary.offline = list(self.root_states.offline.values())
                return self._finish(start)
            jobs, gone_failures = self._scan_and_diff(roots)
            self.summary.offline = list(self.root_states.offline.values())
            self._embed(jobs, roots)
            if not self.summary.interrupted:
                self._remove_missing(gone_failures)
            if not self.summary.interrupted and not self._deferred:
                # Every file under every folder seen is now in the library as it is on disk.
                folders.record_folders(self.store, roots, self.folder_log.seen)
            if not self.summary.interrupted:
                self._read_extras()
        except KeyboardInterrupt:
            self.summary.interrupted = True
        return self._finish(start)

    def _finish(self, start: float) -> IngestSummary:
        self.summary.seconds = time.perf_counter() - start
        self.summary.timings = dict(self._t)
        return self.summary

    # 1. scan + diff
    def _scan_and_diff(self, roots: list[str]) -> tuple[list[_Job], list[str]]:
        t0 = time.perf_counter()
        on_disk: dict[str, fs.FileStat] = {}
        unreadable: dict[str, tuple[fs.FileStat, str]] = {}  # files the scan could not stat

        def scan_error(path: str, reason: str) -> None:
            try:
                st = os.lstat(path)
            except OSError:
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):  # a file (a broken link, say)
                unreadable[path] = (fs.FileStat(path, st.st_size, st.st_mtime_ns), reason)
                return
            self.summary.failures.append(FailedFile(path, reason))  # a folder: not recorded
            self.summary.failed += 1

        exclude = [*self.exclude, *self.root_states.offline]
        known = folders.recorded_folders(self.store, roots) if self.quick else None
        log = self.folder_log = fs.FolderLog(known=known)
        for st in fs.scan(roots, exclude=exclude, on_error=scan_error, folders=log):
            on_disk[st.path] = st
            if len(on_disk) % 1000 == 0:
                self.progress(Progress("scan", len(on_disk), None))
        self.progress(Progress("scan", len(on_disk), len(on_disk)))
        # What the library has where the walk looked (a quick walk: the folders it listed,
        # and folders that are gone), as plain (size, mtime) pairs; whole rows are read only
        # for the files that changed or went missing.
        if log.skipped:
            states = folders.file_states_outside(self.store, roots, log.skipped)
        else:
            states = folders.file_states_under(self.store, roots)
        no_vector = folders.paths_without_vectors(self.store, roots)
        known_failures = self.store.failures_under(roots)
        if log.skipped:  # images still waiting for a vector in folders not listed
            for path in no_vector:
                if path not in states and path not in on_disk and (st := _stat(path)):
                    on_disk[path] = st
                    states[path] = (-1, -1)  # compared as changed below; the row decides
        changed: list[fs.FileStat] = []
        new: list[fs.FileStat] = []
        for path, st in on_disk.items():
            state = states.get(path)
            if state is not None:
                if state == (st.size, st.mtime_ns) and path not in no_vector:
                    self.summary.unchanged += 1
                else:
                    changed.append(st)
                continue
            failure = known_failures.get(path)
            if failure and failure.size == st.size and failure.mtime_ns == st.mtime_ns:
                self.summary.failed += 1  # known bad, unchanged: not re-read
                self.summary.failures.append(FailedFile(path, failure.reason))
                continue
            new.append(st)
        skipped = set(log.skipped)
        if skipped:  # the pictures of unchanged folders, not looked at one by one
            self.summary.unchanged += self.store.count_under(roots) - len(states)
            for path, failure in known_failures.items():  # still failing, as recorded
                if path not in on_disk and os.path.dirname(path) in skipped:
                    self.summary.failed += 1
                    self.summary.failures.append(FailedFile(path, failure.reason))
        self._find_emptied_roots(roots, on_disk, log.skipped)
        missing = [
            p
            for p in states
            if p not in on_disk
            and p not in unreadable
            and not self._excluded(p, roots)
            and self.root_states.offline_root_of(p) is None
        ]
        rows = self.store.rows_at([*(st.path for st in changed), *missing, *unreadable])
        jobs: list[_Job] = []
        for st in changed:
            row = rows.get(st.path)
            if row is None:  # gone from the library meanwhile
                jobs.append(_Job("new", st, None))
            elif row.size == st.size and row.mtime_ns == st.mtime_ns:
                jobs.append(_Job("pending", st, row))
            else:
                jobs.append(_Job("changed", st, row))
        jobs += [_Job("new", st, None) for st in new]
        for path, (st, reason) in unreadable.items():
            failure = known_failures.get(path)
            if failure and failure.size == st.size and failure.mtime_ns == st.mtime_ns:
                self.summary.failed += 1
                self.summary.failures.append(FailedFile(path, failure.reason))
            else:
                self._fail(_Job("changed", st, rows.get(path)), reason)
        # Rows inside an excluded folder (the library's generated/ pictures) were not scanned,
        # and rows of an offline root are kept: neither is missing.
        self._missing = {p: rows[p] for p in missing if p in rows}
        offline = self.root_states.offline_root_of
        gone_failures = [
            p
            for p in known_failures
            if p not in on_disk
            and p not in unreadable
            and offline(p) is None
            and os.path.dirname(p) not in skipped
        ]
        self._t["scan"] += time.perf_counter() - t0
        return jobs, gone_failures

    def _find_emptied_roots(
        self, roots: list[str], on_disk: dict[str, fs.FileStat], unchanged: list[str]
    ) -> None:
        """A registered root scanned whole that held pictures but has none now is offline
        (one with a folder a quick walk found unchanged is not empty)."""
        for root in list(self.root_states.online):
            if not any(fs.is_under(root, r) for r in roots):
                continue  # only part of it was scanned (the watch daemon's small runs)
            if any(fs.is_under(p, root) for p in on_disk):
                continue
            if any(fs.is_under(f, root) for f in unchanged):
                continue
            images = self.store.count_under([root])
            if images:
                del self.root_states.online[root]
                self.root_states.offline[root] = OfflineRoot(root, NO_PICTURES, images)

    def _excluded(self, path: str, roots: list[str]) -> bool:
        """Whether the scan skipped `path` because of `exclude` (mirrors fs.scan)."""
        mine = [r for r in roots if fs.is_under(path, r)]
        return any(
            fs.is_under(path, e) and not any(fs.is_under(r, e) for r in mine)
            for e in map(fs.normalize_root, self.exclude)
        )

    # 2 + 3. prepare in threads, encode + commit in this thread
    def _embed(self, jobs: list[_Job], roots: list[str]) -> None:
        if not jobs:
            self._flush()  # failures the scan found
            return
        params = self.encoder.params  # finds the model's files (no session yet)
        total = len(jobs)
        self.progress(Progress("embed", 0, total))
        # The image tower loads (~0.3-1 s) in a thread while the first pictures decode; until
        # it is ready, decoding runs further ahead (the decoded pictures wait, ~150 KB each).
        self._warming = _warm(self.encoder)
        self._streams = max(1, int(getattr(self.encoder, "batch_streams", 1)))
        self._encode_pool = ThreadPoolExecutor(
            self._streams, thread_name_prefix="clipsearch-encode"
        )
        warm_window = 8 * self.batch_size
        window = max(2 * self.batch_size, 4 * max(1, self.workers))
        pending: deque[Future[_Prepared]] = deque()
        done = 0
        pool = ThreadPoolExecutor(
            max(1, self.workers),
            thread_name_prefix="clipsearch-decode",
            initializer=_lower_priority,
            initargs=(int(getattr(self.encoder, "decode_priority", 0)),),
        )
        it = iter(jobs)
        try:
            for job in it:
                pending.append(pool.submit(_prepare, job, params, self.store))
                warming = self._warming is not None and self._warming.is_alive()
                if len(pending) >= (warm_window if warming else window):
                    done += self._consume(pending.popleft(), roots)
                    if done % 8 == 0:
                        self.progress(Progress("embed", done, total))
            while pending:
                done += self._consume(pending.popleft(), roots)
                if done % 8 == 0:
                    self.progress(Progress("embed", done, total))
            self._flush(drain=True)
            self.progress(Progress("embed", done, total))
        except KeyboardInterrupt:
            self.summary.interrupted = True
            for fut in pending:
                fut.cancel()
            # What was prepared or encoded but not committed is simply redone by the next run.
            self._inflight.clear()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._encode_pool.shutdown(wait=True, cancel_futures=True)
            self._encode_pool = None

    def _consume(self, fut: Future[_Prepared], roots: list[str]) -> int:
        t0 = time.perf_counter()
        item = fut.result()
        self._t["wait"] += time.perf_counter() - t0
        job, st = item.job, item.job.stat
        ch = self._changes
        if item.error is not None:
            if not item.vanished:
                self._fail(job, item.error)
        elif item.pixels is None and item.matches:
            self._reuse(item, roots)
        elif item.pixels is None:  # touched: same content, new mtime
            assert job.row is not None
            ch.touches.append((job.row.id, st.size, st.mtime_ns))
            self._uncommitted["unchanged"] += 1
        elif (vector := self._embedded_by_this_run(item.hash)) is not None:
            self._store_vector(item, vector)  # same content as a file embedded this run
        else:
            self._batch.append(item)
        if len(self._batch) >= self.batch_size or self._pending_small_changes() >= 256:
            self._flush()
        return 1

    def _embedded_by_this_run(self, digest: str | None) -> np.ndarray | None:
        """The vector of a file with this content embedded (and committed) by this run."""
        if digest is None or hash(digest) not in self._run_hashes:
            return None
        rows = [r for r in self.store.rows_by_hash([digest]).get(digest, []) if r.has_vector]
        if not rows:
            return None
        _, vectors = self.store.get_vectors([rows[0].id], self.encoder.dim)
        return vectors[0] if len(vectors) else None

    def _pending_small_changes(self) -> int:
        ch = self._changes
        return len(ch.moves) + len(ch.touches) + len(ch.failures) + len(ch.inserts)

    def _fail(self, job: _Job, reason: str) -> None:
        st = job.stat
        if self.defer_failure is not None and self.defer_failure(st.path, reason):
            self._deferred += 1
            return
        self._changes.failures.append(
            FailureRow(st.path, st.size, st.mtime_ns, reason, time.time())
        )
        if job.row is not None:  # an indexed file that became unreadable leaves the index
            self._changes.removes.append(job.row.id)
        self._uncommitted["failed"] += 1
        self._uncommitted_failures.append(FailedFile(st.path, reason))

    def _reuse(self, item: _Prepared, roots: list[str]) -> None:
        """A file whose content the library already has: a move, or a copy."""
        job, st = item.job, item.job.stat
        if job.kind == "new":
            for row in item.matches:
                if row.id in self._moved_ids:
                    continue
                gone = row.path in self._missing or (
                    not any(fs.is_under(row.path, r) for r in roots)
                    and not os.path.exists(row.path)
                )
                if gone:
                    self._missing.pop(row.path, None)
                    self._moved_ids.add(row.id)
                    self._changes.moves.append((row.id, st.path, st.size, st.mtime_ns))
                    self._changes.cleared_failures.append(st.path)
                    self._uncommitted["moved"] += 1
                    return
        source = item.matches[0]
        _, vectors = self.store.get_vectors([source.id], self.encoder.dim)
        if len(vectors) == 0:  # the source lost its vector meanwhile: embed normally
            self._fail(job, "content changed while indexing; run again")
            return
        info = ImageInfo(
            source.width or 0, source.height or 0, source.format or "", source.taken_at
        )
        item.info = info
        item.hashes = get_hashes(self.store, [source.id]).get(source.id)
        self._store_vector(item, vectors[0])

    def _store_vector(self, item: _Prepared, vector: np.ndarray) -> None:
        job, st, info = item.job, item.job.stat, item.info
        assert item.hash is not None and info is not None
        new = NewImage(
            path=st.path,
            size=st.size,
            mtime_ns=st.mtime_ns,
            content_hash=item.hash,
            vector=vector,
            width=info.width,
            height=info.height,
            format=info.format,
            taken_at=info.taken_at,
            source=job.row.source if job.row else self.source,
            hashes=item.hashes,
            facts=item.facts,
        )
        if job.row is None:
            self._changes.inserts.append(new)
            self._changes.cleared_failures.append(st.path)
            self._uncommitted["added"] += 1
        else:
            self._changes.replaces.append((job.row.id, new))
            self._changes.cleared_failures.append(st.path)
            self._uncommitted["updated"] += 1

    def _flush(self, *, drain: bool = False) -> None:
        """Send the batch to the encoder; store what the encoder finished, in order (all of
        it with `drain`, else until fewer batches than its streams are running); commit."""
        if self._batch:
            if self._warming is not None:  # one load of the tower, not two
                self._warming.join()
                self._warming = None
            items, self._batch = self._batch, []
            pixels = np.stack([b.pixels for b in items])
            for item in items:
                item.pixels = None  # the stacked copy is what is encoded
            if self._encode_pool is None:  # outside _embed: encode here
                done: Future[np.ndarray] = Future()
                done.set_result(self.encoder.encode_images(pixels))
                self._inflight.append((done, items))
            else:
                self._inflight.append((self._encode_pool.submit(self._encode, pixels), items))
        while self._inflight and (drain or len(self._inflight) >= self._streams):
            fut, items = self._inflight[0]
            t0 = time.perf_counter()
            vectors = fut.result()
            self._t["encode"] += time.perf_counter() - t0
            self._inflight.popleft()
            self.summary.embedded += len(items)
            for item, vec in zip(items, vectors, strict=True):
                assert item.hash is not None
                self._run_hashes.add(hash(item.hash))
                self._store_vector(item, vec)
        if self._changes:
            self._commit(self._changes)
            self._changes = Changes()

    def _encode(self, pixels: np.ndarray) -> np.ndarray:
        return self.encoder.encode_images(pixels)

    def _commit(self, changes: Changes) -> None:
        t0 = time.perf_counter()
        with _deferred_interrupts():  # the commit and its bookkeeping happen together
            self.vector_ids.extend(self.vectors.apply(changes))
            self.summary.add(IngestSummary(**self._uncommitted))
            self.summary.failures.extend(self._uncommitted_failures)
            self._uncommitted = dict.fromkeys(self._uncommitted, 0)
            self._uncommitted_failures = []
        self._t["commit"] += time.perf_counter() - t0

    # 5. facts and text not read with the vectors
    def _read_extras(self) -> None:
        """Facts for images that lack them, then OCR (libraries with --ocr: every picture the
        first time, afterwards this run's)."""
        t0 = time.perf_counter()
        store = self.store
        # Store.apply clears the mark when it adds an image without facts (a copy, an import)
        everything = store.get_meta(reading.FACTS_DONE) != "1"
        items = lacking_facts(store) if everything else []
        if items:
            done = reading.fill_facts(
                store, items, workers=self.workers, report=self._reporter("facts")
            )
            self.summary.facts_read += done.done
            if done.interrupted:
                self.summary.interrupted = True
                return
        if everything:
            store.set_meta({reading.FACTS_DONE: "1"})
        self._t["facts"] = time.perf_counter() - t0
        if self.ocr:
            self._read_texts(self.ocr)

    def _read_texts(self, lang: str) -> None:
        from clipsearch.media.ocr import ocr_unavailable

        t0 = time.perf_counter()
        store = self.store
        everything = store.get_meta(reading.OCR_DONE) != lang
        items = lacking_ocr(store, None if everything else self.vector_ids)
        if not items:
            if everything:
                store.set_meta({reading.OCR_DONE: lang})
            return
        why = ocr_unavailable(lang)
        if why is not None:
            self.summary.ocr_skipped = why
            return
        done = reading.read_texts(
            store, items, lang=lang, workers=self.workers, report=self._reporter("ocr")
        )
        self.summary.texts_read += done.done
        self.summary.interrupted = self.summary.interrupted or done.interrupted
        if everything and not done.interrupted:
            store.set_meta({reading.OCR_DONE: lang})
        self._t["ocr"] = time.perf_counter() - t0

    def _reporter(self, phase: str) -> Callable[[int, int], None]:
        return lambda done, total: self.progress(Progress(phase, done, total))

    # 4. remove what is gone
    def _remove_missing(self, gone_failures: list[str]) -> None:
        t0 = time.perf_counter()
        ids = [r.id for r in self._missing.values() if r.id not in self._moved_ids]
        if ids or gone_failures:
            self.progress(Progress("remove", 0, len(ids)))
            self._commit(Changes(removes=ids, cleared_failures=gone_failures))
            self.summary.removed += len(ids)
            self.progress(Progress("remove", len(ids), len(ids)))
        self._t["remove"] += time.perf_counter() - t0
