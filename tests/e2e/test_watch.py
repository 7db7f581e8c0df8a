"""The watch daemon, in-process: real watchdog observers on temp folders, real files.

Each test starts a :class:`WatchDaemon` in a thread, changes files on disk and waits (with a
timeout, never a timing assertion) until the library shows what a user would expect.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clipsearch import Library
from clipsearch.ingest.daemon import WatchDaemon, WatchOptions
from tests.helpers import make_image

TIMEOUT = 30.0


def wait_for(cond: Callable[[], object], what: str, timeout: float = TIMEOUT) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _connect(lib_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(lib_dir / "clipsearch.db")
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")  # odd file names
    return conn


def indexed(lib_dir: Path) -> dict[str, tuple[int, bytes]]:
    """path -> (id, vector bytes) for every image with a vector, read straight from SQLite."""
    with _connect(lib_dir) as conn:
        rows = conn.execute(
            "SELECT path, id, data FROM images JOIN vectors ON vectors.image_id = images.id"
        )
        return {p: (i, e) for p, i, e in rows}


def failures(lib_dir: Path) -> dict[str, str]:
    with _connect(lib_dir) as conn:
        return dict(conn.execute("SELECT path, reason FROM failures"))


def offline(lib_dir: Path) -> list[str]:
    with Library.open(lib_dir, create=False) as reader:
        return [r.path for r in reader.offline_roots()]


def files_on_disk(*roots: Path) -> list[str]:
    """The image files `index` would see (hidden ones are skipped)."""
    found = []
    for root in roots:
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [os.path.join(folder, n) for n in names if n.endswith(".jpg")]
    return sorted(found)


class Watcher:
    """A daemon running in a thread over some roots."""

    def __init__(self, lib_dir: Path, model: str) -> None:
        self.lib_dir = lib_dir
        self.model = model
        self.daemon: WatchDaemon | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, *roots: Path, **options) -> WatchDaemon:
        options.setdefault("settle", 0.3)
        lib = Library.open(self.lib_dir, model=self.model)
        paths = [str(r) for r in roots] or lib.watched_roots()
        daemon = WatchDaemon(lib, paths, WatchOptions(**options))

        def run() -> None:
            try:
                daemon.run()
            except BaseException as exc:  # surfaced by stop()
                self._error = exc
            finally:
                lib.close()

        self.daemon, self._error = daemon, None
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        wait_for(lambda: daemon.phase == "watching" or self._error, "the daemon to start")
        assert self._error is None, self._error
        return daemon

    def stop(self) -> None:
        if self._thread is None:
            return
        assert self.daemon is not None
        self.daemon.request_stop("test")
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the daemon did not stop"
        self._thread = None
        if self._error is not None:
            raise self._error

    def settled(self, *roots: Path) -> dict[str, tuple[int, bytes]]:
        """Wait until the library holds exactly the image files on disk; returns its rows."""
        want = files_on_disk(*roots)
        return wait_for(
            lambda: (rows := indexed(self.lib_dir)) and sorted(rows) == want and rows,
            f"the library to hold exactly {len(want)} files",
        )


@pytest.fixture
def watcher(lib_dir: Path, tiny_model: str) -> Iterator[Watcher]:
    w = Watcher(lib_dir, tiny_model)
    yield w
    w.stop()


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "pictures", tmp_path / "downloads"
    a.mkdir()
    b.mkdir()
    return a, b


def test_new_modified_and_deleted_files(watcher: Watcher, roots, lib_dir: Path) -> None:
    pics, _ = roots
    make_image(pics / "keep.jpg", seed=1)
    watcher.start(pics)
    make_image(pics / "new.jpg", seed=2)
    (pics / "notes.txt").write_text("not an image")
    (pics / ".hidden").mkdir()
    make_image(pics / ".hidden" / "secret.jpg", seed=3)
    rows = watcher.settled(pics)  # hidden folders and non-images are ignored, like `index`
    assert sorted(rows) == [str(pics / "keep.jpg"), str(pics / "new.jpg")]

    make_image(pics / "new.jpg", seed=4)  # rewritten with other content: re-embedded
    changed = wait_for(
        lambda: indexed(lib_dir)[str(pics / "new.jpg")][1] != rows[str(pics / "new.jpg")][1],
        "the modified file to be re-embedded",
    )
    assert changed
    assert indexed(lib_dir)[str(pics / "new.jpg")][0] == rows[str(pics / "new.jpg")][0]

    (pics / "keep.jpg").unlink()
    watcher.settled(pics)
    with Library.open(lib_dir, create=False) as reader:  # a reader sees the same thing
        assert [h.path for h in reader.search("anything", k=10)] == [str(pics / "new.jpg")]


def test_moves_and_renames_keep_the_vector(watcher: Watcher, roots, lib_dir: Path) -> None:
    pics, downloads = roots
    make_image(pics / "a.jpg", seed=1)
    make_image(pics / "b.jpg", seed=2)
    watcher.start(pics, downloads)
    before = watcher.settled(pics, downloads)
    daemon = watcher.daemon
    assert daemon is not None
    embedded = daemon.totals["added"] + daemon.totals["updated"]

    os.rename(pics / "a.jpg", pics / "renamed.jpg")  # rename in place
    (pics / "sub").mkdir()
    os.rename(pics / "b.jpg", pics / "sub" / "b.jpg")  # into a subfolder
    rows = watcher.settled(pics, downloads)
    assert rows[str(pics / "renamed.jpg")] == before[str(pics / "a.jpg")]
    assert rows[str(pics / "sub" / "b.jpg")] == before[str(pics / "b.jpg")]

    shutil.move(pics / "renamed.jpg", downloads / "a.jpg")  # across watched roots
    rows = watcher.settled(pics, downloads)
    assert rows[str(downloads / "a.jpg")] == before[str(pics / "a.jpg")]

    make_image(pics / "c.jpg", seed=3)
    watcher.settled(pics, downloads)
    os.replace(pics / "c.jpg", pics / "sub" / "b.jpg")  # a rename over an indexed file
    rows = watcher.settled(pics, downloads)
    assert len(rows) == 2 and len({v for _, v in rows.values()}) == 2
    # Only c.jpg went through the model: moves and renames reuse what was embedded.
    assert daemon.totals["added"] + daemon.totals["updated"] == embedded + 1


def test_folders_renamed_deleted_and_moved_in(watcher: Watcher, roots, tmp_path: Path) -> None:
    pics, _ = roots
    for i in range(3):
        make_image(pics / "trip" / "day1" / f"{i}.jpg", seed=i)
    watcher.start(pics)
    before = watcher.settled(pics)

    os.rename(pics / "trip", pics / "holiday")
    rows = watcher.settled(pics)
    for i in range(3):
        old = str(pics / "trip" / "day1" / f"{i}.jpg")
        assert rows[str(pics / "holiday" / "day1" / f"{i}.jpg")] == before[old]

    outside = tmp_path / "camera-card"
    for i in range(4):
        make_image(outside / "DCIM" / f"IMG_{i}.jpg", seed=10 + i)
    shutil.move(outside, pics / "import")  # a folder moved in from outside: indexed
    assert len(watcher.settled(pics)) == 7

    shutil.rmtree(pics / "holiday")  # a deleted folder leaves the library
    assert len(watcher.settled(pics)) == 4


def test_half_written_files_wait_until_they_settle(watcher: Watcher, roots, lib_dir: Path) -> None:
    pics, _ = roots
    staged = make_image(pics.parent / "staged.jpg", seed=5, size=(640, 480), quality=95)
    data = staged.read_bytes()
    daemon = watcher.start(pics, settle=1.5)
    target = pics / "slow.jpg"
    chunks = [data[i : i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
    with open(target, "wb") as f:
        for chunk in chunks:  # pauses longer than event latency, shorter than the settle time
            f.write(chunk)
            f.flush()
            time.sleep(0.3)
            assert str(target) not in indexed(lib_dir) and not failures(lib_dir)
    rows = watcher.settled(pics)
    assert str(target) in rows
    assert not failures(lib_dir) and daemon.totals["retried"] == 0
    with sqlite3.connect(lib_dir / "clipsearch.db") as conn:
        (size,) = conn.execute("SELECT size FROM images WHERE path = ?", (str(target),)).fetchone()
    assert size == len(data)


def test_unreadable_files_are_retried_once_then_recorded(
    watcher: Watcher, roots, lib_dir: Path
) -> None:
    pics, _ = roots
    daemon = watcher.start(pics, settle=1.0)
    (pics / "broken.jpg").write_bytes(b"this is not a JPEG")
    reasons = wait_for(lambda: failures(lib_dir), "the failure to be recorded")
    assert "not an image" in reasons[str(pics / "broken.jpg")]
    assert daemon.totals["retried"] == 1 and daemon.totals["failed"] == 1

    # A writer that pauses longer than the settle time gets its second chance.
    data = make_image(pics.parent / "staged.jpg", seed=6, size=(320, 240)).read_bytes()
    with open(pics / "paused.jpg", "wb") as f:
        f.write(data[: len(data) // 3])
        f.flush()
        wait_for(lambda: daemon.totals["retried"] == 2, "the first attempt to fail")
        f.write(data[len(data) // 3 :])
    wait_for(lambda: str(pics / "paused.jpg") in indexed(lib_dir), "the completed file")
    assert list(failures(lib_dir)) == [str(pics / "broken.jpg")]  # the daemon kept running

    (pics / "broken.jpg").unlink()  # a failed file that goes away leaves the failure list
    wait_for(lambda: not failures(lib_dir), "the failure to be forgotten")


def test_a_burst_of_files(watcher: Watcher, roots, tmp_path: Path, lib_dir: Path) -> None:
    pics, _ = roots
    staging = tmp_path / "staging"
    for i in range(300):
        make_image(staging / f"{i:03d}.jpg", seed=100 + i, size=(64, 48))
    daemon = watcher.start(pics)
    for i, src in enumerate(sorted(staging.iterdir())):  # as fast as the disk takes them
        folder = pics / f"burst{i // 100}"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(src, folder / src.name)
    rows = watcher.settled(pics)
    assert len(rows) == 300 and daemon.totals["failed"] == 0
    with Library.open(lib_dir, create=False) as reader:
        hits = reader.search("anything", k=1000)
    assert sorted(h.path for h in hits) == files_on_disk(pics)  # each one exactly once


def test_restart_catches_up_with_offline_changes(watcher: Watcher, roots, lib_dir: Path) -> None:
    pics, _ = roots
    for i in range(4):
        make_image(pics / f"{i}.jpg", seed=i)
    watcher.start(pics)
    before = watcher.settled(pics)
    watcher.stop()
    with Library.open(lib_dir, create=False) as reader:
        assert reader.status()["daemon"] is None

    make_image(pics / "new.jpg", seed=9)  # while the daemon is down
    (pics / "0.jpg").unlink()
    os.rename(pics / "1.jpg", pics / "one.jpg")
    make_image(pics / "2.jpg", seed=22)

    daemon = watcher.start()  # no paths: the remembered roots
    assert daemon.roots == [str(pics)]
    rows = watcher.settled(pics)
    assert rows[str(pics / "one.jpg")] == before[str(pics / "1.jpg")]
    assert rows[str(pics / "2.jpg")][1] != before[str(pics / "2.jpg")][1]
    assert daemon.last_reconcile is not None and daemon.last_reconcile["added"] == 1


def test_restart_lists_changed_folders_then_a_periodic_scan_finds_edits(
    watcher: Watcher, roots, lib_dir: Path
) -> None:
    """The start scan lists only folders whose time moved; a picture edited in place while
    the daemon was down (its folder's time unchanged) is found by the first periodic scan."""
    pics, _ = roots
    for name in ("a", "b"):
        for i in range(3):
            make_image(pics / name / f"{i}.jpg", seed=10 * len(name) + i + ord(name))
    long_ago = time.time() - 3600
    for folder in (pics, pics / "a", pics / "b"):
        os.utime(folder, (long_ago, long_ago))
    watcher.start(pics, reconcile_interval=3600)
    before = watcher.settled(pics)
    watcher.stop()

    make_image(pics / "a" / "new.jpg", seed=90)  # a/ changes
    make_image(pics / "b" / "1.jpg", seed=91, size=(120, 80))  # edited in place...
    os.utime(pics / "b", (long_ago, long_ago))  # ...b/ keeps its time

    daemon = watcher.start(pics, reconcile_interval=5)
    start = daemon.last_reconcile
    assert start is not None and start["reason"] == "start"
    assert (start["added"], start["updated"], start["unchanged"]) == (1, 0, 6)
    edited = str(pics / "b" / "1.jpg")
    assert indexed(lib_dir)[edited] == before[edited]
    periodic = wait_for(
        lambda: (done := daemon.last_reconcile) and done["reason"] == "periodic" and done,
        "the first periodic scan",
    )
    assert periodic["updated"] == 1
    assert indexed(lib_dir)[edited][1] != before[edited][1]  # re-embedded


def test_readers_follow_the_log_between_index_checkpoints(
    watcher: Watcher, roots, lib_dir: Path
) -> None:
    pics, _ = roots
    make_image(pics / "first.jpg", seed=1)
    watcher.start(pics, save_every=10_000, save_interval=3600)
    watcher.settled(pics)
    saved = sorted(p.name for p in lib_dir.glob("vectors-*.faiss"))
    for i in range(5):
        make_image(pics / f"{i}.jpg", seed=10 + i)
    watcher.settled(pics)
    assert sorted(p.name for p in lib_dir.glob("vectors-*.faiss")) == saved  # not rewritten
    with Library.open(lib_dir, create=False) as reader:  # ...yet a reader sees every file
        assert len(reader.search("anything", k=100)) == 6
        assert reader.status()["index"]["vectors"] == 6
    watcher.stop()  # a clean stop saves the index file: nothing left to replay
    with Library.open(lib_dir, create=False) as reader:
        assert reader.vectors.unsaved_changes() == 0 and reader.status()["index"]["vectors"] == 6


def test_polling_observer(watcher: Watcher, roots) -> None:
    pics, _ = roots
    watcher.start(pics, polling=True, poll_interval=0.2)
    make_image(pics / "polled.jpg", seed=1)
    assert list(watcher.settled(pics)) == [str(pics / "polled.jpg")]


def test_odd_file_names_are_watched_and_survive_a_restart(watcher: Watcher, roots) -> None:
    pics, _ = roots
    make_image(pics / "plain.jpg", seed=1)
    watcher.start(pics)
    odd = os.fsencode(pics) + b"/caf\xe9.jpg"  # Latin-1: not valid UTF-8
    os.rename(os.fsencode(make_image(pics / "tmp.jpg", seed=2)), odd)
    rows = watcher.settled(pics)
    assert os.fsdecode(odd) in rows
    assert watcher.daemon is not None and watcher.daemon.totals["errors"] == 0
    watcher.stop()
    os.rename(odd, os.fsencode(pics) + b"/d\xe9j\xe0.jpg")  # renamed while it was down
    watcher.start()  # the catch-up scan at start must not crash on them
    after = watcher.settled(pics)
    assert after[os.fsdecode(os.fsencode(pics) + b"/d\xe9j\xe0.jpg")] == rows[os.fsdecode(odd)]


def test_a_watched_folder_that_vanishes_keeps_its_pictures(
    watcher: Watcher, roots, lib_dir: Path, tmp_path: Path
) -> None:
    pics, _ = roots
    for i in range(3):
        make_image(pics / f"{i}.jpg", seed=i)
    daemon = watcher.start(pics, reconcile_interval=0.5)
    before = watcher.settled(pics)
    pics.rename(tmp_path / "unplugged")  # the drive goes away while watched
    wait_for(
        lambda: daemon.last_reconcile and daemon.last_reconcile["at"] > time.time() - 0.4,
        "a catch-up scan after the folder went away",
    )
    time.sleep(1.0)  # events and scans had their chance to remove something
    assert indexed(lib_dir) == before
    assert offline(lib_dir) == [str(pics)]
    (tmp_path / "unplugged").rename(pics)  # back
    wait_for(lambda: not offline(lib_dir), "the folder to be online again")
    assert watcher.settled(pics) == before


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed")
def test_a_library_with_ocr_reads_text_in_new_pictures(
    watcher: Watcher, roots, lib_dir: Path, tiny_model: str
) -> None:
    from PIL import Image, ImageDraw, ImageFont

    from tests.helpers import exif_jpeg

    pics, _ = roots
    with Library.open(lib_dir, model=tiny_model) as lib:
        lib.set_ocr(True)  # as `watch --ocr` does; remembered by the library
    watcher.start(pics)
    sign = Image.new("RGB", (900, 300), "white")
    font = ImageFont.load_default(56)  # Pillow's own font: no system fonts needed
    ImageDraw.Draw(sign).text((40, 110), "HARDWARE INVOICE", fill="black", font=font)
    exif_jpeg(pics / "receipt.jpg", 1, picture=sign, at=(38.7223, -9.1393))
    watcher.settled(pics)

    def found() -> list[str]:
        with Library.open(lib_dir, create=False) as reader:
            return [Path(r.path).name for r in reader.search("text:invoice near:Lisbon")]

    assert wait_for(found, "the picture's text and place to be searchable") == ["receipt.jpg"]


def test_a_raw_beside_its_jpeg_is_left_out_as_index_does(watcher: Watcher, roots, lib_dir):
    pics, _ = roots
    watcher.start(pics)
    make_image(pics / "IMG_0001.jpg", seed=5)
    (pics / "IMG_0001.DNG").write_bytes(b"II*\x00 not really a DNG: never read")
    rows = wait_for(lambda: indexed(lib_dir), "the JPEG to be indexed")
    time.sleep(1.0)  # the RAW's events have come and gone by now
    assert sorted(indexed(lib_dir)) == [str(pics / "IMG_0001.jpg")] and rows
    assert failures(lib_dir) == {}
