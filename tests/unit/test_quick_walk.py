"""`index --quick`: folders whose modification time has not moved are not listed again.

Real folders, real SQLite, real FAISS; the model is the counting stand-in of
test_ingest_run. Folder times are set into the past with os.utime (a folder changed in the
last seconds is never trusted), as they are on any collection that was not just written.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from clipsearch.ingest.run import IngestRun
from clipsearch.media import fs
from clipsearch.store import folders
from clipsearch.store.store import Store
from tests.helpers import make_image
from tests.unit.test_ingest_run import FakeEncoder

LONG_AGO = time.time() - 3600


def _age(root: Path) -> None:
    """Every folder under `root` as if last changed an hour ago."""
    for folder, _, _ in os.walk(root):
        os.utime(folder, (LONG_AGO, LONG_AGO))


def _collection(root: Path) -> Path:
    for i, name in enumerate(["a", "b", "b/deep", "c"]):
        for j in range(3):
            make_image(root / name / f"p{j}.jpg", seed=10 * i + j)
    _age(root)
    return root


def _run(store: Store, cache, enc: FakeEncoder, root: Path, *, quick: bool) -> IngestRun:
    run = IngestRun(store, cache, lambda: enc, workers=2, batch_size=4, quick=quick)
    run.summary = run.run([str(root)])
    return run


def _indexed(tmp_path: Path, store: Store, cache) -> Path:
    """The collection, indexed once by a full run (which records its folders)."""
    root = _collection(tmp_path / "photos")
    _run(store, cache, FakeEncoder(), root, quick=False)
    return root


def _paths(store: Store, root: Path) -> set[str]:
    return set(folders.file_states_under(store, [str(root)]))


def test_a_quick_run_finds_additions_deletions_moves_and_gone_folders(
    tmp_path, store, library
) -> None:
    _, cache = library
    root = _indexed(tmp_path, store, cache)
    assert len(folders.recorded_folders(store, [str(root)])) == 5  # root, a, b, b/deep, c

    make_image(root / "a" / "new.jpg", seed=99)  # added
    os.remove(root / "c" / "p0.jpg")  # deleted
    os.rename(root / "b" / "p1.jpg", root / "a" / "moved.jpg")  # moved to another folder
    shutil.rmtree(root / "b" / "deep")  # a whole folder gone
    enc = FakeEncoder()
    run = _run(store, cache, enc, root, quick=True)
    s = run.summary
    assert (s.added, s.moved, s.removed, s.failed) == (1, 1, 4, 0)
    assert enc.images == 1  # only the new picture reached the model
    assert s.unchanged == 7  # 12, less the deleted one, the gone folder's 3, the moved one
    on_disk = {str(p) for p in root.rglob("*.jpg")}
    assert _paths(store, root) == on_disk
    assert cache.index().ntotal == store.vector_count() == len(on_disk) == 9
    assert run.folder_log.skipped == [str(root)]  # a file added in a/ does not touch it


def test_unchanged_folders_are_not_listed_so_an_edit_in_place_waits_for_a_full_run(
    tmp_path, store, library
) -> None:
    _, cache = library
    root = _indexed(tmp_path, store, cache)
    # Edited in place (same name, new content): the folder's time does not move.
    make_image(root / "c" / "p2.jpg", seed=500, size=(128, 96))
    os.utime(root / "c", (LONG_AGO, LONG_AGO))
    make_image(root / "a" / "new.jpg", seed=77)  # and a new picture elsewhere

    enc = FakeEncoder()
    run = _run(store, cache, enc, root, quick=True)
    assert (run.summary.added, run.summary.updated, run.summary.unchanged) == (1, 0, 12)
    assert sorted(run.folder_log.skipped) == sorted(
        [str(root), *(str(root / f) for f in ["b", "b/deep", "c"])]
    )
    assert enc.images == 1

    full = _run(store, cache, FakeEncoder(), root, quick=False)
    assert (full.summary.updated, full.summary.unchanged) == (1, 12)
    row = store.row_by_path(str(root / "c" / "p2.jpg"))
    assert row is not None and row.size == os.path.getsize(root / "c" / "p2.jpg")


def test_without_recorded_times_a_quick_run_is_a_full_one(tmp_path, store, library) -> None:
    _, cache = library
    root = _collection(tmp_path / "photos")
    enc = FakeEncoder()
    run = _run(store, cache, enc, root, quick=True)
    assert (run.summary.added, enc.images, run.folder_log.skipped) == (12, 12, [])
    assert len(folders.recorded_folders(store, [str(root)])) == 5


def test_folders_changed_moments_ago_are_listed_again(tmp_path, store, library) -> None:
    """A folder changed within the clock's resolution could change again unseen: its time is
    not recorded, and the next quick run lists it."""
    _, cache = library
    root = _collection(tmp_path / "photos")
    make_image(root / "c" / "fresh.jpg", seed=41)  # c changed just now
    _run(store, cache, FakeEncoder(), root, quick=False)
    recorded = folders.recorded_folders(store, [str(root)])
    assert recorded[str(root / "c")] == fs.UNTRUSTED and recorded[str(root / "a")] > 0

    make_image(root / "c" / "fresh.jpg", seed=42, size=(120, 80))  # edited in place
    run = _run(store, cache, FakeEncoder(), root, quick=True)
    assert (run.summary.updated, run.summary.unchanged, run.summary.removed) == (1, 12, 0)
    assert str(root / "c") not in run.folder_log.skipped
    assert str(root / "a") in run.folder_log.skipped


def test_a_quick_run_embeds_pictures_still_waiting_for_a_vector(tmp_path, store, library):
    """Switching models drops every vector: folders unchanged on disk still hold work."""
    _, cache = library
    root = _indexed(tmp_path, store, cache)
    cache.reset({"model": "fake-2", "dim": "4"})
    enc = FakeEncoder()
    run = _run(store, cache, enc, root, quick=True)
    assert len(run.folder_log.skipped) == 5
    assert enc.images == 12 and store.vector_count() == 12
    assert cache.index().ntotal == 12


def test_an_interrupted_run_records_nothing(tmp_path, store, library, monkeypatch) -> None:
    _, cache = library
    root = _collection(tmp_path / "photos")

    class Interrupting(FakeEncoder):
        def encode_images(self, pixels):
            raise KeyboardInterrupt

    run = _run(store, cache, Interrupting(), root, quick=False)
    assert run.summary.interrupted
    assert folders.recorded_folders(store, [str(root)]) == {}
    # ...so the next quick run lists every folder and finishes the work.
    enc = FakeEncoder()
    again = _run(store, cache, enc, root, quick=True)
    assert again.folder_log.skipped == [] and store.vector_count() == 12


def test_known_failures_in_unchanged_folders_stay_recorded(tmp_path, store, library) -> None:
    _, cache = library
    root = _collection(tmp_path / "photos")
    (root / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    _age(root)
    first = _run(store, cache, FakeEncoder(), root, quick=False)
    assert first.summary.failed == 1
    run = _run(store, cache, FakeEncoder(), root, quick=True)
    assert str(root / "b") in run.folder_log.skipped
    assert [f.path for f in run.summary.failures] == [str(root / "b" / "broken.jpg")]
    assert [f.path for f in store.failures()] == [str(root / "b" / "broken.jpg")]


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="needs a file system of raw bytes")
def test_non_utf8_folder_names_are_recorded_and_skipped(tmp_path, store, library) -> None:
    _, cache = library
    root = tmp_path / "photos"
    odd = os.fsdecode(os.fsencode(str(root)) + b"/caf\xe9")
    for j in range(2):
        make_image(Path(odd) / f"p{j}.jpg", seed=j)
    make_image(root / "plain" / "p.jpg", seed=9)
    _age(root)
    _run(store, cache, FakeEncoder(), root, quick=False)
    assert odd in folders.recorded_folders(store, [str(root)])

    make_image(root / "plain" / "q.jpg", seed=8)
    os.remove(Path(odd) / "p1.jpg")
    run = _run(store, cache, FakeEncoder(), root, quick=True)
    assert (run.summary.added, run.summary.removed) == (1, 1)
    assert _paths(store, root) == {str(p) for p in [Path(odd) / "p0.jpg"]} | {
        str(root / "plain" / "p.jpg"),
        str(root / "plain" / "q.jpg"),
    }
    _age(root)
    _run(store, cache, FakeEncoder(), root, quick=False)
    quiet = _run(store, cache, FakeEncoder(), root, quick=True)
    assert odd in quiet.folder_log.skipped and quiet.summary.unchanged == 3


def test_the_walk_notes_folder_times_before_listing(tmp_path) -> None:
    root = _collection(tmp_path / "photos")
    log = fs.FolderLog()
    found = list(fs.scan([str(root)], folders=log))
    assert len(found) == 12
    assert set(log.seen) == {str(root), *(str(root / f) for f in ["a", "b", "b/deep", "c"])}
    assert all(abs(t - LONG_AGO * 1e9) < 1e9 for t in log.seen.values())
    assert log.skipped == []  # nothing known: everything listed
