"""Queries: text / image / "more like this" terms with weights -> one vector -> results.

Expression syntax (as rclip's)::

    dog                      a text query
    ./pool.jpg               an image query (an existing image file, or a path-like term)
    2:dog + ./pool.jpg - fruit   weights with `W:`, terms joined by ` + ` and ` - `

Each term's vector is unit length; the query is the weighted sum (negative terms subtract),
normalised. Results never include files that are gone from disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from clipsearch.errors import QueryError, UnreadableImage
from clipsearch.images import is_image_name, load_for_model
from clipsearch.index import VectorIndex
from clipsearch.store.features import ids_with_tag
from clipsearch.store.store import ImageRow, Store

TermKind = Literal["text", "image", "id"]
_WEIGHT = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*:\s*(.+?)\s*$")
_SPLIT = re.compile(r"\s+([+-])\s+")


@dataclass(frozen=True)
class Term:
    """One part of a query. `value` is text, an absolute image path, or an image id."""

    kind: TermKind
    value: str
    weight: float = 1.0


@dataclass(frozen=True)
class Query:
    """A search: terms plus how many results and which ones are allowed."""

    terms: tuple[Term, ...]
    k: int = 10
    min_score: float | None = None
    within: tuple[str, ...] = ()  # folders or files (absolute); empty = everywhere
    exclude_ids: tuple[int, ...] = ()
    source: str | None = None  # "photos" | "generated"; None = both
    after: str | None = None  # ISO date(time), inclusive: capture time, else file mtime
    before: str | None = None  # ISO date(time), exclusive
    tag: str | None = None  # only images with this tag (`clipsearch tag`)

    def __post_init__(self) -> None:
        if not self.terms:
            raise QueryError("empty query: give text, --image PATH or --like ID")
        if self.k < 1:
            raise QueryError(f"the number of results (k, --top) must be at least 1, got {self.k}")
        if self.source not in (None, "photos", "generated"):
            raise QueryError(f"source must be 'photos' or 'generated', got {self.source!r}")
        for name in ("after", "before"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _iso_date(value, name))

    @property
    def filtered(self) -> bool:
        return bool(self.within) or any(
            v is not None for v in (self.source, self.after, self.before, self.tag)
        )


def _iso_date(value: str, name: str) -> str:
    """Normalise a YYYY, YYYY-MM, YYYY-MM-DD or ISO datetime to a comparable ISO string."""
    from datetime import datetime

    text = str(value).strip()
    for fmt, width in (("%Y", 4), ("%Y-%m", 7), ("%Y-%m-%d", 10)):
        if len(text) == width:
            try:
                return datetime.strptime(text, fmt).strftime("%Y-%m-%d")
            except ValueError:
                break
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None).isoformat()
    except ValueError:
        raise QueryError(
            f"{name!r} must be a date like 2024, 2024-06 or 2024-06-30, got {value!r}"
        ) from None


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

    def to_dict(self) -> dict:
        out = asdict(self)
        out["score"] = round(float(self.score), 6)
        return out


def looks_like_image_path(text: str) -> bool:
    """A term that names an image file rather than describing one."""
    if os.path.isfile(os.path.expanduser(text)) and is_image_name(text):
        return True
    pathish = text.startswith(("/", "./", "../", "~")) or os.sep in text
    return pathish and is_image_name(text) and " " not in text.strip()


def parse_expression(text: str) -> list[Term]:
    """Parse rclip-style `2:dog + ./pool.jpg - fruit` into weighted terms."""
    text = text.strip()
    if not text:
        return []
    parts = _SPLIT.split(text)  # "a + b - c" -> ["a", "+", "b", "-", "c"]
    signs, bodies = ["+", *parts[1::2]], parts[0::2]
    terms = []
    for sign, body in zip(signs, bodies, strict=True):
        weight = 1.0
        m = _WEIGHT.match(body)
        if m:
            weight, body = float(m.group(1)), m.group(2)
        body = body.strip()
        if not body:
            raise QueryError(f"empty term in query {text!r}")
        if sign == "-":
            weight = -weight
        terms.append(_term(body, weight))
    return terms


def _term(body: str, weight: float) -> Term:
    if body.startswith(("http://", "https://")):
        raise QueryError(
            f"URL queries are not supported: {body}",
            hint="Download the image and pass its path (--image FILE).",
        )
    if looks_like_image_path(body):
        return image_term(body, weight)
    return Term("text", body, weight)


def image_term(path: str, weight: float = 1.0) -> Term:
    """A term for an image file; the file must exist."""
    full = os.path.realpath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise QueryError(f"query image not found: {path}")
    return Term("image", full, weight)


@dataclass
class Searcher:
    """Runs queries against a store + index; the encoder loads only if a term needs it.

    `index_access` is a context manager factory yielding the (caught-up) index while it is
    safe to search; the library uses it to keep index updates and searches apart.
    """

    store: Store
    index_access: Callable[[], AbstractContextManager[VectorIndex]]
    encoder_factory: Callable[[], object]  # -> Encoder (loaded lazily)
    dim: int
    _encoder: object | None = field(default=None, repr=False)

    @property
    def encoder(self):  # -> Encoder
        if self._encoder is None:
            self._encoder = self.encoder_factory()
        return self._encoder

    def query_vector(self, terms: Iterable[Term]) -> np.ndarray:
        terms = list(terms)
        vectors = np.zeros((len(terms), self.dim), np.float32)
        texts = [(i, t.value) for i, t in enumerate(terms) if t.kind == "text"]
        if texts:
            enc = self.encoder.encode_texts([v for _, v in texts])
            for (i, _), vec in zip(texts, enc, strict=True):
                vectors[i] = vec
        for i, t in enumerate(terms):
            if t.kind == "image":
                vectors[i] = self._image_vector(t.value)
            elif t.kind == "id":
                vectors[i] = self._id_vector(int(t.value))
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
        return self.encoder.encode_images(pixels[None])[0]

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
        excluded = set(query.exclude_ids)
        want = query.k
        fetch = want + len(excluded) + 8
        while True:
            with self.index_access() as index:
                hits = index.search(q, fetch, allowed=allowed)[0]
            results = self._results(hits.ids, hits.scores, excluded, query.min_score)
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
        self, ids: np.ndarray, scores: np.ndarray, excluded: set[int], min_score: float | None
    ) -> list[SearchResult]:
        rows = self.store.get_rows(ids.tolist())
        out = []
        for image_id, score in zip(ids.tolist(), scores.tolist(), strict=True):
            if min_score is not None and score < min_score:
                break
            row = rows.get(image_id)
            if row is None or image_id in excluded or not os.path.exists(row.path):
                continue  # deleted meanwhile, or gone from disk
            out.append(_result(row, score))
        return out


def _result(row: ImageRow, score: float) -> SearchResult:
    return SearchResult(
        id=row.id, path=row.path, score=float(score), width=row.width, height=row.height,
        size=row.size, mtime=row.mtime_ns / 1e9, taken_at=row.taken_at, source=row.source,
    )  # fmt: skip


def build_terms(
    expression: str = "",
    *,
    images: Sequence[str | Path] = (),
    negatives: Sequence[str] = (),
    negative_images: Sequence[str | Path] = (),
    like: Sequence[int] = (),
) -> list[Term]:
    """Terms from the CLI/API pieces: an expression, --image, --not, --not-image, --like."""
    terms = parse_expression(expression) if expression else []
    terms += [image_term(str(p)) for p in images]
    terms += [Term("text", n, -1.0) for n in negatives if n.strip()]
    terms += [image_term(str(p), -1.0) for p in negative_images]
    terms += [Term("id", str(int(i))) for i in like]
    return terms
