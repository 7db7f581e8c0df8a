"""Search: a Query -> one vector -> the index -> rows -> results.

Each term's vector is unit length; the query vector is the weighted sum (negative terms
subtract), normalised. Results are ranked by cosine similarity and never include files that
are gone from disk.
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
from clipsearch.store.faiss_index import VectorIndex
from clipsearch.store.features import ids_with_tag
from clipsearch.store.store import ImageRow, Store

if TYPE_CHECKING:
    from clipsearch.model.encoder import Encoder


@dataclass(frozen=True)
class SearchResult:
    """One hit. `to_dict()` is the stable `--json` shape."""

    id: int
    path: str
    score: float
    width: int | None
    height: int | None
    size: int
    mtime: float
    taken_at: str | None
    source: str
    offline: bool = False  # on an offline root (an unmounted drive): the file is not at hand

    def to_dict(self) -> dict:
        out = asdict(self)
        out["score"] = round(float(self.score), 6)
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
        return self.search_vector(self.query_vector(query.terms), query)

    def search_vector(self, q: np.ndarray, query: Query) -> list[SearchResult]:
        """Ranked results for a ready query vector (the filters and k come from `query`)."""
        allowed = None
        if query.filtered:
            allowed = self.store.filter_ids(
                roots=query.within, source=query.source, after=query.after, before=query.before
            )
            if query.tag is not None:
                allowed = np.intersect1d(allowed, ids_with_tag(self.store, query.tag))
            if len(allowed) == 0:
                return []
        excluded = set(query.positive_ids)
        want = query.k
        fetch = want + len(excluded) + 8
        while True:
            with self.index_access() as index:
                hits = index.search(q, fetch, allowed=allowed)[0]
            results = self._results(hits.ids, hits.scores, excluded, query)
            exhausted = len(hits.ids) < fetch
            below = (
                query.min_score is not None
                and len(hits.scores)
                and (hits.scores[-1] < query.min_score)
            )
            if len(results) >= want or exhausted or below:
                return results[:want]
            fetch *= 4

    def _results(
        self, ids: np.ndarray, scores: np.ndarray, excluded: set[int], query: Query
    ) -> list[SearchResult]:
        rows = self.store.get_rows(ids.tolist())
        out = []
        offline_roots: list[str] | None = None  # read once, when a file is not at hand
        for image_id, score in zip(ids.tolist(), scores.tolist(), strict=True):
            if query.min_score is not None and score < query.min_score:
                break
            row = rows.get(image_id)
            if row is None or image_id in excluded:
                continue  # deleted meanwhile
            if os.path.exists(row.path):
                out.append(_result(row, score))
                continue
            if query.include_offline:  # kept for an unmounted drive, or gone from disk?
                if offline_roots is None:
                    offline_roots = [r.path for r in self.store.roots() if r.offline]
                if any(fs.is_under(row.path, r) for r in offline_roots):
                    out.append(_result(row, score, offline=True))
        return out


def _result(row: ImageRow, score: float, *, offline: bool = False) -> SearchResult:
    return SearchResult(
        id=row.id,
        path=row.path,
        score=float(score),
        width=row.width,
        height=row.height,
        size=row.size,
        mtime=row.mtime_ns / 1e9,
        taken_at=row.taken_at,
        source=row.source,
        offline=offline,
    )
