"""The FAISS wrapper: ids, deletions, filters, atomic files, damaged files, IVF recall."""

import numpy as np
import pytest

from clipsearch.store.faiss_index import VectorIndex, index_files


def unit(n, d=16, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_add_search_remove_by_id():
    vecs = unit(50)
    ids = np.arange(100, 150)
    idx = VectorIndex.empty(16)
    idx.add(ids, vecs)
    hits = idx.search(vecs[7], 3)[0]
    assert hits.ids[0] == 107 and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(hits.scores) == sorted(hits.scores, reverse=True)
    assert idx.remove([107, 999]) == 1
    assert 107 not in idx.search(vecs[7], 10)[0].ids
    assert idx.ntotal == 49 and sorted(idx.ids()) == [i for i in range(100, 150) if i != 107]


def test_filtered_search_returns_only_allowed():
    vecs = unit(200)
    idx = VectorIndex.empty(16)
    idx.add(np.arange(200), vecs)
    allowed = np.array([3, 50, 199])
    hits = idx.search(vecs[0], 10, allowed=allowed)[0]
    assert set(hits.ids) == {3, 50, 199}


@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize(
    "allowed",
    [[3, 10, 17], [0, 5, 4_000], [4_999], list(range(0, 5_000, 7))],
    ids=["low ids", "spread", "the last", "every 7th"],
)
def test_a_filter_allows_exactly_its_ids_whatever_the_index_holds(approximate, allowed):
    rng = np.random.default_rng(3)
    centers = unit(20, d=16, seed=8)
    data = centers[rng.integers(0, 20, 5_000)] + 0.2 * rng.standard_normal((5_000, 16))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    idx = VectorIndex.build(16, np.arange(5_000), data, approximate=approximate)
    allowed = np.array(allowed)
    for q in data[[0, 17, 4_321]]:
        hits = idx.search(q, 10, allowed=allowed)[0]
        want = allowed[np.argsort(-(data[allowed] @ q))][:10]
        assert hits.ids.tolist() == want.tolist()  # only allowed ids, exact among them


def test_save_load_and_damaged_files(tmp_path):
    vecs = unit(30)
    idx = VectorIndex.empty(16)
    idx.add(np.arange(30), vecs)
    first = idx.save(tmp_path, seq=5)
    idx.add(np.array([99]), unit(1, seed=9))
    second = idx.save(tmp_path, seq=9)
    assert index_files(tmp_path) == [second] and not first.exists()  # older files removed
    loaded = VectorIndex.load_latest(tmp_path)
    assert loaded.seq == 9 and loaded.ntotal == 31
    second.write_bytes(second.read_bytes()[:100])  # truncated
    assert VectorIndex.load_latest(tmp_path) is None
    assert not list(tmp_path.glob("*.tmp"))


def test_ivf_meets_recall_target_on_clustered_data():
    rng = np.random.default_rng(1)
    centers = unit(50, d=32, seed=2)
    data = centers[rng.integers(0, 50, 20_000)] + 0.15 * rng.standard_normal((20_000, 32))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(20_000) * 3
    ivf = VectorIndex.build(32, ids, data, approximate=True)
    exact = VectorIndex.build(32, ids, data, approximate=False)
    assert ivf.kind == "ivf" and exact.kind == "flat" and ivf.nprobe < 141
    queries = centers[rng.integers(0, 50, 100)] + 0.15 * rng.standard_normal((100, 32))
    got = ivf.search(queries.astype(np.float32), 10)
    want = exact.search(queries.astype(np.float32), 10)
    recall = np.mean([len(set(g.ids) & set(w.ids)) / 10 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.9
    ivf.remove(ids[:10])
    assert ivf.ntotal == 19_990 and not set(ids[:10]) & set(ivf.ids())


def test_blas_flat_search_matches_faiss_scan():
    vecs = unit(5_000, d=64, seed=4)
    idx = VectorIndex.empty(64)
    idx.add(np.arange(5_000) * 2, vecs)
    queries = unit(5, d=64, seed=5)
    ours = idx.search(queries, 10)  # few queries: BLAS over FAISS's storage
    faiss_scores, faiss_ids = idx._index.search(queries, 10)  # FAISS's own scan
    for hits, fi, fs in zip(ours, faiss_ids, faiss_scores, strict=True):
        assert list(hits.ids) == list(fi)
        assert np.allclose(hits.scores, fs, atol=1e-5)
    idx.remove([int(ours[0].ids[0])])  # the view is refreshed after changes
    assert idx.search(queries[0], 1)[0].ids[0] == ours[0].ids[1]


def test_structureless_data_keeps_exact_search():
    # Uniform random vectors: an IVF would have to scan most lists, so exact is kept.
    data = unit(5_000, d=64, seed=6)
    idx = VectorIndex.build(64, np.arange(5_000), data, approximate=True)
    assert idx.kind == "flat"


def clustered(n, d=16, seed=3):
    rng = np.random.default_rng(seed)
    centers = unit(20, d=d, seed=8)
    data = centers[rng.integers(0, 20, n)] + 0.2 * rng.standard_normal((n, d))
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


def test_a_mapped_ivf_answers_as_the_read_one_and_changes_only_in_memory(tmp_path):
    data = clustered(5_000)
    built = VectorIndex.build(16, np.arange(5_000), data, approximate=True)
    assert built.kind == "ivf"
    path = built.save(tmp_path, seq=7)
    on_disk = path.read_bytes()
    read = VectorIndex.load_latest(tmp_path)
    mapped = VectorIndex.load_latest(tmp_path, mapped=True)
    assert mapped.mapped and not read.mapped and mapped.seq == 7
    queries = data[[0, 99, 4_321]]
    for a, b in zip(mapped.search(queries, 10), read.search(queries, 10), strict=True):
        assert a.ids.tolist() == b.ids.tolist()
    assert sorted(mapped.ids()) == list(range(5_000))

    # Changing it copies the lists into memory first: no crash, the file stays as it was.
    assert mapped.remove([0, 1, 2]) == 3
    mapped.add(np.array([9_000]), data[:1])
    assert not mapped.mapped and mapped.ntotal == 4_998
    assert mapped.search(data[0], 1)[0].ids[0] == 9_000
    assert path.read_bytes() == on_disk
    mapped.save(tmp_path, seq=8)  # written whole, not as a reference to the old file
    again = VectorIndex.load_latest(tmp_path)
    assert again.seq == 8 and again.ntotal == 4_998 and not path.exists()


def test_mapping_a_flat_index_reads_it(tmp_path):
    idx = VectorIndex.empty(16)
    idx.add(np.arange(30), unit(30))
    idx.save(tmp_path, seq=3)
    loaded = VectorIndex.load_latest(tmp_path, mapped=True)
    assert loaded.kind == "flat" and not loaded.mapped
    loaded.add(np.array([99]), unit(1, seed=9))
    assert loaded.ntotal == 31 and loaded.search(unit(1, seed=9)[0], 1)[0].ids[0] == 99


def test_a_truncated_ivf_file_is_not_mapped(tmp_path):
    built = VectorIndex.build(16, np.arange(5_000), clustered(5_000), approximate=True)
    path = built.save(tmp_path, seq=7)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert VectorIndex.load_latest(tmp_path, mapped=True) is None


@pytest.mark.parametrize("approximate", [False, True])
def test_renumbering_gives_each_vector_its_new_id_and_drops_the_unmapped(approximate):
    data = clustered(5_000)
    idx = VectorIndex.build(16, np.arange(5_000), data, approximate=approximate)
    new_ids = np.arange(5_000, dtype=np.int64) * 10 + 7
    new_ids[[3, 4]] = -1  # rows the library does not have
    assert idx.renumber(new_ids) == 4_998
    assert sorted(idx.ids().tolist()) == sorted(new_ids[new_ids >= 0].tolist())
    hit = idx.search(data[100], 1)[0]
    assert hit.ids[0] == 1_007 and hit.scores[0] > 0.99  # (8-bit codes: close, not exact)
    assert 37 not in idx.search(data[3], 10)[0].ids


def test_a_mapped_index_reads_ahead_with_no_threads_of_its_own(tmp_path):
    import faiss

    VectorIndex.build(16, np.arange(5_000), clustered(5_000), approximate=True).save(
        tmp_path, seq=1
    )
    mapped = VectorIndex.load_latest(tmp_path, mapped=True)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(mapped._index).invlists)
    assert mapped.mapped and lists.prefetch_nthread == 0  # 32 threads per search otherwise


@pytest.mark.parametrize("nprobe", [1, 4])
def test_similar_pairs_by_list_products_find_what_a_range_search_finds(nprobe):
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((40, 32))
    x = centers[rng.integers(0, 40, 6_000)] + 0.35 * rng.standard_normal((6_000, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(6_000) * 3 + 1
    idx = VectorIndex.build(32, ids, x, approximate=True)
    assert idx.kind == "ivf"
    idx._index.nprobe = nprobe
    assert idx.codes == "8-bit" and 0 < idx.score_margin <= 0.02  # approximate scores
    by_id = {v: k for k, v in enumerate(ids.tolist())}
    exact = x @ x.T  # every pair, by brute force

    def rescored(a, b):  # as `dupes` does: candidates under the margin, scored exactly
        keep = a != b
        a, b = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
        scores = np.array([exact[by_id[p], by_id[q]] for p, q in zip(a, b, strict=True)])
        return a, b, scores

    a, b, s = idx.similar_pairs(0.9 - idx.score_margin)
    assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(a) and (a < b).all()
    _, _, scores = rescored(a, b)  # each pair once, smaller id first, its code score close
    assert np.abs(s - scores).max() < idx.score_margin  # what dupes relies on
    got = {(p, q) for p, q, e in zip(a.tolist(), b.tolist(), scores, strict=True) if e >= 0.9}
    i, j = np.nonzero(np.triu(exact >= 0.9, 1))
    truth = set(zip(ids[i].tolist(), ids[j].tolist(), strict=True))
    rows, other, _ = idx.range_search(x, 0.9 - idx.score_margin)  # per vector: the baseline
    low, high, scores = rescored(ids[rows], other)
    ranged = {
        (p, q) for p, q, e in zip(low.tolist(), high.tolist(), scores, strict=True) if e >= 0.9
    }
    recall, baseline = len(got & truth) / len(truth), len(ranged & truth) / len(truth)
    assert recall >= baseline - 0.002  # as good as a range search with the same nprobe
