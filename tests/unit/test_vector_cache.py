"""The vector cache over a real store: status from saved facts, growth to an approximate index
at a checkpoint, and a reader in another connection following the writer's new index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipsearch.store import vector_cache as vc
from clipsearch.store.db import migrate, open_database
from clipsearch.store.faiss_index import rerank
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
        "compressed": True,  # 8-bit codes, whose hits searches re-rank
        "codes": "8-bit",
        "unsaved_changes": 0,
    }
    assert json.loads(store.get_meta(vc.GROWTH_META))["checked_at"] == 4_000
    # The reader notices the writer's new kind of index and loads it; its results hold the
    # new pictures and agree with exact search over everything.
    after = reader.index()
    assert after.kind == "ivf" and after.ntotal == 4_000
    ids, vecs = store.get_vectors(store.vector_ids(), DIM)
    exact = vecs @ query.T
    depth = after.rerank_depth()  # 8-bit codes: hits re-ranked with the stored vectors
    assert depth > 1
    row_of = {int(i): r for r, i in enumerate(ids)}
    hits = [
        rerank(h.ids, vecs[[row_of[int(i)] for i in h.ids]] @ q, 10)[0]
        for h, q in zip(after.search(query, 10 * depth), query, strict=True)
    ]
    recall = np.mean(
        [
            len(set(h.tolist()) & set(ids[np.argsort(-exact[:, q])[:10]].tolist())) / 10
            for q, h in enumerate(hits)
        ]
    )
    assert recall >= 0.9
    new_ids = set(ids[np.argsort(ids)][2_000:].tolist())  # the second batch
    assert any(set(h.tolist()) & new_ids for h in hits)
    assert not any(set(h.ids.tolist()) & new_ids for h in before)

    # Not retrained at every checkpoint: only when the library has doubled again.
    trained = sorted(folder.glob("vectors-*.faiss"))[-1]
    _add(writer, 4_000, 100)
    writer.save()
    assert json.loads(store.get_meta(vc.GROWTH_META))["checked_at"] == 4_000
    assert writer.index().kind == "ivf" and writer.index().ntotal == 4_100
    assert trained.name != sorted(folder.glob("vectors-*.faiss"))[-1].name


def test_a_reader_that_replays_many_changes_saves_them_when_nobody_writes(tmp_path: Path):
    writer, store, lock = _open(tmp_path)
    store.set_meta({"model": "fake", "dim": str(DIM)})
    lock.acquire("test writer")
    _add(writer, 0, 300)
    writer.save()
    _add(writer, 300, vc.SAVE_AFTER_REPLAY + 100)  # committed by a writer killed before saving
    busy_reader, _, _ = _open(tmp_path)
    assert busy_reader.index().ntotal == 2_400  # replayed, but the writer holds the lock
    assert busy_reader.unsaved_changes() == vc.SAVE_AFTER_REPLAY + 100
    lock.release()

    reader, _, _ = _open(tmp_path)
    assert reader.index().ntotal == 2_400
    assert reader.unsaved_changes() == 0  # it took the free lock and saved
    assert not reader._lock.held
    fresh, _, _ = _open(tmp_path)
    assert fresh.describe() == {
        "kind": "flat",
        "vectors": 2_400,
        "nprobe": None,
        "file": sorted(tmp_path.glob("vectors-*.faiss"))[-1].name,
        "compressed": False,
        "codes": "float32",
        "unsaved_changes": 0,
    }
    assert fresh.store.log_since(fresh.index().seq) == []

    # A long-lived reader following commits one by one leaves saving to the writer's
    # checkpoints: never a save on its search path.
    lock.acquire("test writer")
    _add(writer, 5_000, vc.SAVE_AFTER_REPLAY + 100)
    lock.release()
    assert reader.index().ntotal == 4_500
    assert reader.unsaved_changes() == vc.SAVE_AFTER_REPLAY + 100


def test_similar_pairs_go_through_the_approximate_index(library, monkeypatch):
    from clipsearch.dupes import find

    monkeypatch.setattr(vc, "APPROX_THRESHOLD", 3_000)
    monkeypatch.setattr(find, "_QUERY_CHUNK", 512)  # several chunks, the index held per chunk
    _, writer, store = library
    _add(writer, 0, 3_500)
    ids, vecs = store.get_vectors(store.vector_ids()[:60], DIM)
    twins = vecs + 0.002 * np.random.default_rng(5).standard_normal(vecs.shape)
    twins = (twins / np.linalg.norm(twins, axis=1, keepdims=True)).astype(np.float32)
    rows = [NewImage(f"/twin/{i}.jpg", 1, 1, f"t{i}", twins[k]) for k, i in enumerate(ids)]
    writer.apply(Changes(inserts=rows))
    writer.save()
    assert writer.index().kind == "ivf"

    through = find.find_duplicates(store, dim=DIM, threshold=0.999, reading=writer.reading)
    built_here = find.find_duplicates(store, dim=DIM, threshold=0.999)
    assert through.calibration.used and built_here.calibration.used
    pairs = {(p.a, p.b) for g in through.similar_groups for p in g.pairs}
    assert pairs == {(p.a, p.b) for g in built_here.similar_groups for p in g.pairs}
    assert len(pairs) == 60  # each picture with its twin, nothing else
    paths = store.get_rows({i for pair in pairs for i in pair})
    assert {paths[max(p)].path for p in pairs} == {f"/twin/{i}.jpg" for i in ids}
    assert {min(p) for p in pairs} == set(ids.tolist())
    assert through.calibration.pictures == 3_560


def test_the_log_keeps_recent_entries_so_a_reader_a_little_behind_replays(library, monkeypatch):
    monkeypatch.setattr(vc, "LOG_KEPT", 300)
    folder, writer, store = library
    _add(writer, 0, 1_000)
    writer.save()
    reader, _, _ = _open(folder)
    assert reader.index().ntotal == 1_000
    loaded = reader._index
    _add(writer, 1_000, 200)
    writer.save()  # the reader's position is within the kept entries
    assert len(store.log_since(0)) == 300
    assert reader.index().ntotal == 1_200 and reader._index is loaded  # replayed, not reloaded
    _add(writer, 1_200, 500)
    writer.save()  # now it is behind the kept entries: it loads the newest file
    assert reader.index().ntotal == 1_700 and reader._index is not loaded
    assert reader.unsaved_changes() == 0 and writer.describe()["unsaved_changes"] == 0


def test_a_long_lived_reader_makes_room_in_a_loaded_ivf_and_keeps_its_answers(library, monkeypatch):
    monkeypatch.setattr(vc, "APPROX_THRESHOLD", 3_000)
    folder, writer, store = library
    _add(writer, 0, 3_200)
    writer.save()
    plain, _, _ = _open(folder)
    server, _, _ = _open(folder)
    server.long_lived()
    query = _clustered(4, seed=777)
    before = plain.index().search(query, 10)
    grown = server.index()  # loaded, then room made in each list
    assert grown.kind == "ivf" and grown.ntotal == 3_200
    for a, b in zip(before, grown.search(query, 10), strict=True):
        assert a.ids.tolist() == b.ids.tolist() and np.allclose(a.scores, b.scores)
    ids = grown.ids()
    assert len(ids) == len(set(ids.tolist())) == 3_200  # nothing added by making room
    _add(writer, 3_200, 300)  # commits the long-lived reader follows
    after = server.index()
    assert after is grown and after.ntotal == 3_500
    assert set(after.ids().tolist()) == set(store.vector_ids().tolist())


def test_making_room_in_a_flat_index_keeps_its_answers(library):
    folder, writer, store = library
    _add(writer, 0, 1_500)
    writer.save()
    plain, _, _ = _open(folder)
    server, _, _ = _open(folder)
    server.long_lived()
    query = _clustered(3, seed=4242)
    expected = plain.index().search(query, 10)
    got = server.index()
    assert got.kind == "flat" and got.ntotal == 1_500
    for a, b in zip(expected, got.search(query, 10), strict=True):
        assert a.ids.tolist() == b.ids.tolist() and np.allclose(a.scores, b.scores)
    _add(writer, 1_500, 50)
    assert server.index().ntotal == 1_550
    assert set(server.index().ids().tolist()) == set(store.vector_ids().tolist())
    newest = int(store.vector_ids().max())  # a picture of the second batch finds itself
    _, vec = store.get_vectors([newest], DIM)
    hit = server.index().search(vec, 1)[0]
    assert hit.ids[0] == newest and hit.scores[0] > 0.999


def test_a_one_off_reader_maps_the_ivf_file_and_still_follows_commits(library, monkeypatch):
    monkeypatch.setattr(vc, "APPROX_THRESHOLD", 3_000)
    folder, writer, store = library
    _add(writer, 0, 3_200)
    writer.save()
    reader, _, _ = _open(folder)
    server, _, _ = _open(folder)
    server.long_lived()
    query = _clustered(4, seed=778)
    mapped = reader.index()
    assert mapped.kind == "ivf" and mapped.mapped  # opened without reading the lists
    assert not server.index().mapped  # a long-lived process reads them, with room to grow
    for a, b in zip(mapped.search(query, 10), server.index().search(query, 10), strict=True):
        assert a.ids.tolist() == b.ids.tolist() and np.allclose(a.scores, b.scores)
    (path,) = vc.index_files(folder)
    on_disk = path.read_bytes()
    _add(writer, 3_200, 300)  # replaying copies the lists into memory; the file is untouched
    after = reader.index()
    assert not after.mapped and after.ntotal == 3_500
    assert set(after.ids().tolist()) == set(store.vector_ids().tolist())
    assert path.read_bytes() == on_disk


def test_a_mapped_index_becomes_writable_when_the_process_turns_long_lived(library, monkeypatch):
    monkeypatch.setattr(vc, "APPROX_THRESHOLD", 3_000)
    folder, writer, _ = library
    _add(writer, 0, 3_200)
    writer.save()
    reader, _, _ = _open(folder)
    assert reader.index().mapped
    reader.long_lived()
    assert not reader.index().mapped and reader.index().ntotal == 3_200


def test_searches_of_the_8_bit_index_answer_with_the_stored_vectors(library, monkeypatch):
    """The library's IVF keeps one byte per dimension (half the disk and memory of float16);
    a search re-ranks its hits with the stored vectors: the order and scores of exact search
    over what the database holds, with a filter or without."""
    from clipsearch.query.search import Searcher

    monkeypatch.setattr(vc, "APPROX_THRESHOLD", 3_000)
    folder, writer, store = library
    _add(writer, 0, 4_000)
    writer.save()
    index = writer.index()
    assert index.kind == "ivf" and index.codes == "8-bit" and index.compressed
    file = sorted(folder.glob("vectors-*.faiss"))[-1]
    assert file.stat().st_size < 4_000 * (DIM + 8) + 64 * DIM * 4 + 8_192  # 1 byte a dimension

    ids, vecs = store.get_vectors(store.vector_ids(), DIM)
    searcher = Searcher(store, writer.reading, lambda: None, DIM)
    allowed = np.sort(ids[::5])
    exact_top, found_exactly = 0, 0
    for q in _clustered(20, seed=777):
        for among in (None, allowed):
            pool = ids if among is None else allowed
            scores = vecs[np.searchsorted(ids, pool)] @ q
            want = pool[np.argsort(-scores, kind="stable")][:10]
            got = searcher.nearest(q, 10, among)
            exact_top += got.ids[0] == want[0]
            found_exactly += len(set(got.ids.tolist()) & set(want.tolist()))
            stored = vecs[np.searchsorted(ids, got.ids)] @ q  # the scores are the stored ones
            np.testing.assert_allclose(got.scores, stored, atol=1e-6)
            assert list(got.scores) == sorted(got.scores, reverse=True)
    assert exact_top == 40 and found_exactly >= 0.97 * 400


def test_an_index_of_float16_codes_gets_8_bit_codes_at_the_next_checkpoint(library, monkeypatch):
    """A library indexed before the IVF kept 8-bit codes (or one that adopted `spark index`'s
    float16 index): the writer's next checkpoint rebuilds it once, at half the size."""
    from clipsearch.store.faiss_index import build_ivf

    monkeypatch.setattr(vc, "APPROX_THRESHOLD", 3_000)
    folder, writer, store = library
    _add(writer, 0, 4_000)
    ids = store.vector_ids()
    _, vecs = store.get_vectors(ids, DIM)
    old = build_ivf(DIM, len(ids), (ids, vecs), lambda: iter([(ids, vecs)]), codes="float16")
    writer.adopt(old)
    wide = sorted(folder.glob("vectors-*.faiss"))[-1].stat().st_size
    assert writer.index().codes == "float16" and not writer.index().compressed
    assert writer.describe()["codes"] == "float16"

    _add(writer, 4_000, 10)  # not a doubling: only the codes ask for the rebuild
    writer.save()
    assert writer.index().codes == "8-bit" and writer.index().ntotal == 4_010
    assert writer.describe()["codes"] == "8-bit"
    narrow = sorted(folder.glob("vectors-*.faiss"))[-1].stat().st_size
    assert narrow < 0.75 * wide
    _add(writer, 5_000, 10)
    writer.save()  # once: no more rebuilds until the library doubles
    assert json.loads(store.get_meta(vc.GROWTH_META))["checked_at"] == 4_010
    assert writer.index().codes == "8-bit" and writer.index().ntotal == 4_020


def test_a_following_server_replays_other_processes_commits_before_it_is_asked(library):
    """`serve` follows commits in the background: another process's commit is in the
    loaded index within moments, with no search to trigger the replay."""
    import time

    folder, writer, _ = library
    _add(writer, 0, 500)
    writer.save()
    reader, reader_store, _ = _open(folder)
    reader.long_lived(follow=True)
    try:
        assert reader.index().ntotal == 500
        loaded = reader._index
        _add(writer, 500, 300)  # another connection commits (the writer's process)
        deadline = time.monotonic() + 10
        while reader._index.ntotal != 800 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader._index is loaded and reader._index.ntotal == 800  # replayed in place
        assert reader._seen_version == reader_store.data_version()  # a search finds it done
    finally:
        reader.stop_following()
    assert reader._follower is None
    _add(writer, 800, 10)
    time.sleep(3 * vc.FOLLOW_EVERY)
    assert reader._index.ntotal == 800  # stopped: nothing follows any more
    assert reader.index().ntotal == 810  # (a search still catches up itself)
