"""One writer per library: an advisory lock on `LIBRARY/lock`.

The kernel holds the lock (flock), so a killed process releases it at once; no stale
lock files to clean up. The file also records who holds it, for error messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from clipsearch.errors import LibraryLocked


class FlockFile:
    """An exclusive advisory lock on a file, with a JSON note of who holds it.

    The kernel holds the lock (flock), so a killed process releases it at once: no stale
    lock files to clean up. Used for the writer lock and for the one-server-per-library lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, note: dict) -> bool:
        """Take the lock and write `note` into the file; False if another process holds it.

        Raises OSError when the lock file cannot be created.
        """
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def holder(self) -> dict:
        """The note of whoever holds the lock right now ({} if nobody; {"pid": None} when the
        note cannot be read)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # held: read who holds it
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return {}
            raw = os.pread(fd, 4096, 0)
            note = json.loads(raw) if raw else {"pid": None}
            return note if isinstance(note, dict) else {"pid": None}
        except (OSError, ValueError):
            return {"pid": None}
        finally:
            os.close(fd)


class WriterLock:
    """Exclusive, non-blocking writer lock for a library directory."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "lock"
        self._file = FlockFile(self.path)

    @property
    def held(self) -> bool:
        return self._file.held

    def acquire(self, purpose: str = "") -> None:
        info = {
            "pid": os.getpid(),
            "command": purpose or " ".join(["clipsearch", *sys.argv[1:]])[:200],
            "since": time.time(),
        }
        if not self._file.try_acquire(info):
            raise self._busy(self.holder())

    def ensure_free(self) -> None:
        """Raise LibraryLocked now if another process writes (without taking the lock).

        For work that writes only at its end (a generation): say so before minutes of work.
        A writer may still start meanwhile; the final write takes the lock as usual.
        """
        if not self.held:
            holder = self.holder()
            if holder:
                raise self._busy(holder)

    @contextlib.contextmanager
    def holding(self, purpose: str = "") -> Iterator[None]:
        """Hold the lock for the block (re-entrant: a holder keeps it after the block)."""
        took = not self.held
        if took:
            self.acquire(purpose)
        try:
            yield
        finally:
            if took:
                self.release()

    def _busy(self, holder: dict) -> LibraryLocked:
        who = f"pid {holder.get('pid')}, running `{holder.get('command', '?')}`" if holder else ""
        if str(holder.get("command", "")).startswith("clipsearch watch"):
            pid = holder.get("pid")
            return LibraryLocked(
                f"the library {self.path.parent} is kept in sync by a running watch daemon "
                f"(pid {pid}); only one process can write to a library",
                hint="The daemon already indexes everything under the folders it watches. "
                f"To change anything else, stop it first (`kill {pid}`, or `systemctl "
                "--user stop clipsearch-watch`), run your command, then start `clipsearch "
                "watch` again. Searching works meanwhile.",
            )
        return LibraryLocked(
            f"the library {self.path.parent} is being written by another clipsearch "
            f"process{f' ({who})' if who else ''}",
            hint="Wait for it to finish, or stop it, then try again. Searching works meanwhile.",
        )

    def release(self) -> None:
        self._file.release()

    def holder(self) -> dict:
        """Who holds the lock right now ({} if nobody)."""
        return self._file.holder()

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
