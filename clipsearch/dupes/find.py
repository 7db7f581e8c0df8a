"""Duplicates: exact copies, near copies and very similar images -> groups with a keeper.

Three kinds of pair, each with a reason and a score:

- **exact**: the same bytes (content hash); score 1.
- **near**: perceptual hashes (`clipsearch.media.phash`, stored at index time) within
  `max_distance` bits of 128 (pHash + dHash, compared as-is and mirrored, so flipped copies
  match); score = 1 - bits/128. Found with a FAISS binary range search, not a double loop.
- **similar**: CLIP vectors with cosine similarity above `threshold` (FAISS range search);
  score = the cosine.

Pairs join into groups (union-find). Each group's keeper is the image with the most pixels,
then the largest file, then the oldest (modification time). Safe actions on groups live in
`clipsearch.dupes.quarantine`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from clipsearch.media import fs, phash
from clipsearch.store import features
from clipsearch.store.store import ImageRow, Store

DEFAULT_MAX_DISTANCE = 24  # bits of 128: precision 0.997 on real photos (docs/dupes.md)
DEFAULT_THRESHOLD = 0.95  # cosine for "similar"
_REASON_RANK = {"exact": 0, "near": 1, "similar": 2}
_QUERY_CHUNK = 8192

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class Pair:
    """Two images that match, why, and how closely (1 = identical)."""

    a: int
    b: int
    reason: str  # exact | near | similar
    score: float
    distance: int | None = None  # differing hash bits (near only)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["score"] = round(float(self.score), 4)
        return out


@dataclass(frozen=True)
class Member:
    """An image in a duplicate group (the `--json` shape)."""

    id: int
    path: str
    width: int | None
    height: int | None
    size: int
    mtime: float
    taken_at: str | None
    format: str | None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Group:
    """Images that are copies of one another: keep `keeper`, review `others`."""

    keeper: Member
    others: list[Member]
    pairs: list[Pair]

    @property
    def members(self) -> list[Member]:
        return [self.keeper, *self.others]

    @property
    def reasons(self) -> list[str]:
        return sorted({p.reason for p in self.pairs}, key=_REASON_RANK.__getitem__)

    def to_dict(self) -> dict:
        return {
            "keeper": self.keeper.to_dict(),
            "others": [m.to_dict() for m in self.others],
            "reasons": self.reasons,
            "pairs": [p.to_dict() for p in self.pairs],
        }


@dataclass
class DupesReport:
    """What `dupes` found. `to_dict()` is the stable `--json` shape."""

    groups: list[Group] = field(default_factory=list)
    images: int = 0
    pairs: dict[str, int] = field(default_factory=dict)
    hashed: int = 0  # images whose hashes were computed now (indexed before hashes existed)
    seconds: float = 0.0
    max_distance: int = DEFAULT_MAX_DISTANCE
    threshold: float | None = DEFAULT_THRESHOLD

    @property
    def duplicates(self) -> int:
        return sum(len(g.others) for g in self.groups)

    def to_dict(self) -> dict:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "images": self.images,
            "duplicates": self.duplicates,
            "pairs": self.pairs,
            "hashed": self.hashed,
            "seconds": round(self.seconds, 3),
            "max_distance": self.max_distance,
            "threshold": self.threshold,
        }


# --- finding pairs ---------------------------------------------------------------------


def exact_pairs(content: Iterable[tuple[int, str]]) -> list[Pair]:
    """Pairs of images with the same content hash (each copy paired with the first)."""
    by_hash: dict[str, list[int]] = {}
    for image_id, digest in content:
        by_hash.setdefault(digest, []).append(image_id)
    pairs = []
    for ids in by_hash.values():
        ids.sort()
        pairs.extend(Pair(ids[0], other, "exact", 1.0, 0) for other in ids[1:])
    return pairs


def near_pairs(ids: np.ndarray, hashes: np.ndarray, max_distance: int) -> list[Pair]:
    """Pairs whose pHash+dHash differ in at most `max_distance` of 128 bits (or mirrored).

    `hashes` is int64 (N, 4): phash, dhash, phash_mirror, dhash_mirror.
    """
    import faiss

    if len(ids) < 2 or max_distance < 0:
        return []
    codes = np.concatenate([phash.to_bytes(hashes[:, 0]), phash.to_bytes(hashes[:, 1])], axis=1)
    mirror = np.concatenate([phash.to_bytes(hashes[:, 2]), phash.to_bytes(hashes[:, 3])], axis=1)
    index = faiss.IndexBinaryFlat(2 * phash.HASH_BITS)
    index.add(codes)
    found = [_range(index, queries, max_distance + 1) for queries in (codes, mirror)]
    a, b, dist = _best_per_pair(found, len(ids), keep="min")
    total = 2 * phash.HASH_BITS
    return [
        Pair(int(ids[i]), int(ids[j]), "near", 1.0 - d / total, int(d))
        for i, j, d in zip(a.tolist(), b.tolist(), dist.tolist(), strict=True)
    ]


def _range(index, queries: np.ndarray, radius: float) -> tuple[np.ndarray, ...]:
    """(query row, found row, distance) arrays of a chunked FAISS range search."""
    rows, cols, dists = [], [], []
    for start in range(0, len(queries), _QUERY_CHUNK):
        chunk = np.ascontiguousarray(queries[start : start + _QUERY_CHUNK])
        lims, dist, found = index.range_search(chunk, radius)
        rows.append(np.repeat(np.arange(len(chunk)) + start, np.diff(lims).astype(np.int64)))
        cols.append(found.astype(np.int64))
        dists.append(dist)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(dists)


def _best_per_pair(
    results: list[tuple[np.ndarray, ...]], n: int, keep: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unordered pairs (a < b) from range-search results, each once with its best value."""
    rows = np.concatenate([r[0] for r in results])
    cols = np.concatenate([r[1] for r in results])
    vals = np.concatenate([r[2] for r in results])
    other = rows != cols
    a, b, vals = np.minimum(rows, cols)[other], np.maximum(rows, cols)[other], vals[other]
    order = np.lexsort((vals if keep == "min" else -vals, a * n + b))
    key = (a * n + b)[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    pick = order[first]
    return a[pick], b[pick], vals[pick]


def similar_pairs(ids: np.ndarray, vectors: np.ndarray, threshold: float) -> list[Pair]:
    """Pairs whose unit vectors have cosine similarity above `threshold` (FAISS range search).

    Exhaustive up to 50,000 vectors; an IVF index (nprobe 16) beyond, so 100k+ stays fast.
    """
    import faiss

    n, dim = vectors.shape if vectors.ndim == 2 else (0, 0)
    if n < 2:
        return []
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n <= 50_000:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        index.train(vectors[rng.choice(n, min(n, 64 * nlist), replace=False)])
        index.nprobe = 16
    index.add(vectors)
    a, b, sims = _best_per_pair([_range(index, vectors, float(threshold))], n, keep="max")
    return [
        Pair(int(ids[i]), int(ids[j]), "similar", min(1.0, float(x)))
        for i, j, x in zip(a.tolist(), b.tolist(), sims.tolist(), strict=True)
    ]


# --- groups -----------------------------------------------------------------------------


def merge_pairs(pairs: Iterable[Pair]) -> list[Pair]:
    """One pair per two images: the strongest reason (exact > near > similar)."""
    best: dict[tuple[int, int], Pair] = {}
    for p in pairs:
        key = (min(p.a, p.b), max(p.a, p.b))
        old = best.get(key)
        if old is None or (_REASON_RANK[p.reason], -p.score) < (
            _REASON_RANK[old.reason],
            -old.score,
        ):
            best[key] = Pair(key[0], key[1], p.reason, p.score, p.distance)
    return sorted(best.values(), key=lambda p: (p.a, p.b))


def connected_groups(pairs: Iterable[Pair]) -> list[list[int]]:
    """Union-find: image ids joined by pairs, each group sorted, groups by first id."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for p in pairs:
        ra, rb = find(p.a), find(p.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(find(x), []).append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def keeper_key(m: Member) -> tuple:
    """Sort key: the keeper first (most pixels, then largest file, then oldest, then id)."""
    return (-m.pixels, -m.size, m.mtime, m.id)


def member(row: ImageRow) -> Member:
    return Member(
        id=row.id,
        path=row.path,
        width=row.width,
        height=row.height,
        size=row.size,
        mtime=row.mtime_ns / 1e9,
        taken_at=row.taken_at,
        format=row.format,
    )


def build_groups(pairs: Sequence[Pair], rows: dict[int, ImageRow]) -> list[Group]:
    """Groups with keepers from merged pairs; images missing from `rows` are left out."""
    pairs = [p for p in pairs if p.a in rows and p.b in rows]
    by_root: dict[int, list[Pair]] = {}
    groups = connected_groups(pairs)
    first = {i: g[0] for g in groups for i in g}
    for p in pairs:
        by_root.setdefault(first[p.a], []).append(p)
    out = []
    for g in groups:
        members = sorted((member(rows[i]) for i in g), key=keeper_key)
        out.append(Group(members[0], members[1:], by_root.get(g[0], [])))
    out.sort(key=lambda g: (-len(g.others), g.keeper.path))
    return out


# --- the whole search -------------------------------------------------------------------


def ensure_hashes(
    store: Store, *, save: bool = True, progress: ProgressFn | None = None
) -> tuple[int, dict[int, tuple[int, int, int, int]]]:
    """Compute perceptual hashes for images indexed before they existed.

    Returns (how many were computed, the hashes when not saved). Unreadable files are
    skipped (they simply cannot be near-duplicates).
    """
    from clipsearch.errors import UnreadableImage
    from clipsearch.media.images import open_image

    todo = features.missing_hashes(store)
    computed: dict[int, tuple[int, int, int, int]] = {}
    for done, (image_id, path) in enumerate(todo, 1):
        try:
            img, _ = open_image(path, draft_size=224)
            computed[image_id] = phash.compute(img).as_tuple()
        except UnreadableImage:
            pass
        if progress and (done % 16 == 0 or done == len(todo)):
            progress("hash", done, len(todo))
        if save and len(computed) >= 500:
            features.set_hashes(store, computed)
            computed = {}
    if save:
        features.set_hashes(store, computed)
        computed = {}
    return len(todo), computed


def find_duplicates(
    store: Store,
    *,
    dim: int | None,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    threshold: float | None = DEFAULT_THRESHOLD,
    exclude: Sequence[str] = (),
    extra_hashes: dict[int, tuple[int, int, int, int]] | None = None,
) -> DupesReport:
    """Every duplicate group in the library (images under `exclude` folders left out)."""
    started = time.perf_counter()
    pairs = exact_pairs(features.all_content_hashes(store))
    counts = {"exact": len(pairs), "near": 0, "similar": 0}
    ids, hashes = features.all_hashes(store)
    if extra_hashes:
        ids = np.concatenate([ids, np.fromiter(extra_hashes, np.int64)])
        hashes = np.concatenate([hashes, np.asarray(list(extra_hashes.values()), np.int64)])
    near = near_pairs(ids, hashes.reshape(-1, 4), max_distance)
    counts["near"] = len(near)
    pairs += near
    if threshold is not None and dim is not None:
        parts = list(store.iter_vectors(dim))
        if parts:
            vids = np.concatenate([p[0] for p in parts])
            similar = similar_pairs(vids, np.concatenate([p[1] for p in parts]), threshold)
            counts["similar"] = len(similar)
            pairs += similar
    merged = merge_pairs(pairs)
    rows = store.get_rows({i for p in merged for i in (p.a, p.b)})
    excluded = [fs.normalize_root(e) for e in exclude]
    rows = {i: r for i, r in rows.items() if not any(fs.is_under(r.path, e) for e in excluded)}
    report = DupesReport(
        groups=build_groups(merged, rows),
        images=store.counts()["images"],
        pairs=counts,
        max_distance=max_distance,
        threshold=threshold,
    )
    report.seconds = time.perf_counter() - started
    return report
