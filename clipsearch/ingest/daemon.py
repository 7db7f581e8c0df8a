"""The watch daemon: keeps a library in step with its photo folders, live.

One process, one writer: the daemon holds the library's writer lock for its whole life.

1. **start**: remember the roots, load the model and the index, start the observers, then a
   catch-up scan (an ordinary index run over the roots) for whatever changed while it was down.
2. **loop**: take what has settled from the
   :class:`~clipsearch.ingest.watch_queue.PendingQueue` and apply it through the library
   (moves rename rows; new folders are scanned for files; files are synced in small runs,
   committed per batch as usual). A catch-up scan also runs every `reconcile_interval`
   seconds, and when the kernel reports dropped events.
3. **checkpoints**: every change is committed with its vector-log entry at once, so searches in
   other processes see it; the index *file* is rewritten only every `save_every` changes (or 5%
   of the library, whichever is more) or `save_interval` seconds, and at exit.
4. **stop** (:meth:`WatchDaemon.request_stop`, from SIGINT/SIGTERM): stop the observers, apply
   what settles within `drain_timeout`, leave the rest to the next start's catch-up scan, save
   the index, release the lock.

A file that cannot be read is tried once more after it settles again (it may still have been
being written), then recorded as failed with its reason. Errors that may pass (a full disk, a
busy database) are logged and the work retried with a growing pause; the daemon keeps running.

While it runs, the daemon rewrites `LIBRARY/daemon.json` (what `status` shows as `daemon`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clipsearch.errors import ClipsearchError, DiskFull
from clipsearch.ingest.watch_queue import Batch, Observers, OverflowAlarm, PendingQueue, RootHandler
from clipsearch.media import fs

log = logging.getLogger(__name__)

STATE_FILE = "daemon.json"
COMMAND = "clipsearch watch"  # how the daemon names itself in the writer lock
_RUN_LIMIT = 256  # paths per index run (bounds SQL size and how long a stop waits)
_PUBLISH_EVERY = 0.5  # seconds between daemon.json rewrites while busy
_HEALTH_EVERY = 5.0  # seconds between observer health checks


def default_threads() -> int:
    """Model threads for the daemon when none are set: at most half the cores.

    A background service shares the machine; with every core in use, small batches stall on
    threads the scheduler parked elsewhere (measured: single-image encodes went from 4 ms to
    0.5 s on a busy 2-core machine).
    """
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class WatchOptions:
    """How the daemon behaves; the CLI flags of `clipsearch watch`."""

    settle: float = 1.0  # seconds a file must stay unchanged before it is embedded
    reconcile_interval: float = 900.0  # seconds between catch-up scans; 0 = only at start
    save_every: int = 2000  # vector changes between index-file checkpoints
    save_interval: float = 300.0  # ... or seconds, whichever comes first
    drain_timeout: float = 10.0  # seconds a stop waits for settling files
    polling: bool = False  # poll instead of inotify (network file systems)
    poll_interval: float = 2.0


class WatchDaemon:
    """Watch `roots` and keep `lib` in sync until :meth:`request_stop`."""

    def __init__(self, lib: Any, roots: Sequence[str], options: WatchOptions | None = None):
        self.lib = lib
        self.roots = [fs.normalize_root(r) for r in roots]
        self.options = options or WatchOptions()
        self.queue = PendingQueue(self.options.settle)
        self.observers = Observers(
            polling=self.options.polling, poll_interval=self.options.poll_interval
        )
        self.totals = dict.fromkeys(
            ("events", "added", "updated", "moved", "removed", "failed", "retried", "errors"), 0
        )
        self.last_event: dict | None = None
        self.last_sync: dict | None = None
        self.last_reconcile: dict | None = None
        self.index_saved_at: float | None = None
        self.phase = "starting"
        self._stop = threading.Event()
        self._interruptible = False  # a long catch-up scan may be cut short by a stop
        self._hurry = False
        self._reconcile_reason: str | None = None
        self._next_reconcile = math.inf
        self._unsaved_since: float | None = None
        self._next_health = 0.0
        self._revived_at = -math.inf
        self._published = 0.0
        self._in_progress = 0
        self._backoff = 0.0
        self._counter = threading.Lock()
        self._devices: dict[str, int | None] = {}  # root -> st_dev when its watch started
        self.started_at = time.time()

    # --- control ------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> bool:
        """Stop cleanly; safe to call from a signal handler or another thread.

        Returns True when the caller should also interrupt the main thread (raise
        KeyboardInterrupt in a signal handler): a long catch-up scan is running, or this is
        the second request. Everything committed so far stays either way.
        """
        again = self._stop.is_set()
        self._stop.set()
        hurry = again or self._interruptible
        if hurry:
            self._hurry = True
        log.info("%s: stopping%s", reason, " now" if hurry else " once settled files are in")
        return hurry

    def run(self) -> None:
        """Watch until stopped. Raises LibraryLocked if another process writes the library."""
        with self.lib.writer(f"{COMMAND} {' '.join(self.roots)}"[:200]):
            alarm = OverflowAlarm(lambda: self._request_reconcile("the kernel dropped events"))
            wd_log = logging.getLogger("watchdog.observers.inotify")
            wd_log.addHandler(alarm)
            if not wd_log.isEnabledFor(logging.WARNING):  # -q: still hear about overflows
                wd_log.setLevel(logging.WARNING)
            try:
                self._start()
                while not self._stop.is_set():
                    self._step()
            except KeyboardInterrupt:
                self._stop.set()
                self._hurry = True
            finally:
                wd_log.removeHandler(alarm)
                self._shutdown()

    # --- start --------------------------------------------------------------------------------
    def _start(self) -> None:
        present = [r for r in self.roots if os.path.exists(r)]
        known = [r for r in self.roots if self.lib.store.count_under([r])]
        if not present and not known:
            raise ClipsearchError(
                f"none of the watched folders exist: {', '.join(map(fs.display, self.roots))}",
                hint="Mount the drive, or name the folders to watch: clipsearch watch PATH...",
            )
        for root in sorted(set(self.roots) - set(present)):
            log.warning(
                "%s does not exist (an unmounted drive?): its pictures are kept, offline; "
                "watching for it to come back",
                fs.display(root),
            )
        self._publish(force=True)
        self.lib.set_watched_roots(self.roots)
        self.lib.warm_up()
        self._reconcile("start")  # starts the observers first, then scans

    def _handler(self, root: str) -> RootHandler:
        return RootHandler(root, self.queue, exclude=[str(self.lib.path)], on_event=self._seen)

    def _seen(self, kind: str, path: str) -> None:  # observer threads
        with self._counter:
            self.totals["events"] += 1
        self.last_event = {"at": time.time(), "kind": kind, "path": path}

    # --- the loop -----------------------------------------------------------------------------
    def _step(self) -> None:
        now = time.monotonic()
        due = self._reconcile_reason or (now >= self._next_reconcile and not len(self.queue))
        if due or now >= self._next_reconcile + 60:  # (the queue never emptied: do not wait)
            try:
                self._reconcile(self._reconcile_reason or "periodic")
            except DiskFull as exc:
                self.totals["errors"] += 1
                log.error(
                    "catch-up scan stopped: %s; %s Trying again in 5 minutes.",
                    exc.message,
                    exc.hint or "",
                )
                self.phase = "watching"
                self._next_reconcile = time.monotonic() + 300
        batch = self.queue.take(limit=_RUN_LIMIT)
        if batch:
            self._apply_guarded(batch)
        self._maybe_save()
        self._check_health()
        self._publish()
        if not batch and not self._stop.is_set():
            self.queue.wait(self._wake_at())

    def _wake_at(self) -> float:
        now, rec = time.monotonic(), self._next_reconcile
        if rec <= now:  # due, but waiting for the queue to empty (at most 60 s)
            rec += 60
        return min(rec, now + 0.25)  # a stop request is noticed within 0.25 s

    def _apply_guarded(self, batch: Batch) -> None:
        self._in_progress = len(batch)
        try:
            self._apply(batch)
            self._backoff = 0.0
        except DiskFull as exc:  # may pass: keep the work, say why, try again later
            self.totals["errors"] += 1
            self._backoff = min(300.0, max(5.0, self._backoff * 2))
            log.error("%s; %s Retrying in %.0fs.", exc.message, exc.hint or "", self._backoff)
            self.queue.put_back(batch)
            self._stop.wait(self._backoff)
        except ClipsearchError:
            raise  # the model cannot load, or changed on disk: nothing to retry
        except Exception:
            self.totals["errors"] += 1
            self._backoff = min(60.0, max(1.0, self._backoff * 2))
            log.exception(
                "could not apply %d change(s); retrying in %.0fs", len(batch), self._backoff
            )
            self.queue.put_back(batch)
            self._stop.wait(self._backoff)
        finally:
            self._in_progress = 0

    def _apply(self, batch: Batch) -> None:
        t0 = time.monotonic()
        for src, dst, _ in batch.moves:
            moved = self.lib.move_path(src, dst)
            if moved:
                self.totals["moved"] += moved
                log.info("moved %s -> %s (%d image(s), vectors kept)", src, dst, moved)
        for folder in batch.scans:
            self._expand(folder)
        paths = batch.checks + batch.gones
        for i in range(0, len(paths), _RUN_LIMIT):
            self._sync(paths[i : i + _RUN_LIMIT], batch.retries, set(batch.gones))
        self.last_sync = {
            "at": time.time(),
            "paths": len(batch),
            "seconds": round(time.monotonic() - t0, 3),
        }

    def _expand(self, folder: str) -> None:
        """A folder appeared: queue its files that the library does not have as they are."""
        store = self.lib.store
        rows, failures = store.rows_under([folder]), store.failures_under([folder])
        for st in fs.scan([folder], exclude=[str(self.lib.path)]):
            row = rows.pop(st.path, None)
            known = row if row is not None and row.has_vector else failures.get(st.path)
            if known is None or (known.size, known.mtime_ns) != (st.size, st.mtime_ns):
                self.queue.check(st.path, if_absent=True, found=True)
        for path in rows:  # recorded under the folder, no longer there
            self.queue.gone(path, is_dir=False)

    def _sync(self, paths: list[str], retries: set[str], gones: set[str]) -> None:
        deferred: dict[str, str] = {}
        summary = self.lib.sync_paths(paths, defer_failure=self._deferrer(retries, deferred))
        self._after_run(summary, deferred, quiet_paths=gones)
        changed = summary.added + summary.updated + summary.moved + summary.removed
        if changed:
            log.info(
                "synced %d path(s): %d added, %d updated, %d moved, %d removed",
                len(paths),
                summary.added,
                summary.updated,
                summary.moved,
                summary.removed,
            )

    def _deferrer(self, retries: set[str], deferred: dict[str, str]) -> Callable[[str, str], bool]:
        def defer(path: str, reason: str) -> bool:
            if path in retries:
                self.totals["failed"] += 1
                log.warning("skipping %s: %s", path, reason)
                return False  # second try: record it
            deferred[path] = reason
            return True

        return defer

    def _after_run(self, summary: Any, deferred: dict[str, str], quiet_paths: set[str]) -> None:
        for key in ("added", "updated", "moved", "removed"):
            self.totals[key] += getattr(summary, key)
        for path, reason in deferred.items():
            self.totals["retried"] += 1
            log.info("cannot read %s yet (%s); trying again once it settles", path, reason)
            self.queue.check(path, attempt=1, if_absent=True)
        for f in summary.failures:  # scan errors (unreadable folders); not recorded
            if f.path not in deferred and f.path not in quiet_paths:
                log.debug("%s: %s", f.path, f.reason)

    # --- catch-up scans -----------------------------------------------------------------------
    def _request_reconcile(self, reason: str) -> None:
        self._reconcile_reason = reason
        self.queue.wake()

    def _reconcile(self, reason: str) -> None:
        self._reconcile_reason = None
        if self._stop.is_set():
            return
        for root in self.roots:
            if not os.path.exists(root):
                self._devices[root] = None  # gone: its coming back is noticed by the device
        self._revive([r for r in self.roots if os.path.exists(r)])
        self.phase = "reconciling"
        self._publish(force=True)
        # At start, only folders whose time moved are listed (idle in seconds at a million
        # pictures); a picture edited in place while the daemon was down keeps its folder's
        # time and is found by the first periodic scan, which looks at every file.
        quick = reason == "start" and self.options.reconcile_interval > 0
        log.info(
            "catch-up scan (%s) of %s%s",
            reason,
            ", ".join(map(fs.display, self.roots)),
            ": folders whose time moved" if quick else "",
        )
        t0 = time.monotonic()
        deferred: dict[str, str] = {}
        self._interruptible = True
        try:
            # Every root, present or not: a missing one with pictures is kept as offline.
            summary = self.lib.sync_paths(
                self.roots,
                remember=True,
                save=True,
                defer_failure=self._deferrer(set(), deferred),
                quick=quick,
            )
        finally:
            self._interruptible = False
        self.index_saved_at = time.time()
        self._after_run(summary, deferred, quiet_paths=set())
        for off in summary.offline:
            log.warning(
                "%s is offline (%s): its %d picture(s) are kept, left out of searches until "
                "it is back",
                fs.display(off.path),
                off.reason,
                off.images,
            )
        self.last_reconcile = {
            "at": time.time(),
            "reason": reason,
            "seconds": round(time.monotonic() - t0, 3),
            **{
                k: getattr(summary, k)
                for k in (
                    "added",
                    "updated",
                    "moved",
                    "removed",
                    "unchanged",
                    "failed",
                    "interrupted",
                )
            },
        }
        log.info(
            "catch-up scan done in %.1fs: %d added, %d updated, %d moved, %d removed, %d unchanged",
            time.monotonic() - t0,
            summary.added,
            summary.updated,
            summary.moved,
            summary.removed,
            summary.unchanged,
        )
        interval = self.options.reconcile_interval
        self._next_reconcile = time.monotonic() + interval if interval > 0 else math.inf
        self.phase = "watching"
        self._publish(force=True)

    # --- health and checkpoints ---------------------------------------------------------------
    def _revive(self, roots: list[str]) -> None:
        """Watch roots that exist but are not watched (yet, or any more)."""
        alive = self.observers.alive_roots()
        for root in roots:
            device = _device(root)
            if root in alive and self._devices.get(root) == device:
                continue
            self._devices[root] = device
            if self.observers.has(root):
                log.warning("watching %s again", root)
            try:
                self.observers.add(root, self._handler(root))
            except OSError as exc:  # the catch-up scans still cover it
                log.error("cannot watch %s (%s); only catch-up scans will see changes", root, exc)

    def _check_health(self) -> None:
        now = time.monotonic()
        if now < self._next_health:
            return
        self._next_health = now + _HEALTH_EVERY
        if not self.observers.healthy():
            log.error("a file-system observer stopped; restarting it")
            self.observers.stop()
            self._request_reconcile("an observer restarted")
            return
        alive = self.observers.alive_roots()
        # A drive mounted on (or unmounted from) a watched folder changes its device: the
        # old watch sees nothing of the new file system. Watch it again and catch up.
        remounted = [r for r in self.roots if r in self._devices and _device(r) != self._devices[r]]
        if remounted:
            self._request_reconcile(f"{', '.join(map(fs.display, remounted))} was (un)mounted")
            return
        back = [r for r in self.roots if r not in alive and os.path.isdir(r)]
        if back and now - self._revived_at > 60:  # at most once a minute
            self._revived_at = now
            self._request_reconcile(f"{', '.join(map(fs.display, back))} can be watched (again)")

    def _maybe_save(self) -> None:
        unsaved = self.lib.vectors.unsaved_changes()
        if unsaved <= 0:
            self._unsaved_since = None
            return
        now = time.monotonic()
        if self._unsaved_since is None:
            self._unsaved_since = now
        size = self.lib.store.vector_count() if unsaved >= self.options.save_every else 0
        enough = unsaved >= max(self.options.save_every, size // 20)
        if enough or now - self._unsaved_since >= self.options.save_interval:
            self._save()

    def _save(self) -> None:
        self.lib.vectors.save()
        self.index_saved_at = time.time()
        self._unsaved_since = None
        log.debug("index file saved")

    # --- stop ---------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        self.phase = "stopping"
        try:
            self._publish(force=True)
            self.observers.stop()
            if not self._hurry:
                self._drain()
        except KeyboardInterrupt:
            log.info("stopping without waiting for settling files")
        except ClipsearchError as exc:  # the error that stopped the daemon, met again
            log.debug("not applying the remaining changes: %s", exc.message)
        left = self.queue.paths()
        if left:
            log.warning(
                "%d path(s) were still changing; the next start's catch-up scan picks them up",
                len(left),
            )
        with contextlib.suppress(KeyboardInterrupt):
            self._save()
        self.phase = "stopped"
        self._publish(force=True, extra={"stopped_at": time.time(), "pending_at_exit": left})
        log.info("stopped")

    def _drain(self) -> None:
        deadline = time.monotonic() + self.options.drain_timeout
        while len(self.queue) and time.monotonic() < deadline:
            batch = self.queue.take(limit=_RUN_LIMIT, hold_gone=False)
            if batch:
                self._apply_guarded(batch)
            else:
                due = self.queue.next_due() or time.monotonic()
                time.sleep(min(0.1, max(0.0, due - time.monotonic())))

    # --- daemon.json --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What `status` shows about the daemon."""
        nxt = self._next_reconcile
        return {
            "pid": os.getpid(),
            "state": self.phase,
            "started_at": self.started_at,
            "roots": self.roots,
            "watching": sorted(self.observers.alive_roots()),
            "options": asdict(self.options),
            "queue": len(self.queue),
            "in_progress": self._in_progress,
            "last_event": self.last_event,
            "last_sync": self.last_sync,
            "last_reconcile": self.last_reconcile,
            "next_reconcile_at": time.time() + nxt - time.monotonic() if nxt < math.inf else None,
            "index_saved_at": self.index_saved_at,
            "totals": dict(self.totals),
            "updated_at": time.time(),
        }

    def _publish(self, *, force: bool = False, extra: dict | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._published < _PUBLISH_EVERY:
            return
        self._published = now
        try:
            _write_json(self.lib.path / STATE_FILE, {**self.state(), **(extra or {})})
        except OSError as exc:  # a full disk must not stop the daemon
            log.debug("cannot write %s: %s", STATE_FILE, exc)


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def daemon_status(folder: Path, holder: dict) -> dict[str, Any] | None:
    """The running daemon's state, or None when no watch daemon holds the writer lock.

    `daemon.json` is trusted only while its pid holds the lock (a killed daemon leaves a
    stale file behind; the kernel releases its lock).
    """
    if not str(holder.get("command") or "").startswith(COMMAND):
        return None
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        state = {}
    if state.get("pid") != holder.get("pid"):
        return {"pid": holder.get("pid"), "state": "starting"}
    return state
