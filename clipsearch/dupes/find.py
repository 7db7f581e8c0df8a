"""Duplicates: exact copies, near copies and very similar images -> groups with a keeper.

Three kinds of pair, each with a reason and a score:

- **exact**: the same bytes (content hash); score 1.
- **near**: perceptual hashes (`clipsearch.media.phash`, stored at index time) within
  `max_distance` bits of 128 (pHash + dHash, compared as-is and mirrored, so flipped copies
  match); score = 1 - bits/128. Found with FAISS binary range searches: exhaustive for small
  libraries, through a binary inverted file tuned against exhaustive search beyond
  (`hash_index`), so a million pictures take seconds, not the hours of all pairs.
- **similar**: CLIP vectors with cosine similarity above `threshold` (FAISS range search);
  score = the cosine.

Two kinds of group (`Group.kind`):

- **copies**: exact and near pairs joined transitively (union-find). A copy of a copy is a
  copy; only exact and near pairs ever join these groups.
- **similar**: pictures that look alike to the model but are not copies. These are *not*
  joined transitively (one loose link would chain a whole library into one group): each
  group is a star around its keeper, so every member is similar to the keeper itself.
  Only one picture per group of copies (its keeper) takes part.

Before any similar pair is used, the threshold is checked against the model
(`calibrate`): when a typical picture of this library already has a neighbour at or above
it, the model cannot tell the pictures apart at that threshold, and similar pairs are left
out with a reason (`DupesReport.calibration`, `DupesReport.warnings`).

The keeper of a group (`keeper_key`) is the picture most likely to be the original: the
most pixels; at equal pixels the one that still carries the camera's capture date (EXIF),
then the earliest file (modification time; within the same 2 seconds a camera format, JPEG
or HEIF, over a conversion format such as PNG or WebP), then the largest file, then the
smallest id. Safe actions on groups live in `clipsearch.dupes.quarantine`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from clipsearch.media import fs, phash
from clipsearch.store import features
from clipsearch.store.store import ImageRow, Store

if TYPE_CHECKING:
    from clipsearch.store.faiss_index import VectorIndex

DEFAULT_MAX_DISTANCE = 24  # bits of 128: precision 0.997 on real photos (docs/dupes.md)
DEFAULT_THRESHOLD = 0.95  # cosine for "similar"
COPIES, SIMILAR = "copies", "similar"  # the two kinds of group
CAMERA_FORMATS = frozenset({"JPEG", "MPO", "HEIF", "HEIC"})  # what cameras and phones write
MTIME_RESOLUTION = 2.0  # seconds: FAT (memory cards) records modification times to 2 s
MIN_NN_PICTURES = 10  # fewer distinct pictures: judge the model by its typical pair instead
CALIBRATION_QUERIES = 2000  # pictures whose nearest neighbour is measured (a sample above)
CALIBRATION_PAIRS = 20_000  # random pairs for the typical cosine
_REASON_RANK = {"exact": 0, "near": 1, "similar": 2}
_QUERY_CHUNK = 8192
_EXHAUSTIVE_UP_TO = 50_000  # vectors; an IVF index above
NEAR_EXHAUSTIVE_UP_TO = 5_000  # hash codes; a binary IVF index above (`hash_index`)
NEAR_RECALL_TARGET = 0.995  # of the pairs exhaustive search finds, on sample queries
NEAR_TUNING_QUERIES = 2_000

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)
Reading = Callable[[], AbstractContextManager["VectorIndex"]]  # VectorCache.reading


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


@dataclass(frozen=True)
class Link:
    """Why a non-keeper is in its group: its strongest match, and with which image."""

    reason: str  # exact | near | similar
    score: float
    match: int  # the id of the image it matches (the keeper whenever that is as strong)

    def to_dict(self) -> dict:
        return {"reason": self.reason, "score": round(float(self.score), 4), "match": self.match}


_NO_LINK = {"reason": None, "score": None, "match": None}


@dataclass
class Group:
    """Images that are copies of one another (kind "copies") or look alike to the model
    (kind "similar"): keep `keeper`, review `others`."""

    keeper: Member
    others: list[Member]
    pairs: list[Pair]
    kind: str = COPIES
    links: dict[int, Link] = field(default_factory=dict)  # per non-keeper id

    @property
    def members(self) -> list[Member]:
        return [self.keeper, *self.others]

    @property
    def reasons(self) -> list[str]:
        return sorted({p.reason for p in self.pairs}, key=_REASON_RANK.__getitem__)

    def to_dict(self) -> dict:
        def with_link(m: Member) -> dict:
            link = self.links.get(m.id)
            return m.to_dict() | (link.to_dict() if link else _NO_LINK)

        return {
            "kind": self.kind,
            "keeper": self.keeper.to_dict() | _NO_LINK,
            "others": [with_link(m) for m in self.others],
            "reasons": self.reasons,
            "pairs": [p.to_dict() for p in self.pairs],
        }


@dataclass
class Calibration:
    """How this library's pictures spread under the model, and whether `threshold` can
    tell them apart. Measured on the distinct pictures (one per group of copies)."""

    threshold: float
    pictures: int  # distinct pictures with a vector
    nn_median: float | None = None  # the median picture's nearest-neighbour cosine
    nn_p10: float | None = None
    nn_p90: float | None = None
    pair_median: float | None = None  # the cosine of a typical pair of pictures
    used: bool = True  # False: similar pairs were left out (see `reason`)
    reason: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("nn_median", "nn_p10", "nn_p90", "pair_median"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 4)
        return out


@dataclass
class DupesReport:
    """What `dupes` found. `to_dict()` is the stable `--json` shape."""

    groups: list[Group] = field(default_factory=list)  # copies first, then similar
    images: int = 0
    pairs: dict[str, int] = field(default_factory=dict)
    hashed: int = 0  # images whose hashes were computed now (indexed before hashes existed)
    seconds: float = 0.0
    max_distance: int = DEFAULT_MAX_DISTANCE
    threshold: float | None = DEFAULT_THRESHOLD
    calibration: Calibration | None = None  # None when similar images were not asked for
    warnings: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Non-keepers of every group (copies and similar)."""
        return sum(len(g.others) for g in self.groups)

    @property
    def copy_groups(self) -> list[Group]:
        return [g for g in self.groups if g.kind == COPIES]

    @property
    def similar_groups(self) -> list[Group]:
        return [g for g in self.groups if g.kind == SIMILAR]

    @property
    def copies(self) -> int:
        """Non-keepers of the groups of exact and near copies (what `--move-to` moves)."""
        return sum(len(g.others) for g in self.copy_groups)

    @property
    def similar_images(self) -> int:
        """Non-keepers of the similar groups (moved only when asked for explicitly)."""
        return sum(len(g.others) for g in self.similar_groups)

    def ids_to_move(self, *, include_similar: bool = False) -> list[int]:
        """The non-keepers to quarantine: copies only, unless `include_similar`."""
        kinds = {COPIES, SIMILAR} if include_similar else {COPIES}
        ids = [m.id for g in self.groups if g.kind in kinds for m in g.others]
        return list(dict.fromkeys(ids))

    def to_dict(self) -> dict:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "images": self.images,
            "duplicates": self.duplicates,
            "copies": self.copies,
            "similar_images": self.similar_images,
            "pairs": self.pairs,
            "hashed": self.hashed,
            "seconds": round(self.seconds, 3),
            "max_distance": self.max_distance,
            "threshold": self.threshold,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "warnings": self.warnings,
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

    `hashes` is int64 (N, 4): phash, dhash, phash_mirror, dhash_mirror. Each code and its
    mirror is a range query into `hash_index` (exhaustive for small libraries, a binary IVF
    tuned to find what exhaustive search finds beyond), so the work grows about as N·√N.
    """
    if len(ids) < 2 or max_distance < 0:
        return []
    codes = np.concatenate([phash.to_bytes(hashes[:, 0]), phash.to_bytes(hashes[:, 1])], axis=1)
    mirror = np.concatenate([phash.to_bytes(hashes[:, 2]), phash.to_bytes(hashes[:, 3])], axis=1)
    index = hash_index(codes, mirror, max_distance)
    found = [_range(index, queries, max_distance + 1) for queries in (codes, mirror)]
    a, b, dist = _best_per_pair(found, len(ids), keep="min")
    total = 2 * phash.HASH_BITS
    return [
        Pair(int(ids[i]), int(ids[j]), "near", 1.0 - d / total, int(d))
        for i, j, d in zip(a.tolist(), b.tolist(), dist.tolist(), strict=True)
    ]


def hash_index(codes: np.ndarray, mirror: np.ndarray, max_distance: int):
    """A FAISS binary index over 128-bit codes for Hamming range search.

    Up to NEAR_EXHAUSTIVE_UP_TO codes: exhaustive (`IndexBinaryFlat`). Beyond: an inverted
    file over Hamming k-means cells (`IndexBinaryIVF`, 4·√N lists trained on a random
    sample), each query probing its `nprobe` nearest cells. `nprobe` is tuned on the library's
    own codes: random queries (and their mirrors) are answered exhaustively and the smallest
    nprobe that finds NEAR_RECALL_TARGET of those pairs is kept (16 when the sample holds no
    near pair at all: what the 1,000 x 9 real-photo benchmark needs).
    """
    import faiss

    n = len(codes)
    bits = codes.shape[1] * 8
    if n <= NEAR_EXHAUSTIVE_UP_TO:
        index = faiss.IndexBinaryFlat(bits)
        index.add(codes)
        return index
    rng = np.random.default_rng(0)
    nlist = int(min(4 * np.sqrt(n), n // 40))
    index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(bits), bits, nlist)
    index.cp.seed = 0
    index.cp.niter = 10  # the cells need not be optimal: nprobe is tuned on what they are
    sample = rng.choice(n, size=min(n, 40 * nlist), replace=False)
    index.train(np.ascontiguousarray(codes[np.sort(sample)]))
    index.add(codes)
    index.nprobe = _tune_hash_nprobe(index, codes, mirror, max_distance, rng)
    return index


def _tune_hash_nprobe(index, codes, mirror, max_distance: int, rng) -> int:
    import faiss

    rows = np.sort(rng.choice(len(codes), size=min(len(codes), NEAR_TUNING_QUERIES), replace=False))
    queries = [np.ascontiguousarray(q[rows]) for q in (codes, mirror)]
    exact = faiss.IndexBinaryFlat(index.d)
    exact.add(codes)

    def pairs(ix) -> set[tuple[int, int]]:
        out = set()
        for q in queries:
            r, c, _ = _range(ix, q, max_distance + 1)
            out.update(zip(rows[r].tolist(), c.tolist(), strict=True))
        return {p for p in out if p[0] != p[1]}

    truth = pairs(exact)
    del exact
    if not truth:
        return min(16, index.nlist)
    nprobe = 8
    while nprobe < index.nlist:
        index.nprobe = nprobe
        if len(pairs(index) & truth) >= NEAR_RECALL_TARGET * len(truth):
            return nprobe
        nprobe *= 2
    return int(index.nlist)


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


def _vector_index(vectors: np.ndarray):
    """Inner product (= cosine on unit vectors): exhaustive up to 50,000 vectors, an IVF index
    (4·√n lists, nprobe 16) beyond, so 100k+ stays fast."""
    import faiss

    n, dim = vectors.shape
    if n <= _EXHAUSTIVE_UP_TO:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        index.train(vectors[rng.choice(n, min(n, 64 * nlist), replace=False)])
        index.nprobe = 16
    index.add(vectors)
    return index


def similar_pairs(
    ids: np.ndarray, vectors: np.ndarray, threshold: float, *, index=None
) -> list[Pair]:
    """Pairs whose unit vectors have cosine similarity above `threshold` (FAISS range search
    over `index`, built from `vectors` when not given)."""
    n = len(vectors) if vectors.ndim == 2 else 0
    if n < 2:
        return []
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = index if index is not None else _vector_index(vectors)
    a, b, sims = _best_per_pair([_range(index, vectors, float(threshold))], n, keep="max")
    return [
        Pair(int(ids[i]), int(ids[j]), "similar", min(1.0, float(x)))
        for i, j, x in zip(a.tolist(), b.tolist(), sims.tolist(), strict=True)
    ]


def calibrate(vectors: np.ndarray, threshold: float, *, index=None) -> Calibration:
    """Can `threshold` tell this library's pictures apart with this model?

    `vectors` are the distinct pictures (one per group of copies). The rule: similar pairs
    are left out when a typical picture already has a neighbour at or above the threshold,
    i.e. the median of the pictures' nearest-neighbour cosines is >= threshold (half the
    library would be "similar" to something). With fewer than MIN_NN_PICTURES pictures a few
    real look-alikes are half the library, so the typical pair decides instead: the median
    cosine of all pairs >= threshold. A trained CLIP puts unrelated photos far below 0.95; a
    randomly initialised model (or one that has never seen such pictures) puts everything
    above 0.95.
    """
    n = len(vectors) if vectors.ndim == 2 else 0
    cal = Calibration(threshold=float(threshold), pictures=n)
    if n < 2:
        return cal
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rng = np.random.default_rng(0)
    if n * (n - 1) // 2 <= CALIBRATION_PAIRS:
        a, b = np.triu_indices(n, 1)
    else:
        a = rng.integers(0, n, CALIBRATION_PAIRS)
        b = (a + rng.integers(1, n, CALIBRATION_PAIRS)) % n  # never a picture with itself
    cal.pair_median = float(np.median(np.einsum("ij,ij->i", vectors[a], vectors[b])))

    index = index if index is not None else _vector_index(vectors)
    rows = np.arange(n) if n <= CALIBRATION_QUERIES else rng.choice(n, CALIBRATION_QUERIES, False)
    sims, found = index.search(np.ascontiguousarray(vectors[rows]), 2)
    itself = found[:, 0] == rows
    nn = np.where(itself, sims[:, 1], sims[:, 0])  # the nearest picture that is not itself
    nn = nn[np.where(itself, found[:, 1], found[:, 0]) >= 0]  # (an IVF probe may find none)
    if len(nn):
        cal.nn_median = float(np.median(nn))
        cal.nn_p10, cal.nn_p90 = (float(x) for x in np.percentile(nn, [10, 90]))

    return _judge(cal)


def _judge(cal: Calibration) -> Calibration:
    """Apply the rule of `calibrate` to measured figures."""
    n = cal.pictures
    t = cal.threshold
    if n >= MIN_NN_PICTURES and cal.nn_median is not None and cal.nn_median >= t:
        cal.used = False
        cal.reason = (
            f"the model cannot tell these pictures apart at cosine {t:.3g} (half of the "
            f"{n} distinct pictures have a neighbour at {cal.nn_median:.3f} or more: nearly "
            "everything would be 'similar')"
        )
    elif n < MIN_NN_PICTURES and cal.pair_median >= t:
        cal.used = False
        cal.reason = (
            f"the model cannot tell these pictures apart at cosine {t:.3g} (a typical pair "
            f"of the {n} distinct pictures is at {cal.pair_median:.3f})"
        )
    return cal


def _similar_warning(cal: Calibration) -> str:
    decided = cal.nn_median if cal.pictures >= MIN_NN_PICTURES else cal.pair_median
    return (
        f"similar images left out: {cal.reason}. Exact and near copies are not affected; "
        f"a threshold above {min(decided or 0.0, 0.9999):.4f} compares anyway."
    )


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
    """Union-find: image ids joined by pairs, each group sorted, groups by first id.

    Only for exact and near pairs (a copy of a copy is a copy); similar pairs form stars
    (`star_groups`)."""
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
    """Sort key: the keeper first, the picture most likely to be the original.

    Most pixels; at equal pixels the one that still carries the camera's capture date
    (conversions and exports often drop EXIF), then the earliest file (modification time).
    Files modified within the same 2 seconds (FAT memory cards record no finer; a folder
    copied or converted in one go) prefer a camera format (JPEG, HEIF) over a conversion
    format (PNG, WebP, TIFF, GIF, BMP: a PNG of a JPEG is larger but holds nothing more).
    Then the largest file, then the smallest id.
    """
    return (
        -m.pixels,
        m.taken_at is None,
        int(m.mtime // MTIME_RESOLUTION),
        (m.format or "").upper() not in CAMERA_FORMATS,
        m.mtime,
        -m.size,
        m.id,
    )


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


def copy_links(
    members: Sequence[Member], pairs: Sequence[Pair], digests: dict[int, str]
) -> dict[int, Link]:
    """Why each non-keeper of a group of copies is there (`members[0]` is the keeper).

    A byte-identical copy is always "exact" (of the keeper when it is one, else of its
    twin); any other copy shows its near link to the keeper, or else its closest link.
    """
    keeper = members[0]
    by_digest: dict[str, int] = {}
    for m in members:  # in keeper order: the first of each content is its reference
        if m.id in digests:
            by_digest.setdefault(digests[m.id], m.id)
    best: dict[int, tuple[tuple, Link]] = {}
    for p in pairs:  # one pass: a group of 1,000 near-identical frames has ~500,000 pairs
        for me, other in ((p.a, p.b), (p.b, p.a)):
            key = (_REASON_RANK[p.reason], other != keeper.id, -p.score)
            if me not in best or key < best[me][0]:
                best[me] = (key, Link(p.reason, p.score, other))
    links: dict[int, Link] = {}
    for m in members[1:]:
        twin = by_digest.get(digests.get(m.id, ""))
        if twin is not None and twin != m.id:
            links[m.id] = Link("exact", 1.0, twin)
        elif m.id in best:
            links[m.id] = best[m.id][1]
    return links


def build_groups(pairs: Sequence[Pair], rows: dict[int, ImageRow]) -> list[Group]:
    """Groups of copies with keepers from merged exact/near pairs (union-find); images
    missing from `rows` are left out."""
    pairs = [p for p in pairs if p.a in rows and p.b in rows]
    by_root: dict[int, list[Pair]] = {}
    groups = connected_groups(pairs)
    first = {i: g[0] for g in groups for i in g}
    for p in pairs:
        by_root.setdefault(first[p.a], []).append(p)
    digests = {i: r.content_hash for i, r in rows.items()}
    out = []
    for g in groups:
        members = sorted((member(rows[i]) for i in g), key=keeper_key)
        group_pairs = by_root.get(g[0], [])
        out.append(
            Group(
                members[0],
                members[1:],
                group_pairs,
                COPIES,
                copy_links(members, group_pairs, digests),
            )
        )
    out.sort(key=lambda g: (-len(g.others), g.keeper.path))
    return out


def star_groups(pairs: Sequence[Pair], rows: dict[int, ImageRow]) -> list[Group]:
    """Similar groups in which every member is similar to the keeper (no chaining).

    Greedy stars, best picture first: in keeper order, each picture not yet in a group
    takes every picture similar to it that is not yet in a group. A picture taken earlier
    stays where it is, so the first picture of each group (its centre) is also its keeper
    by `keeper_key`, and every member's pair is with that keeper.
    """
    neighbours: dict[int, dict[int, Pair]] = {}
    for p in pairs:
        if p.a in rows and p.b in rows:
            neighbours.setdefault(p.a, {})[p.b] = p
            neighbours.setdefault(p.b, {})[p.a] = p
    members = {i: member(rows[i]) for i in neighbours}
    taken: set[int] = set()
    out = []
    for centre in sorted(members.values(), key=keeper_key):
        if centre.id in taken:
            continue
        free = [(o, p) for o, p in neighbours[centre.id].items() if o not in taken]
        if not free:
            continue
        free.sort(key=lambda op: keeper_key(members[op[0]]))
        taken.add(centre.id)
        taken.update(o for o, _ in free)
        out.append(
            Group(
                centre,
                [members[o] for o, _ in free],
                [p for _, p in free],
                SIMILAR,
                {o: Link("similar", p.score, centre.id) for o, p in free},
            )
        )
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
    reading: Reading | None = None,
) -> DupesReport:
    """Every duplicate group in the library (images under `exclude` folders left out):
    groups of exact and near copies, then (when `threshold` is not None and the model can
    tell the pictures apart) groups of similar pictures.

    `reading` opens the library's vector index (`VectorCache.reading`): when it is
    approximate, similar pairs are found through it, a chunk of queries at a time, instead of
    an index built here over every vector."""
    started = time.perf_counter()
    excluded = [fs.normalize_root(e) for e in exclude]
    skip = {r.id for r in store.rows_under(excluded).values()} if excluded else set()

    pairs = exact_pairs((i, h) for i, h in features.all_content_hashes(store) if i not in skip)
    counts = {"exact": len(pairs), "near": 0, "similar": 0}
    ids, hashes = features.all_hashes(store)
    if extra_hashes:
        ids = np.concatenate([ids, np.fromiter(extra_hashes, np.int64)])
        hashes = np.concatenate([hashes, np.asarray(list(extra_hashes.values()), np.int64)])
    hashes = hashes.reshape(-1, 4)
    if skip:
        keep = ~np.isin(ids, np.fromiter(skip, np.int64))
        ids, hashes = ids[keep], hashes[keep]
    near = near_pairs(ids, hashes, max_distance)
    counts["near"] = len(near)
    merged = merge_pairs(pairs + near)
    rows = store.get_rows({i for p in merged for i in (p.a, p.b)})
    groups = build_groups(merged, rows)

    report = DupesReport(
        images=store.counts()["images"],
        pairs=counts,
        max_distance=max_distance,
        threshold=threshold,
    )
    if threshold is not None and dim is not None:
        not_distinct = skip | {m.id for g in groups for m in g.others}
        similar, report.calibration = _similar(store, dim, threshold, not_distinct, reading)
        counts["similar"] = len(similar)
        if similar:
            groups += star_groups(similar, store.get_rows({i for p in similar for i in (p.a, p.b)}))
        if not report.calibration.used:
            report.warnings.append(_similar_warning(report.calibration))
    report.groups = groups
    report.seconds = time.perf_counter() - started
    return report


def _similar(
    store: Store, dim: int, threshold: float, not_distinct: set[int], reading: Reading | None
) -> tuple[list[Pair], Calibration]:
    """Similar pairs among the distinct pictures (each group of copies by its keeper), and
    the calibration that decided whether to use them."""
    if reading is not None:
        with reading() as index:
            approximate = index.kind != "flat" and index.ntotal > 0
        if approximate:
            return _similar_through(store, dim, threshold, not_distinct, reading)
    parts = list(store.iter_vectors(dim))
    if not parts:
        return [], Calibration(threshold=float(threshold), pictures=0)
    ids = np.concatenate([p[0] for p in parts])
    vectors = np.concatenate([p[1] for p in parts])
    if not_distinct:
        keep = ~np.isin(ids, np.fromiter(not_distinct, np.int64))
        ids, vectors = ids[keep], vectors[keep]
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = _vector_index(vectors) if len(vectors) >= 2 else None
    cal = calibrate(vectors, threshold, index=index)
    if not cal.used or index is None:
        return [], cal
    return similar_pairs(ids, vectors, threshold, index=index), cal


def _exact_scores(store: Store, dim: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of pairs (a[i], b[i]) from the stored vectors (0 for a vector gone)."""
    wanted = np.unique(np.concatenate([a, b]))
    ids, vecs = store.get_vectors(wanted, dim)
    pos = {int(i): n for n, i in enumerate(ids.tolist())}
    out = np.zeros(len(a), np.float32)
    for n, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        if x in pos and y in pos:
            out[n] = float(vecs[pos[x]] @ vecs[pos[y]])
    return out


def _similar_through(
    store: Store, dim: int, threshold: float, not_distinct: set[int], reading: Reading
) -> tuple[list[Pair], Calibration]:
    """`_similar` through the library's approximate index: every vector against the lists
    it probes, one matrix product per list, while the index is held (searches and commits
    in the same process wait). Calibrated on a random sample of the distinct pictures."""
    ids = store.vector_ids()
    if not_distinct:
        ids = ids[~np.isin(ids, np.fromiter(not_distinct, np.int64))]
    n = len(ids)
    cal = Calibration(threshold=float(threshold), pictures=n)
    if n < 2:
        return [], cal
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(ids, size=min(n, CALIBRATION_QUERIES), replace=False))
    sample_ids, sample = store.get_vectors(pick, dim)
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    a = rng.integers(0, len(sample), CALIBRATION_PAIRS)
    b = (a + rng.integers(1, len(sample), CALIBRATION_PAIRS)) % len(sample)
    cal.pair_median = float(np.median(np.einsum("ij,ij->i", sample[a], sample[b])))
    with reading() as index:
        hits = index.search(sample, 16)
    distinct = ids  # sorted
    nn = []
    for own, hit in zip(sample_ids.tolist(), hits, strict=True):
        ok = (hit.ids != own) & _member(hit.ids, distinct)
        if ok.any():
            nn.append(float(hit.scores[ok][0]))
    if nn:
        cal.nn_median = float(np.median(nn))
        cal.nn_p10, cal.nn_p90 = (float(x) for x in np.percentile(nn, [10, 90]))
    cal = _judge(cal)
    if not cal.used:
        return [], cal
    with reading() as index:  # one matrix product per IVF list (see VectorIndex.similar_pairs)
        compressed = index.compressed
        margin = index.score_margin  # 8-bit and PQ codes' scores are approximate
        a_ids, b_ids, sims = index.similar_pairs(float(threshold) - margin)
    ok = _member(a_ids, distinct) & _member(b_ids, distinct)
    a_ids, b_ids, sims = a_ids[ok], b_ids[ok], sims[ok]
    if compressed and len(a_ids):  # the candidates scored again with the stored vectors
        sims = _exact_scores(store, dim, a_ids, b_ids)
        ok = sims >= threshold
        a_ids, b_ids, sims = a_ids[ok], b_ids[ok], sims[ok]
    if not len(a_ids):
        return [], cal
    order = np.lexsort((-sims, b_ids, a_ids))
    a_ids, b_ids, sims = a_ids[order], b_ids[order], sims[order]
    first = np.ones(len(a_ids), bool)
    first[1:] = (a_ids[1:] != a_ids[:-1]) | (b_ids[1:] != b_ids[:-1])
    return [
        Pair(int(x), int(y), "similar", min(1.0, float(z)))
        for x, y, z in zip(a_ids[first], b_ids[first], sims[first], strict=True)
    ], cal


def _member(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Which `values` are in `sorted_ids` (binary search: no set of a million ints)."""
    at = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return sorted_ids[at] == values
