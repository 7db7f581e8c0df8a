"""The watch queue on real files: what is held back, what is released, how paths coalesce."""

from __future__ import annotations

import os
import time
from pathlib import Path

from clipsearch.ingest.watch_queue import PendingQueue


def take_when_ready(queue: PendingQueue, timeout: float = 10.0, **kw):
    deadline = time.monotonic() + timeout
    while True:
        batch = queue.take(**kw)
        if batch or time.monotonic() > deadline:
            return batch
        time.sleep(0.02)


def test_nothing_is_released_before_it_settles(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    queue = PendingQueue(settle=60)
    queue.check(str(f))
    queue.check(str(f))  # coalesced: one path, one entry
    assert len(queue) == 1 and not queue.take()


def test_a_file_that_changed_without_an_event_settles_again(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    queue = PendingQueue(settle=0.05)
    queue.check(str(f))
    time.sleep(0.1)
    f.write_bytes(b"xy")  # no event reported this write
    assert not queue.take()  # size changed since the event: it starts settling again
    assert take_when_ready(queue).checks == [str(f)]


def test_a_found_file_that_is_old_is_settled_already(tmp_path: Path) -> None:
    f = tmp_path / "old.jpg"
    f.write_bytes(b"x")
    os.utime(f, (time.time() - 3600, time.time() - 3600))
    queue = PendingQueue(settle=60)
    queue.check(str(f), found=True)
    assert queue.take().checks == [str(f)]


def test_moves_carry_pending_work_along(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jpg").write_bytes(b"x")
    queue = PendingQueue(settle=60)
    queue.check(str(tmp_path / "d" / "a.jpg"))
    os.rename(tmp_path / "d", tmp_path / "e")
    queue.move(str(tmp_path / "d"), str(tmp_path / "e"), is_dir=True)
    batch = queue.take()  # the move is due at once; the file inside is still settling
    assert batch.moves == [(str(tmp_path / "d"), str(tmp_path / "e"), True)]
    assert queue.paths() == [str(tmp_path / "e"), str(tmp_path / "e" / "a.jpg")]


def test_deletions_wait_while_other_changes_settle(tmp_path: Path) -> None:
    new = tmp_path / "new.jpg"
    new.write_bytes(b"x")
    queue = PendingQueue(settle=60, hold_gone=600)
    queue.gone(str(tmp_path / "old.jpg"))  # e.g. the source of a move across roots
    queue._items[str(tmp_path / "old.jpg")].since -= 120  # the delete is due...
    queue.check(str(new))
    assert not queue.take()  # ...but waits while the new file settles
    queue._items[str(new)].since -= 120
    batch = queue.take()  # together: the new file can claim the old row (and its vector)
    assert batch.checks == [str(new)] and batch.gones == [str(tmp_path / "old.jpg")]


def test_a_deleted_folder_takes_pending_files_with_it(tmp_path: Path) -> None:
    queue = PendingQueue(settle=0.05)
    for name in ("a.jpg", "b.jpg"):
        queue.check(str(tmp_path / "gone" / name))
    queue.gone(str(tmp_path / "gone"))
    assert take_when_ready(queue).gones == [str(tmp_path / "gone")]
    assert len(queue) == 0


def test_something_that_came_back_is_checked_not_deleted(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    queue = PendingQueue(settle=0.05)
    queue.gone(str(f))
    f.write_bytes(b"back")
    assert take_when_ready(queue).checks == [str(f)]
