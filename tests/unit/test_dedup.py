"""Duplicate grouping: pairs from FAISS range searches, union-find groups of copies, star
groups of similar pictures, the keeper rule and the model calibration."""

from __future__ import annotations

import numpy as np

from clipsearch.dupes import find as dedup
from clipsearch.dupes.find import Member, Pair
from clipsearch.media import phash
from clipsearch.store.store import ImageRow


def _m(
    i: int,
    w: int = 100,
    h: int = 100,
    size: int = 1000,
    mtime: float = 0.0,
    fmt: str = "JPEG",
    taken_at: str | None = None,
) -> Member:
    return Member(i, f"/p/{i}.{fmt.lower()}", w, h, size, mtime, taken_at, fmt)


def _row(i: int, digest: str = "", w: int = 100, mtime: float = 0.0) -> ImageRow:
    return ImageRow(
        i,
        f"/p/{i}.jpg",
        1000,
        int(mtime * 1e9),
        digest or f"h{i}",
        w,
        w,
        "JPEG",
        None,
        "photos",
        0.0,
        0.0,
        True,
    )


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


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


def _keeper(*members: Member) -> int:
    return sorted(members, key=dedup.keeper_key)[0].id


def test_keeper_most_pixels_then_the_original():
    # Most pixels first, whatever the file size.
    assert _keeper(_m(1, 100, 100), _m(2, 200, 100), _m(3, 50, 50, size=10**6)) == 2
    # Equal pixels: the earliest file, even when a later re-save is larger.
    assert _keeper(_m(1, mtime=30.0, size=9000), _m(2, mtime=10.0), _m(3, mtime=20.0)) == 2
    # Within 2 s, of one format: still the earliest; at the same time, the larger file.
    assert _keeper(_m(1, size=500, mtime=1.5), _m(2, size=900, mtime=1.9), _m(3, mtime=1.0)) == 3
    assert _keeper(_m(1, size=500), _m(2, size=900), _m(3, size=700)) == 2
    # A camera's capture date outweighs the modification time (exports often drop EXIF).
    dated = _m(2, mtime=500.0, taken_at="2019-07-01T10:00:00")
    assert _keeper(_m(1, mtime=10.0), dated) == 2


def test_keeper_is_not_a_png_reencode_of_a_jpeg():
    jpeg = _m(1, 4000, 3000, size=3_000_000, mtime=100.0, fmt="JPEG")
    png = _m(2, 4000, 3000, size=20_000_000, mtime=100.5, fmt="PNG")  # converted with it
    webp = _m(3, 4000, 3000, size=4_000_000, mtime=101.0, fmt="WEBP")
    assert _keeper(png, webp, jpeg) == 1
    png_first = _m(2, 4000, 3000, size=20_000_000, mtime=100.0, fmt="PNG")  # same 2 s
    assert _keeper(png_first, _m(1, 4000, 3000, mtime=101.5, fmt="JPEG")) == 1
    later_png = _m(2, 4000, 3000, size=20_000_000, mtime=5000.0, fmt="PNG")
    assert _keeper(later_png, jpeg) == 1
    # A PNG that was there first (a screenshot) is the original of its JPEG version.
    screenshot = _m(4, 4000, 3000, size=9_000_000, mtime=10.0, fmt="PNG")
    assert _keeper(jpeg, screenshot) == 4


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


def _structured_codes(n_photos: int, copies: int, far: int, seed: int) -> np.ndarray:
    """Hash codes laid out as a library's are: photos of a few kinds of scene (alike, not
    copies), close copies of each (1-20 bits off, a third mirrored), and many more pictures
    derived from the photos but far from all of them (28-40 of 128 bits off)."""
    rng = np.random.default_rng(seed)
    scenes = rng.integers(-(2**63), 2**63 - 1, size=(30, 4), dtype=np.int64)

    def flip(rows: np.ndarray, low: int, high: int) -> np.ndarray:
        bits = np.unpackbits(rows.copy().view(np.uint8), axis=1)
        for row in bits:
            pos = rng.choice(128, int(rng.integers(low, high + 1)), replace=False)
            row[pos] ^= 1
            row[pos + 128] ^= 1
        return np.packbits(bits, axis=1).view(np.int64)

    photos = flip(scenes[rng.integers(0, 30, n_photos)], 30, 40)  # alike scenes, not copies
    close = flip(np.repeat(photos, copies, axis=0), 1, 20)
    mirrored = close[::3][:, [2, 3, 0, 1]]
    close[::3] = mirrored
    derived = flip(photos[rng.integers(0, n_photos, far)], 28, 40)
    return np.concatenate([photos, close, derived])


def test_near_pairs_beyond_the_exhaustive_size_find_what_exhaustive_search_finds(monkeypatch):
    hashes = _structured_codes(n_photos=300, copies=4, far=6_000, seed=3)
    ids = np.arange(len(hashes)) + 100
    exhaustive = {(p.a, p.b): p.distance for p in dedup.near_pairs(ids, hashes, 24)}
    monkeypatch.setattr(dedup, "NEAR_EXHAUSTIVE_UP_TO", 1_000)
    codes = np.concatenate([phash.to_bytes(hashes[:, 0]), phash.to_bytes(hashes[:, 1])], axis=1)
    mirror = np.concatenate([phash.to_bytes(hashes[:, 2]), phash.to_bytes(hashes[:, 3])], axis=1)
    index = dedup.hash_index(codes, mirror, 24)
    assert type(index).__name__ == "IndexBinaryIVF" and index.nprobe < index.nlist
    inverted = {(p.a, p.b): p.distance for p in dedup.near_pairs(ids, hashes, 24)}
    assert len(exhaustive) >= 300 * 4  # every photo with its 4 copies, at least
    assert set(inverted) <= set(exhaustive)  # every pair is checked: nothing false
    assert len(inverted) >= 0.99 * len(exhaustive)
    assert all(inverted[k] == exhaustive[k] for k in inverted)


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


def test_similar_groups_are_stars_not_chains():
    # Ten pictures on an arc, each 0.97 from the next: one loose link after another.
    step = np.arccos(0.97)
    angles = np.arange(10) * step
    vectors = _unit(np.stack([np.cos(angles), np.sin(angles), np.zeros(10)], axis=1))
    ids = np.arange(1, 11)
    pairs = dedup.similar_pairs(ids, vectors, threshold=0.95)
    assert dedup.connected_groups(pairs) == [list(range(1, 11))]  # union-find chains them all
    rows = {int(i): _row(int(i), w=100 + int(i)) for i in ids}  # id 10: most pixels
    groups = dedup.star_groups(pairs, rows)
    cos = {(int(a), int(b)): float(vectors[a - 1] @ vectors[b - 1]) for a in ids for b in ids}
    for g in groups:
        assert g.kind == "similar"
        assert g.keeper.id == min((m for m in g.members), key=dedup.keeper_key).id
        for m in g.others:
            assert cos[(g.keeper.id, m.id)] > 0.95  # every member is similar to the keeper
            assert g.links[m.id].match == g.keeper.id and g.links[m.id].reason == "similar"
    assert max(len(g.members) for g in groups) <= 3  # a centre and its two neighbours
    grouped = [m.id for g in groups for m in g.members]
    assert len(grouped) == len(set(grouped))  # each picture in one group at most
    assert (groups[0].keeper.id, sorted(m.id for m in groups[0].others)) == (10, [9])


def test_a_byte_identical_copy_is_labelled_exact():
    keeper, copy, twin = _m(1, 200, 200), _m(2), _m(3)
    pairs = [Pair(1, 2, "near", 1 - 2 / 128, 2), Pair(1, 3, "near", 1 - 2 / 128, 2)]
    pairs.append(Pair(2, 3, "exact", 1.0, 0))
    links = dedup.copy_links([keeper, copy, twin], pairs, {1: "a", 2: "b", 3: "b"})
    assert (links[2].reason, links[2].score, links[2].match) == ("exact", 1.0, 3)
    assert (links[3].reason, links[3].match) == ("exact", 2)
    near_only = dedup.copy_links([keeper, copy], pairs[:1], {1: "a", 2: "b"})
    assert (near_only[2].reason, near_only[2].match) == ("near", 1)


def test_calibration_refuses_a_model_that_cannot_tell_pictures_apart():
    rng = np.random.default_rng(1)
    # A degenerate model: every picture near one direction (all cosines > 0.97).
    crowded = _unit(np.ones(64) + 0.08 * rng.standard_normal((40, 64)))
    assert (crowded @ crowded.T).min() > 0.97
    cal = dedup.calibrate(crowded, 0.95)
    assert not cal.used and cal.nn_median > 0.95 and "cannot tell" in cal.reason
    assert cal.pictures == 40
    # A model that spreads pictures out, with a few real look-alikes: used as asked.
    spread = _unit(rng.standard_normal((40, 64)))
    spread[1] = _unit(spread[0] + 0.1 * rng.standard_normal(64))
    cal = dedup.calibrate(spread, 0.95)
    assert cal.used and cal.reason is None and cal.nn_median < 0.5
    # A threshold above the crowd is the user's explicit choice.
    assert dedup.calibrate(crowded, 0.9999).used


def test_calibration_of_a_few_pictures_judges_the_typical_pair():
    rng = np.random.default_rng(2)
    two_alike = _unit(rng.standard_normal((3, 32)))
    two_alike[1] = _unit(two_alike[0] + 0.05 * rng.standard_normal(32))
    # Two of three are look-alikes: half the library, but a typical pair is far apart.
    assert dedup.calibrate(two_alike, 0.95).used
    crowded = _unit(np.ones(32) + 0.05 * rng.standard_normal((3, 32)))
    cal = dedup.calibrate(crowded, 0.95)
    assert not cal.used and cal.pair_median > 0.95
