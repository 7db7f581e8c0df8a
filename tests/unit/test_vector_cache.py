"""The vector cache over a real store: status from saved facts, growth to an approximate index
at a checkpoint, and a reader in another connection following the writer's new index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipsearch.store import vector_cache as vc
from clipsearch.store.db import migrate, open_database
from clipsearch.store.lock import WriterLock
from clipsearch.store.store import Changes, NewImage, Store

DIM = 16


def _clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((40, DIM))
    data = centers[rng.integers(0, 40, n)] + 0.2 * rng.standard_normal((n, DIM))
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


def _add(cache: vc.VectorCache, start: int, n: int) -> None:
    vecs = _clustered(n, seed=start)
    rows = [
        NewImage(f"/p/{start + i}.jpg", 1, 1, f"h{start + i}", vecs[i], taken_at="2024-01-01")
        for i in range(n)
    ]
    cache.apply(Changes(inserts=rows))


def _open(folder: Path) -> tuple[vc.VectorCache, Store, WriterLock]:
    engine = open_database(folder / "clipsearch.db")
    migrate(engine)
    store = Store(engine)
    lock = WriterLock(folder)
    return vc.VectorCache(folder, store, lock), store, lock


@pytest.fixture
def library(tmp_path: Path):
    cache, store, lock = _open(tmp_path)
    store.set_meta({"model": "fake", "dim": str(DIM)})
    lock.acquire("test writer")
    yield tmp_path, cache, store
    lock.release()


def test_status_comes_from_saved_facts_until_changes_are_unsaved(library) -> None:
    folder, writer, _ = library
    _add(writer, 0, 500)
    writer.save()
    reader, _, _ = _open(folder)
    facts = reader.describe()
    assert facts["kind"] == "flat" and facts["vectors"] == 500 and facts["unsaved_changes"] == 0
    assert reader._index is None  # counted without reading the index file
    _add(writer, 500, 20)  # committed, not saved
    facts = reader.describe()
    assert facts["vectors"] == 520 and facts["unsaved_changes"] == 20  # the caught-up index


def test_library_growing_past_the_threshold_gets_an_approximate_index(library, monkeypatch):
    monkeypatch.setattr(vc, "APPROX_THRESHOLD", 3_000)
    folder, writer, store = library
    _add(writer, 0, 2_000)
    writer.save()
    assert writer.describe()["kind"] == "flat"
    reader, _, _ = _open(folder)
    query = _clustered(5, seed=12345)
    before = reader.index().search(query, 10)
    assert reader.index().kind == "flat"

    _add(writer, 2_000, 2_000)
    writer.save()  # a checkpoint past the threshold: trained beside, swapped in, saved
    assert writer.describe() | {"unsaved_changes": 0} == {
        "kind": "ivf",
        "vectors": 4_000,
        "nprobe": writer.index().nprobe,
        "file": writer.describe()["file"],
        "unsaved_changes": 0,
    }
    assert json.loads(store.get_meta(vc.GROWTH_META))["checked_at"] == 4_000
    # The reader notices the writer's new kind of index and loads it; its results hold the
    # new pictures and agree with exact search over everything.
    after = reader.index()
    assert after.kind == "ivf" and after.ntotal == 4_000
    ids, vecs = store.get_vectors(store.vector_ids(), DIM)
    exact = vecs @ query.T
    hits = after.search(query, 10)
    recall = np.mean(
        [
            len(set(h.ids.tolist()) & set(ids[np.argsort(-exact[:, q])[:10]].tolist())) / 10
            for q, h in enumerate(hits)
        ]
    )
    assert recall >= 0.9
    new_ids = set(ids[np.argsort(ids)][2_000:].tolist())  # the second batch
    assert any(set(h.ids.tolist()) & new_ids for h in hits)
    assert not any(set(h.ids.tolist()) & new_ids for h in before)

    # Not retrained at every checkpoint: only when the library has doubled again.
    trained = sorted(folder.glob("vectors-*.faiss"))[-1]
    _add(writer, 4_000, 100)
    writer.save()
    assert json.loads(store.get_meta(vc.GROWTH_META))["checked_at"] == 4_000
    assert writer.index().kind == "ivf" and writer.index().ntotal == 4_100
    assert trained.name != sorted(folder.glob("vectors-*.faiss"))[-1].name
