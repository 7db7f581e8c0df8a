"""Search: a Query -> one vector -> the index -> rows -> results.

Each term's vector is unit length; the query vector is the weighted sum (negative terms
subtract), normalised. Results are ranked by cosine similarity and never include files that
are gone from disk.

Filters (folders, dates, source, tag, place, camera, text in the picture) narrow the images
a query may meet before the index is searched. Quoted phrases also go to the keyword index
(FTS5): its ranking and the semantic one are fused by reciprocal rank fusion (each list
gives 1 / (60 + rank); Cormack et al. 2009), so a picture both lists like comes first and a
picture only one list finds still appears. A query with no terms (filters or phrases only)
lists keyword matches best first, or with filters alone the newest pictures first.

`cutoff="auto"` ends the list where relevance drops (`auto_cutoff`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from clipsearch.errors import QueryError, UnreadableImage
from clipsearch.media import fs
from clipsearch.media.images import load_for_model
from clipsearch.query.parse import Query, Term
from clipsearch.store import keywords
from clipsearch.store.facts import ids_in_country, ids_near
from clipsearch.store.faiss_index import (
    RERANK_META,
    SearchHits,
    VectorIndex,
    rerank,
)
from clipsearch.store.features import ids_with_tag
from clipsearch.store.store import ImageRow, Store

if TYPE_CHECKING:
    from clipsearch.model.encoder import Encoder


@dataclass(frozen=True)
class SearchResult:
    """One hit. `to_dict()` is the stable `--json` shape."""

    id: int
    path: str
    score: float | None  # cosine similarity to the query; None for a query without terms
    width: int | None
    height: int | None
    size: int
    mtime: float
    taken_at: str | None
    source: str
    offline: bool = False  # on an offline root (an unmounted drive): the file is not at hand
    keyword: bool = False  # the keyword index matched the query's quoted phrases

    def to_dict(self) -> dict:
        out = asdict(self)
        out["score"] = None if self.score is None else round(float(self.score), 6)
        return out


@dataclass
class Searcher:
    """Runs queries against a store + index; the encoder loads only if a term needs it.

    `index_access` is a context manager factory yielding the (caught-up) index while it is
    safe to search; the library uses it to keep index updates and searches apart.
    `text_vectors` replaces the encoder for text (the server's cache); `uploads` turns an
    upload id into its vector (the server's uploaded query images).
    """

    store: Store
    index_access: Callable[[], AbstractContextManager[VectorIndex]]
    encoder_factory: Callable[[], Encoder]  # loaded only if a term needs the model
    dim: int
    text_vectors: Callable[[list[str]], np.ndarray] | None = None
    uploads: Callable[[str], np.ndarray] | None = None
    _encoder: Encoder | None = field(default=None, repr=False)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = self.encoder_factory()
        return self._encoder

    def query_vector(self, terms: Sequence[Term]) -> np.ndarray:
        """The normalised weighted sum of the terms' unit vectors."""
        vectors = np.zeros((len(terms), self.dim), np.float32)
        texts = [(i, t.value) for i, t in enumerate(terms) if t.kind == "text"]
        if texts:
            encode = self.text_vectors or self.encoder.encode_texts
            for (i, _), vec in zip(texts, encode([v for _, v in texts]), strict=True):
                vectors[i] = vec
        for i, t in enumerate(terms):
            if t.kind == "image":
                vectors[i] = self._image_vector(t.value)
            elif t.kind == "id":
                vectors[i] = self._id_vector(int(t.value))
            elif t.kind == "upload":
                if self.uploads is None:
                    raise QueryError("uploaded query images exist only in the HTTP API")
                vectors[i] = self.uploads(t.value)
        weights = np.array([t.weight for t in terms], np.float32)
        q = (weights[:, None] * vectors).sum(axis=0)
        norm = float(np.linalg.norm(q))
        if norm < 1e-6:
            raise QueryError("the query's terms cancel out: adjust the weights")
        return q / norm

    def _image_vector(self, path: str) -> np.ndarray:
        row = self.store.row_by_path(path)
        if row is not None and row.has_vector:
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if st and st.st_size == row.size and st.st_mtime_ns == row.mtime_ns:
                _, vecs = self.store.get_vectors([row.id], self.dim)
                if len(vecs):
                    return vecs[0]
        try:
            pixels, _ = load_for_model(path, self.encoder.params)
        except UnreadableImage as exc:
            raise QueryError(f"cannot use query image {path}: {exc.reason}") from None
        return self.encoder.encode_images(pixels[None], query=True)[0]

    def _id_vector(self, image_id: int) -> np.ndarray:
        _, vecs = self.store.get_vectors([image_id], self.dim)
        if len(vecs) == 0:
            raise QueryError(f"no image with id {image_id} in this library")
        return vecs[0]

    def search(self, query: Query) -> list[SearchResult]:
        if not query.terms:
            return self.search_without_terms(query)
        return self.search_vector(self.query_vector(query.terms), query)

    def allowed_ids(self, query: Query) -> np.ndarray | None:
        """Sorted ids of the images every filter of `query` lets through (None: no filter)."""
        if not query.filtered:
            return None
        sets: list[np.ndarray] = []  # the selective filters first
        if query.tag is not None:
            sets.append(np.sort(ids_with_tag(self.store, query.tag)))
        if query.near is not None:
            near = query.near
            if near.lat is not None and near.lon is not None:
                sets.append(ids_near(self.store, near.lat, near.lon, near.radius_km or 10.0))
            else:
                sets.append(ids_in_country(self.store, near.country_code or ""))
        wanted = _keyword_filter(query)
        if wanted:
            with self.store.engine.connect() as conn:
                sets.append(keywords.matching_ids(conn, wanted))
        allowed = None
        for ids in sorted(sets, key=len):
            allowed = ids if allowed is None else np.intersect1d(allowed, ids, assume_unique=True)
        if query.within or any(v is not None for v in (query.source, query.after, query.before)):
            few = allowed is not None and len(allowed) <= FEW_IDS
            found = self.store.filter_ids(
                roots=query.within,
                source=query.source,
                after=query.after,
                before=query.before,
                among=allowed if few else None,
            )
            allowed = found if allowed is None or few else np.intersect1d(allowed, found)
        return allowed if allowed is not None else np.empty(0, np.int64)

    def search_without_terms(self, query: Query) -> list[SearchResult]:
        """Keyword matches best first, or (filters alone) the newest pictures first."""
        allowed = self.allowed_ids(query)
        if allowed is not None and len(allowed) == 0:
            return []
        want, fetch = query.k, query.k + 8
        while True:
            if query.keywords:
                with self.store.engine.connect() as conn:
                    ids = keywords.ranked_within(conn, _phrases(query), allowed, fetch)
            else:
                assert allowed is not None  # a query without terms has a filter or phrases
                ids = self.store.newest(allowed, fetch)
            scores = [None] * len(ids)
            results = self._results(ids, scores, set(), query, keyword=bool(query.keywords))
            if len(results) >= want or len(ids) < fetch:
                return results[:want]
            fetch *= 4

    def search_vector(self, q: np.ndarray, query: Query) -> list[SearchResult]:
        """Ranked results for a ready query vector (the filters and k come from `query`)."""
        allowed = self.allowed_ids(query)
        if allowed is not None and len(allowed) == 0:
            return []
        if query.keywords:
            return self._fused(q, query, allowed)
        excluded = set(query.positive_ids)
        want = query.k
        if query.cutoff == "auto":
            want = min(want, CUTOFF_WINDOW)
        fetch = want + len(excluded) + 8
        while True:
            hits = self.nearest(q, fetch, allowed)
            results = self._results(hits.ids, hits.scores, excluded, query)
            exhausted = len(hits.ids) < fetch
            below = (
                query.min_score is not None
                and len(hits.scores)
                and (hits.scores[-1] < query.min_score)
            )
            if len(results) >= want or exhausted or below:
                results = results[:want]
                if query.cutoff == "auto":
                    results = results[: auto_cutoff([r.score or 0.0 for r in results])]
                return results
            fetch *= 4

    def nearest(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> SearchHits:
        """The index's top `k`; from a compressed index (8-bit or PQ codes), k x its
        re-ranking depth of candidates re-ranked with the stored vectors, so approximate
        codes never decide the order or the scores."""
        with self.index_access() as index:
            compressed = index.compressed
            adopted = self.store.get_meta(RERANK_META) if index.codes == "pq" else None
            depth = index.rerank_depth(adopted)
            hits = index.search(q, k * depth, allowed=allowed)[0]
        if not compressed or not len(hits.ids):
            return hits
        ids, vecs = self.store.get_vectors(hits.ids, self.dim)
        ids, scores = rerank(ids, vecs @ q, k)
        return SearchHits(ids, scores)

    def _fused(self, q: np.ndarray, query: Query, allowed: np.ndarray | None) -> list[SearchResult]:
        """The semantic and keyword rankings fused (reciprocal rank fusion)."""
        excluded = set(query.positive_ids)
        depth = max(FUSION_DEPTH, 2 * query.k)
        hits = self.nearest(q, depth + len(excluded), allowed)
        semantic = [int(i) for i in hits.ids.tolist() if int(i) not in excluded][:depth]
        with self.store.engine.connect() as conn:
            found = keywords.ranked_within(conn, _phrases(query), allowed, depth)
        matched = {int(i) for i in found.tolist()}
        fused: dict[int, float] = {}
        for ranking in (semantic, [i for i in found.tolist() if i not in excluded]):
            for rank, image_id in enumerate(ranking, 1):
                fused[image_id] = fused.get(image_id, 0.0) + 1.0 / (RRF_K + rank)
        order = sorted(fused, key=lambda i: (-fused[i], i))
        cosine = dict(zip(hits.ids.tolist(), hits.scores.tolist(), strict=True))
        want, take = query.k, query.k + 8
        while True:  # rows (and cosines of keyword-only hits) for the head of the list only
            head = order[:take]
            missing = [i for i in head if i not in cosine]
            if missing:
                ids, vecs = self.store.get_vectors(missing, self.dim)
                cosine.update(zip(ids.tolist(), (vecs @ q).tolist(), strict=True))
            scores = [cosine.get(i) for i in head]
            results = self._results(np.array(head, np.int64), scores, excluded, query, matched)
            if len(results) >= want or take >= len(order):
                break
            take *= 4
        results = results[:want]
        if query.cutoff == "auto":
            results = results[: auto_cutoff([fused[r.id] for r in results])]
        return results

    def _results(
        self,
        ids: np.ndarray,
        scores: Sequence[float | None] | np.ndarray,
        excluded: set[int],
        query: Query,
        keyword: bool | set[int] = False,
    ) -> list[SearchResult]:
        rows = self.store.get_rows(ids.tolist())
        out = []
        offline_roots: list[str] | None = None  # read once, when a file is not at hand
        scores = scores.tolist() if isinstance(scores, np.ndarray) else list(scores)
        for image_id, score in zip(ids.tolist(), scores, strict=True):
            if query.min_score is not None and (score is None or score < query.min_score):
                if isinstance(keyword, set):
                    continue  # fused: not in score order
                break
            row = rows.get(image_id)
            if row is None or image_id in excluded:
                continue  # deleted meanwhile
            matched = image_id in keyword if isinstance(keyword, set) else keyword
            if os.path.exists(row.path):
                out.append(_result(row, score, keyword=matched))
                continue
            if query.include_offline:  # kept for an unmounted drive, or gone from disk?
                if offline_roots is None:
                    offline_roots = [r.path for r in self.store.roots() if r.offline]
                if any(fs.is_under(row.path, r) for r in offline_roots):
                    out.append(_result(row, score, offline=True, keyword=matched))
        return out


FEW_IDS = 20_000  # a set this small checks the date/folder/source filters itself
RRF_K = 60  # reciprocal rank fusion's constant (Cormack, Clarke & Buettcher 2009)
FUSION_DEPTH = 100  # how deep each ranking is read for fusion
CUTOFF_WINDOW = 100  # `cutoff="auto"` looks at most this far
CUTOFF_RATIO = 3.0  # ... and cuts only at a drop this many times the median drop


def auto_cutoff(scores: Sequence[float]) -> int:
    """How many of `scores` (best first) to keep: the list ends at its largest drop between
    neighbours, if that drop is at least CUTOFF_RATIO times the median drop (a clear edge);
    otherwise nothing is cut. Looks at the first CUTOFF_WINDOW scores; keeps at least one.
    """
    s = np.asarray(scores[:CUTOFF_WINDOW], dtype=np.float64)
    if len(s) < 3:
        return len(scores)
    gaps = s[:-1] - s[1:]
    at = int(np.argmax(gaps))
    median = float(np.median(gaps))
    if gaps[at] <= 0 or gaps[at] < CUTOFF_RATIO * max(median, 1e-9):
        return len(scores)
    return at + 1


def _phrases(query: Query) -> str:
    parts = [keywords.phrase(p) for p in query.keywords]
    found = [p for p in parts if p]
    if not found:
        raise QueryError(f"the quoted words {list(query.keywords)} contain no word to look up")
    return " AND ".join(found)


def _keyword_filter(query: Query) -> str | None:
    """The FTS5 expression the camera:, text: and in:NAME filters ask for (all must hold)."""
    exprs = []
    pieces = [("camera", query.camera, True)] if query.camera else []
    pieces += [("ocr", t, False) for t in query.text]
    pieces += [("folders", n, False) for n in query.folder_names]
    for column, words, prefix in pieces:
        expr = keywords.phrase(words, prefix=prefix)
        if expr is None:
            name = {"ocr": "text", "folders": "in"}.get(column, column)
            raise QueryError(f"{name}:{words} has no word to look for")
        exprs.append(keywords.in_column(column, expr))
    return " AND ".join(exprs) or None


def _result(
    row: ImageRow, score: float | None, *, offline: bool = False, keyword: bool = False
) -> SearchResult:
    return SearchResult(
        id=row.id,
        path=row.path,
        score=None if score is None else float(score),
        width=row.width,
        height=row.height,
        size=row.size,
        mtime=row.mtime_ns / 1e9,
        taken_at=row.taken_at,
        source=row.source,
        offline=offline,
        keyword=keyword,
    )
