"""Duplicate grouping: pairs from FAISS range searches, union-find groups, the keeper rule."""

from __future__ import annotations

import numpy as np

from clipsearch.dupes import find as dedup
from clipsearch.dupes.find import Member, Pair


def _m(i: int, w: int = 100, h: int = 100, size: int = 1000, mtime: float = 0.0) -> Member:
    return Member(i, f"/p/{i}.jpg", w, h, size, mtime, None, "JPEG")


def test_groups_are_transitive_and_separate():
    pairs = [Pair(1, 2, "near", 0.9), Pair(2, 3, "near", 0.9), Pair(7, 8, "exact", 1.0)]
    assert dedup.connected_groups(pairs) == [[1, 2, 3], [7, 8]]
    assert dedup.connected_groups([]) == []


def test_strongest_reason_wins_for_a_pair():
    merged = dedup.merge_pairs(
        [
            Pair(2, 1, "similar", 0.99),
            Pair(1, 2, "near", 0.8),
            Pair(1, 2, "exact", 1.0),
            Pair(3, 4, "similar", 0.96),
            Pair(4, 3, "similar", 0.97),
        ]
    )
    assert [(p.a, p.b, p.reason) for p in merged] == [(1, 2, "exact"), (3, 4, "similar")]
    assert merged[1].score == 0.97


def test_keeper_most_pixels_then_largest_file_then_oldest():
    def keeper(*members: Member) -> int:
        return sorted(members, key=dedup.keeper_key)[0].id

    assert keeper(_m(1, 100, 100), _m(2, 200, 100), _m(3, 50, 50, size=10**6)) == 2
    assert keeper(_m(1, size=500), _m(2, size=900), _m(3, size=700)) == 2
    assert keeper(_m(1, mtime=30.0), _m(2, mtime=10.0), _m(3, mtime=20.0)) == 2


def test_near_pairs_find_close_and_mirrored_hashes_only():
    rng = np.random.default_rng(0)
    base = rng.integers(-(2**63), 2**63 - 1, size=(3, 4), dtype=np.int64)
    near = base[0].copy()
    near[0] ^= 0b111  # 3 bits off in the pHash
    near[1] ^= 0b11  # 2 bits off in the dHash
    mirrored = np.array([base[1][2], base[1][3], base[1][0], base[1][1]], dtype=np.int64)
    hashes = np.vstack([base, near, mirrored])
    ids = np.array([10, 11, 12, 13, 14])
    pairs = {(p.a, p.b): p for p in dedup.near_pairs(ids, hashes, max_distance=8)}
    assert set(pairs) == {(10, 13), (11, 14)}
    assert pairs[(10, 13)].distance == 5
    assert pairs[(10, 13)].score == 1 - 5 / 128
    assert pairs[(11, 14)].distance == 0
    assert dedup.near_pairs(ids, hashes, max_distance=4).__len__() == 1


def test_similar_pairs_by_cosine_threshold():
    v = np.array([[1, 0, 0], [0.99, 0.141, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    pairs = dedup.similar_pairs(np.array([1, 2, 3, 4]), v, threshold=0.95)
    assert [(p.a, p.b, p.reason) for p in pairs] == [(1, 2, "similar")]
    assert 0.98 < pairs[0].score <= 1.0


def test_exact_pairs_join_every_copy():
    pairs = dedup.exact_pairs([(5, "h1"), (2, "h1"), (9, "h1"), (3, "h2")])
    assert {(p.a, p.b) for p in pairs} == {(2, 5), (2, 9)}
    assert all(p.reason == "exact" and p.score == 1.0 for p in pairs)
