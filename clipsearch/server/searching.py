"""Running API queries: terms (text, library ids, uploaded images) -> one vector -> hits.

The server never reads a path it is sent: a query image arrives as bytes (`add_upload`),
is decoded and embedded at once, and only its vector is kept, under a random id, in a small
in-memory store. An upload whose content is already in the library uses the stored vector,
so searching by a library photo's bytes gives exactly the scores `clipsearch search --image`
gives. Text vectors are cached (typing in the search box repeats prefixes).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from clipsearch import fs
from clipsearch.errors import QueryError
from clipsearch.images import content_hash, load_for_model
from clipsearch.search import Query, Searcher, SearchResult
from clipsearch.search import Term as CoreTerm
from clipsearch.server import schemas
from clipsearch.server.errors import ApiError

_WEIGHT = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*:\s*(.+?)\s*$")
_SPLIT = re.compile(r"\s+([+-])\s+")
_TEXT_CACHE = 512
_UPLOADS_KEPT = 256


def parse_text(text: str, weight: float = 1.0) -> list[schemas.Term]:
    """rclip's `2:dog + cat - fruit` syntax, for words only (never file paths)."""
    text = text.strip()
    if not text:
        return []
    parts = _SPLIT.split(text)
    terms = []
    for sign, body in zip(["+", *parts[1::2]], parts[0::2], strict=True):
        w = 1.0
        m = _WEIGHT.match(body)
        if m:
            w, body = float(m.group(1)), m.group(2)
        if not body.strip():
            raise QueryError(f"empty term in query {text!r}")
        terms.append(schemas.Term(text=body.strip(), weight=(-w if sign == "-" else w) * weight))
    return terms


def hit(result: SearchResult) -> dict:
    """A search result in the API's shape (`schemas.Hit`)."""
    out = result.to_dict()
    out.update(image_links(result.id, result.path))
    return out


def image_links(image_id: int, path: str) -> dict:
    return {
        "name": path.rsplit("/", 1)[-1],
        "thumb_url": f"/api/images/{image_id}/thumb",
        "file_url": f"/api/images/{image_id}/file",
    }


@dataclass(frozen=True)
class _Uploaded:
    vector: np.ndarray
    info: schemas.Upload


class QueryEngine:
    """Turns API search requests into results against one open library (thread-safe)."""

    def __init__(self, library) -> None:  # library: clipsearch.library.Library
        self.lib = library
        self._lock = threading.Lock()
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._uploads: OrderedDict[str, _Uploaded] = OrderedDict()

    # --- uploads -------------------------------------------------------------------------
    def add_upload(self, data: bytes) -> schemas.Upload:
        """Read, check and embed a query image; raises UnreadableImage for non-images."""
        if not data:
            raise ApiError(415, "not_an_image", "the upload is empty")
        digest = content_hash(data)
        same = [r for r in self.lib.store.rows_by_hash([digest]).get(digest, []) if r.has_vector]
        dim = self.lib.dim
        if same and dim is not None:
            row = same[0]
            vector = self.lib.store.get_vectors([row.id], dim)[1][0]
            width, height, fmt, match = row.width or 0, row.height or 0, row.format, row.id
        else:
            encoder = self.lib.encoder
            pixels, info = load_for_model(data, encoder.params)
            vector = encoder.encode_images(pixels[None])[0]
            width, height, fmt, match = info.width, info.height, info.format, None
        upload = schemas.Upload(
            id="up_" + secrets.token_urlsafe(12), width=width, height=height,
            format=fmt or "unknown", bytes=len(data), library_id=match,
        )  # fmt: skip
        with self._lock:
            self._uploads[upload.id] = _Uploaded(np.asarray(vector, np.float32), upload)
            while len(self._uploads) > _UPLOADS_KEPT:
                self._uploads.popitem(last=False)
        return upload

    def _upload_vector(self, upload_id: str) -> np.ndarray:
        with self._lock:
            found = self._uploads.get(upload_id)
            if found is not None:
                self._uploads.move_to_end(upload_id)
        if found is None:
            raise ApiError(
                410, "upload_expired", f"no uploaded image {upload_id!r} (the server forgets "
                "old uploads and all of them when it restarts)", "Upload the image again.",
            )  # fmt: skip
        return found.vector

    # --- vectors -------------------------------------------------------------------------
    def _text_vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for t in texts:
                if t in self._texts:
                    self._texts.move_to_end(t)
                    out[t] = self._texts[t]
        missing = [t for t in dict.fromkeys(texts) if t not in out]
        if missing:
            vecs = self.lib.encoder.encode_texts(missing)
            with self._lock:
                for t, v in zip(missing, vecs, strict=True):
                    out[t] = self._texts[t] = v
                while len(self._texts) > _TEXT_CACHE:
                    self._texts.popitem(last=False)
        return out

    def query_vector(self, terms: list[schemas.Term], dim: int) -> np.ndarray:
        texts = self._text_vectors([t.text for t in terms if t.text is not None])
        likes = [t.like for t in terms if t.like is not None]
        stored: dict[int, np.ndarray] = {}
        if likes:
            ids, vecs = self.lib.store.get_vectors(likes, dim)
            stored = dict(zip(ids.tolist(), vecs, strict=True))
            for i in likes:
                if i not in stored:
                    raise QueryError(f"no image with id {i} in this library")
        q = np.zeros(dim, np.float32)
        for t in terms:
            if t.text is not None:
                v = texts[t.text]
            elif t.like is not None:
                v = stored[t.like]
            else:
                v = self._upload_vector(t.upload or "")
            q += np.float32(t.weight) * v
        norm = float(np.linalg.norm(q))
        if norm < 1e-6:
            raise QueryError("the query's terms cancel out: adjust the weights")
        return q / norm

    # --- search --------------------------------------------------------------------------
    def search(self, req: schemas.SearchRequest) -> dict:
        """Run a search request; returns the `schemas.SearchResponse` shape."""
        started = time.perf_counter()
        terms = [*parse_text(req.q or ""), *req.terms]
        if len(terms) > schemas.MAX_TERMS:
            raise QueryError(f"too many terms (at most {schemas.MAX_TERMS})")
        query = _core_query(req, terms)  # validates dates etc. even on an empty library
        dim = self.lib.dim
        results: list[SearchResult] = []
        if dim is not None:
            q = self.query_vector(terms, dim)
            searcher = Searcher(self.lib.store, self.lib.searching, lambda: self.lib.encoder, dim)
            results = searcher.search_vector(q, query)
        empty = False
        if not results:
            with self.lib.searching() as index:
                empty = index.ntotal == 0
        return {
            "results": [hit(r) for r in results],
            "count": len(results),
            "took_ms": round((time.perf_counter() - started) * 1e3, 3),
            "library_empty": empty,
        }


def _core_query(req: schemas.SearchRequest, api_terms: list[schemas.Term]) -> Query:
    terms: list[CoreTerm] = []
    for t in api_terms:
        if t.text is not None:
            terms.append(CoreTerm("text", t.text, t.weight))
        elif t.like is not None:
            terms.append(CoreTerm("id", str(t.like), t.weight))
        else:
            terms.append(CoreTerm("image", f"upload:{t.upload}", t.weight))
    f = req.filters
    return Query(
        tuple(terms), k=req.k, min_score=req.min_score,
        within=tuple(fs.normalize_root(p) for p in f.folders if p.strip()),
        exclude_ids=tuple(t.like for t in api_terms if t.like is not None and t.weight > 0),
        source=f.source, after=f.after or None, before=f.before or None,
        tag=(f.tag or "").strip() or None,
    )  # fmt: skip
