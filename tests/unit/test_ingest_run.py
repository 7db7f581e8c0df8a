"""One ingest run with a fake encoder: what needs the model, and what never does.

Real files, a real SQLite store and a real FAISS index; only the model is a stand-in that
counts its calls (as rclip's tests do: a rename must never reach the model).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from clipsearch.ingest import run as ingest_run
from clipsearch.ingest.run import IngestRun
from clipsearch.media.images import PreprocessParams
from clipsearch.store.lock import WriterLock
from clipsearch.store.store import Store
from clipsearch.store.vector_cache import VectorCache
from tests.helpers import make_image


class FakeEncoder:
    """Mean colour of the picture as a unit vector (4-d); counts the images it embeds."""

    dim = 4
    params = PreprocessParams(size=(16, 16))

    def __init__(self) -> None:
        self.calls = 0
        self.images = 0

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.images += len(pixels)
        mean = pixels.reshape(len(pixels), -1, 3).mean(axis=1)
        vecs = np.concatenate([mean, np.full((len(pixels), 1), 50.0)], axis=1)
        return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def _run(store: Store, cache: VectorCache, enc: FakeEncoder, root: Path, **kw):
    run = IngestRun(store, cache, lambda: enc, workers=2, batch_size=4, **kw)
    return run.run([str(root)])


def _photos(root: Path, n: int = 6) -> Path:
    for i in range(n):
        make_image(root / f"img{i}.jpg", seed=i)
    return root


def test_new_files_are_embedded_in_batches_and_searchable(tmp_path, store, library) -> None:
    _, cache = library
    enc = FakeEncoder()
    summary = _run(store, cache, enc, _photos(tmp_path / "photos"))
    assert (summary.added, summary.embedded, summary.failed) == (6, 6, 0)
    assert enc.calls == 2  # batches of 4: 4 + 2
    assert cache.index().ntotal == store.vector_count() == 6


def test_a_rename_never_reaches_the_model(tmp_path, store, library) -> None:
    _, cache = library
    root = _photos(tmp_path / "photos")
    _run(store, cache, FakeEncoder(), root)
    before = store.row_by_path(str(root / "img0.jpg"))
    os.rename(root / "img0.jpg", root / "renamed.jpg")
    enc = FakeEncoder()
    summary = _run(store, cache, enc, root)
    assert (summary.moved, summary.added, summary.removed) == (1, 0, 0)
    assert enc.calls == 0
    after = store.row_by_path(str(root / "renamed.jpg"))
    assert after is not None and before is not None and after.id == before.id
    assert store.row_by_path(str(root / "img0.jpg")) is None


def test_a_copy_reuses_the_vector_without_the_model(tmp_path, store, library) -> None:
    _, cache = library
    root = _photos(tmp_path / "photos")
    _run(store, cache, FakeEncoder(), root)
    shutil.copy(root / "img1.jpg", root / "copy.jpg")
    enc = FakeEncoder()
    summary = _run(store, cache, enc, root)
    assert (summary.added, enc.calls) == (1, 0)
    a, b = store.row_by_path(str(root / "img1.jpg")), store.row_by_path(str(root / "copy.jpg"))
    _, vecs = store.get_vectors([a.id, b.id], 4)
    assert float(vecs[0] @ vecs[1]) > 0.99999 and cache.index().ntotal == 7


def test_copies_within_one_run_take_the_committed_vector(tmp_path, store, library) -> None:
    """The run remembers which contents it embedded, not their vectors (a first index of a
    million photos would hold 2 GB): a later copy reads the vector back from the store."""
    _, cache = library
    root = _photos(tmp_path / "photos")
    for i in range(5):
        (root / "z-copies").mkdir(exist_ok=True)
        shutil.copy(root / "img0.jpg", root / "z-copies" / f"again{i}.jpg")
    enc = FakeEncoder()
    run = IngestRun(store, cache, lambda: enc, workers=1, batch_size=2)
    summary = run.run([str(root)])
    assert (summary.added, summary.embedded, enc.images) == (11, 6, 6)
    first = store.row_by_path(str(root / "img0.jpg"))
    copies = [store.row_by_path(str(root / "z-copies" / f"again{i}.jpg")) for i in range(5)]
    _, vecs = store.get_vectors([first.id] + [c.id for c in copies], 4)
    assert len(vecs) == 6 and np.allclose(vecs, vecs[0])
    assert all(isinstance(h, int) for h in run._run_hashes) and len(run._run_hashes) == 6


def test_unchanged_files_are_not_even_read(tmp_path, store, library, monkeypatch) -> None:
    _, cache = library
    root = _photos(tmp_path / "photos")
    _run(store, cache, FakeEncoder(), root)
    reads: list[str] = []
    real = ingest_run.read_file
    monkeypatch.setattr(ingest_run, "read_file", lambda p: reads.append(p) or real(p))
    summary = _run(store, cache, FakeEncoder(), root)
    assert summary.unchanged == 6 and reads == []


def test_touched_but_identical_files_are_read_once_and_not_embedded(tmp_path, store, library):
    _, cache = library
    root = _photos(tmp_path / "photos")
    _run(store, cache, FakeEncoder(), root)
    os.utime(root / "img2.jpg", (2_000_000_000, 2_000_000_000))
    enc = FakeEncoder()
    summary = _run(store, cache, enc, root)
    assert (summary.unchanged, summary.updated, enc.calls) == (6, 0, 0)
    assert store.row_by_path(str(root / "img2.jpg")).mtime_ns == 2_000_000_000 * 10**9


def test_a_corrupt_file_is_recorded_and_the_run_goes_on(tmp_path, store, library) -> None:
    _, cache = library
    root = _photos(tmp_path / "photos", 3)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    summary = _run(store, cache, FakeEncoder(), root)
    assert (summary.added, summary.failed) == (3, 1)
    assert summary.failures[0].path == str(root / "broken.jpg")
    assert [f.path for f in store.failures()] == [str(root / "broken.jpg")]
    again = _run(store, cache, FakeEncoder(), root)  # known bad and unchanged: not retried
    assert again.failed == 1 and again.added == 0


def test_deleted_files_leave_the_store_and_the_index(tmp_path, store, library) -> None:
    _, cache = library
    root = _photos(tmp_path / "photos")
    _run(store, cache, FakeEncoder(), root)
    (root / "img3.jpg").unlink()
    summary = _run(store, cache, FakeEncoder(), root)
    assert summary.removed == 1
    assert store.vector_count() == 5 and cache.index().ntotal == 5


def test_the_index_file_is_the_writers_checkpoint(tmp_path, store, library) -> None:
    folder, cache = library
    _run(store, cache, FakeEncoder(), _photos(tmp_path / "photos"))
    assert cache.unsaved_changes() == 6
    cache.save()
    assert cache.unsaved_changes() == 0 and store.log_since(cache.index().seq) == []
    reader = VectorCache(folder, store, WriterLock(folder))  # another process's view
    assert reader.index().ntotal == 6
