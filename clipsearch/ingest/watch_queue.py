"""Watching folders: watchdog events -> a debounced, coalescing queue of paths to sync.

The observer threads only record what happened, keyed by path; the daemon's worker takes
what has *settled* (see :class:`PendingQueue`) and brings the library in line:

========================================  ===============================================
event                                     queued as
========================================  ===============================================
file created / modified / closed / attrib  ``check`` the file (embedded once it settles)
folder created or moved in from outside    ``scan`` the folder (each new file is checked)
file or folder deleted, or moved out       ``gone`` (its images leave the library)
file or folder moved inside a root         a ``move`` (rows renamed, vectors kept), then a
                                           check / scan of the destination as a safety net
========================================  ===============================================

A move across two watched roots arrives as a delete plus a create; the worker handles the
create first (its content hash finds the old row, whose vector is kept), which is why
``gone`` items wait while other changes are still settling.

Hidden files and folders, non-image files and the library folder are ignored, as in `index`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from clipsearch.media import fs
from clipsearch.media.fs import is_image_name

log = logging.getLogger(__name__)

Stat = tuple[int, int]  # (size, mtime_ns)


def _stat(path: str) -> Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class Pending:
    """One path waiting to be synced."""

    kind: str  # "check" (a file), "scan" (a folder), "gone"
    since: float  # monotonic time of the last event or observed change
    stat: Stat | None = None  # when last looked at
    attempt: int = 0  # 1: a retry after the file could not be read
    born: float = 0.0  # monotonic time this kind of item was first queued


@dataclass
class Batch:
    """What the worker does in one step: moves first, then scans, then checks and gones."""

    moves: list[tuple[str, str, bool]] = field(default_factory=list)  # src, dst, is_dir
    scans: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    gones: list[str] = field(default_factory=list)
    retries: set[str] = field(default_factory=set)  # checks that are second attempts

    def __len__(self) -> int:
        return len(self.moves) + len(self.scans) + len(self.checks) + len(self.gones)


class PendingQueue:
    """Paths waiting to be synced, coalesced by path, released once they have settled.

    A file is *settled* when no event arrived for `settle` seconds and its size and mtime are
    what they were at the last event (a check that catches writes no event reported, e.g. on
    network file systems). Thread-safe: observer threads put, the worker takes.
    """

    def __init__(self, settle: float, *, hold_gone: float | None = None) -> None:
        self.settle = settle
        # Deletions wait (up to this long) while other changes settle: a move across roots
        # is a delete + a create, and the create must find the old row to keep its vector.
        self.hold_gone = hold_gone if hold_gone is not None else max(30.0, 10 * settle)
        self._items: dict[str, Pending] = {}
        self._moves: list[tuple[str, str, bool]] = []
        self._cond = threading.Condition()

    # --- putting (observer threads) ---------------------------------------------------------
    def check(
        self, path: str, *, attempt: int = 0, if_absent: bool = False, found: bool = False
    ) -> None:
        """A file appeared or changed: sync it once it settles.

        `if_absent`: leave an item already queued alone. `found`: the file was found by a
        scan, not reported by an event; if it has not been written to for `settle` seconds
        it counts as settled once a second look finds it unchanged.
        """
        stat, now = _stat(path), time.monotonic()
        with self._cond:
            old = self._items.get(path)
            if if_absent and old is not None:
                return
            since = now
            if found and stat is not None and time.time() - stat[1] / 1e9 >= self.settle:
                since = now - self.settle
            self._items[path] = Pending("check", since, stat, attempt, now)
            self._wake(old is None)

    def scan(self, folder: str) -> None:
        """A folder appeared: look inside once it settles."""
        now = time.monotonic()
        with self._cond:
            old = self._items.get(folder)
            self._items[folder] = Pending("scan", now, None, 0, now)
            self._wake(old is None)

    def gone(self, path: str, *, is_dir: bool = True) -> None:
        """A file or folder disappeared: its images leave the library."""
        now = time.monotonic()
        with self._cond:
            if is_dir:
                prefix = path.rstrip("/") + "/"
                for key in [k for k in self._items if k.startswith(prefix)]:
                    del self._items[key]  # everything below went with it
            old = self._items.get(path)
            born = old.born if old is not None and old.kind == "gone" else now
            self._items[path] = Pending("gone", now, None, 0, born)
            self._wake(old is None)

    def move(self, src: str, dst: str, *, is_dir: bool) -> None:
        """A file or folder was renamed inside a watched root."""
        now = time.monotonic()
        with self._cond:
            self._moves.append((src, dst, is_dir))
            if is_dir:
                prefix = src.rstrip("/") + "/"
                for key in [k for k in self._items if k.startswith(prefix)]:
                    self._items[dst + key[len(src) :]] = self._items.pop(key)
            pending = self._items.pop(src, None)
            if pending is not None and pending.kind != "gone":
                self._items[dst] = pending
            elif is_dir:
                self._items[dst] = Pending("scan", now, None, 0, now)
            else:
                self._items[dst] = Pending("check", now, _stat(dst), 0, now)
            self._wake(True)

    def _wake(self, needed: bool) -> None:
        # The worker sleeps until the oldest item is due; a new item is never due earlier,
        # so only an empty queue (or a move, due at once) needs waking.
        if needed:
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # --- taking (the worker) ----------------------------------------------------------------
    def take(self, *, limit: int = 256, hold_gone: bool = True) -> Batch:
        """Remove and return what has settled (at most `limit` checks)."""
        now = time.monotonic()
        batch = Batch()
        with self._cond:
            batch.moves, self._moves = self._moves, []
            due = [p for p, it in self._items.items() if it.since + self.settle <= now]
            gones: list[str] = []
            for path in due:
                if len(batch.checks) >= limit:
                    break
                self._take_one(path, now, batch, gones)
            waiting = any(it.kind != "gone" for it in self._items.values())
            for path in gones:
                item = self._items[path]
                if hold_gone and waiting and now - item.born < self.hold_gone:
                    continue
                del self._items[path]
                batch.gones.append(path)
        return batch

    def _take_one(self, path: str, now: float, batch: Batch, gones: list[str]) -> None:
        item = self._items[path]
        if item.kind == "gone":
            if os.path.lexists(path):  # it came back
                kind = "scan" if os.path.isdir(path) else "check"
                self._items[path] = Pending(kind, now, _stat(path), 0, now)
            else:
                gones.append(path)
            return
        if item.kind == "scan":
            if not os.path.isdir(path):
                self._items[path] = Pending("gone", now, None, 0, now)
                gones.append(path)
                return
            del self._items[path]
            batch.scans.append(path)
            return
        stat = _stat(path)
        if stat is None:  # deleted before it settled
            self._items[path] = Pending("gone", now, None, 0, item.born)
            gones.append(path)
        elif stat != item.stat:  # changed without an event we saw: start settling again
            item.stat, item.since = stat, now
        else:
            del self._items[path]
            batch.checks.append(path)
            if item.attempt:
                batch.retries.add(path)

    def put_back(self, batch: Batch) -> None:
        """Return a batch that could not be applied (it is retried later)."""
        with self._cond:
            self._moves[:0] = batch.moves
        for path in batch.scans:
            self.scan(path)
        for path in batch.checks:
            self.check(path, attempt=1 if path in batch.retries else 0)
        for path in batch.gones:
            self.gone(path)

    def next_due(self) -> float | None:
        """Monotonic time the next item may be ready (None when empty)."""
        with self._cond:
            return self._next_due()

    def _next_due(self) -> float | None:
        if self._moves:
            return time.monotonic()
        others = [it.since for it in self._items.values() if it.kind != "gone"]
        gones = [it for it in self._items.values() if it.kind == "gone"]
        due = min(others) + self.settle if others else None
        if gones:  # held while others wait, at most `hold_gone`
            when = [
                max(it.since + self.settle, it.born + self.hold_gone)
                if others
                else it.since + self.settle
                for it in gones
            ]
            due = min(due, min(when)) if due is not None else min(when)
        return due

    def wait(self, until: float) -> None:
        """Sleep until the next item is due, something is put in an empty queue, or `until`."""
        with self._cond:
            due = self._next_due()
            deadline = until if due is None else min(until, due)
            timeout = deadline - time.monotonic()
            if timeout > 0:
                self._cond.wait(timeout)

    def paths(self) -> list[str]:
        with self._cond:
            return sorted({*self._items, *(dst for _, dst, _ in self._moves)})

    def __len__(self) -> int:
        with self._cond:
            return len(self._items) + len(self._moves)


# --- watchdog --------------------------------------------------------------------------------


_EVENTS = (
    "FileCreatedEvent",
    "FileModifiedEvent",
    "FileAttribEvent",
    "FileClosedEvent",
    "FileDeletedEvent",
    "FileMovedEvent",
    "DirCreatedEvent",
    "DirDeletedEvent",
    "DirMovedEvent",
)


def _event_filter() -> list:
    """The events worth a look. Not opens and reads: the daemon's own reads would echo."""
    from watchdog import events

    return [getattr(events, name) for name in _EVENTS if hasattr(events, name)]


class RootHandler:
    """Turns one watched root's watchdog events into queue entries."""

    def __init__(
        self,
        root: str,
        queue: PendingQueue,
        *,
        exclude: Iterable[str] = (),
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self.root = root
        self.queue = queue
        self.exclude = [fs.normalize_root(e) for e in exclude]
        self.on_event = on_event or (lambda kind, path: None)

    def dispatch(self, event) -> None:  # watchdog calls this for every event
        try:
            self._dispatch(event)
        except Exception:  # never let one odd event kill the observer thread
            log.exception("could not handle %r", event)

    def _dispatch(self, event) -> None:
        kind, is_dir = event.event_type, event.is_directory
        src = os.fsdecode(event.src_path)
        if kind == "moved":
            if event.is_synthetic:
                return  # below a moved folder: the folder's own move covers it
            dst = os.fsdecode(event.dest_path)
            src_ok, dst_ok = self._wanted(src, is_dir), self._wanted(dst, is_dir)
            if src_ok and dst_ok:
                self.queue.move(src, dst, is_dir=is_dir)
            elif src_ok:
                self.queue.gone(src, is_dir=is_dir)
            elif dst_ok:
                self.queue.scan(dst) if is_dir else self.queue.check(dst)
            else:
                return
            self.on_event(kind, dst)
            return
        if kind == "deleted" and src == self.root:
            log.warning(
                "the watched folder %s disappeared (unmounted or deleted?); its images stay in "
                "the library. Restart watch once it is back.",
                src,
            )
            return
        if not self._wanted(src, is_dir):
            return
        if kind == "deleted":
            self.queue.gone(src, is_dir=is_dir)
        elif is_dir:
            if kind != "created":
                return
            self.queue.scan(src)
        else:
            self.queue.check(src)
        self.on_event(kind, src)

    def _wanted(self, path: str, is_dir: bool) -> bool:
        if not fs.is_under(path, self.root) or path == self.root:
            return False
        rel = path[len(self.root) :].lstrip("/")
        if any(part.startswith(".") for part in rel.split("/")):
            return False
        if any(fs.is_under(path, e) for e in self.exclude):
            return False
        if is_dir:
            return True
        name = os.path.basename(path)
        if not is_image_name(name):
            return False
        if fs.is_raw_name(name):  # a RAW beside its JPEG is left out, as the scan does
            try:
                return not fs.raw_has_sibling(name, os.listdir(os.path.dirname(path)))
            except OSError:
                return True
        return True


class Observers:
    """watchdog observers over the watched roots (inotify; polling where that fails)."""

    def __init__(self, *, polling: bool = False, poll_interval: float = 2.0) -> None:
        self.polling = polling
        self.poll_interval = poll_interval
        self._observers: list = []
        self._watches: dict[str, tuple[object, object]] = {}  # root -> (observer, watch)

    def add(self, root: str, handler: RootHandler) -> None:
        """Watch `root` recursively; falls back to polling if the kernel refuses (limits)."""
        if root in self._watches:  # a dead watch (the folder went away and came back)
            observer, watch = self._watches.pop(root)
            with contextlib.suppress(Exception):
                observer.unschedule(watch)
        try:
            self._schedule(root, handler, polling=self.polling)
        except OSError as exc:
            if self.polling:
                raise
            log.warning(
                "cannot watch %s with inotify (%s); polling it every %.0fs instead. Raising "
                "fs.inotify.max_user_watches helps.",
                root,
                exc,
                self.poll_interval,
            )
            self._schedule(root, handler, polling=True)

    def _schedule(self, root: str, handler: RootHandler, *, polling: bool) -> None:
        observer = self._observer(polling)
        watch = observer.schedule(handler, root, recursive=True, event_filter=_event_filter())
        self._watches[root] = (observer, watch)

    def _observer(self, polling: bool):
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        cls = PollingObserver if polling else Observer
        for obs in self._observers:
            if type(obs) is cls:
                return obs
        obs = PollingObserver(timeout=self.poll_interval) if polling else Observer()
        obs.daemon = True
        obs.start()
        self._observers.append(obs)
        return obs

    def has(self, root: str) -> bool:
        return root in self._watches

    def alive_roots(self) -> set[str]:
        """Roots whose watch is running."""
        alive = set()
        for root, (observer, watch) in list(self._watches.items()):
            if observer.is_alive() and any(
                e.watch == watch and e.is_alive() for e in observer.emitters
            ):
                alive.add(root)
        return alive

    def healthy(self) -> bool:
        return all(obs.is_alive() for obs in self._observers)

    def stop(self) -> None:
        for obs in self._observers:
            obs.stop()
        for obs in self._observers:
            obs.join(timeout=5)
        self._observers.clear()
        self._watches.clear()


class OverflowAlarm(logging.Handler):
    """Calls `callback` when watchdog reports that the kernel dropped events."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.callback()
