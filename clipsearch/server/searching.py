"""Running API queries: terms (text, library ids, uploaded images) -> one vector -> hits.

The server never reads a path it is sent: a query image arrives as bytes (`add_upload`),
is decoded and embedded at once, and only its vector is kept, under a random id, in a small
in-memory store. An upload whose content is already in the library uses the stored vector,
so searching by a library photo's bytes gives exactly the scores `clipsearch search --image`
gives. Text vectors are cached (typing in the search box repeats prefixes).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from clipsearch.errors import QueryError
from clipsearch.media.images import content_hash, load_for_model
from clipsearch.query.build import build_query
from clipsearch.query.parse import Query, Term
from clipsearch.query.search import Searcher, SearchResult
from clipsearch.server import schemas
from clipsearch.server.errors import ApiError

_TEXT_CACHE = 512
_UPLOADS_KEPT = 256


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
            vector = encoder.encode_images(pixels[None], query=True)[0]
            width, height, fmt, match = info.width, info.height, info.format, None
        upload = schemas.Upload(
            id="up_" + secrets.token_urlsafe(12),
            width=width,
            height=height,
            format=fmt or "unknown",
            bytes=len(data),
            library_id=match,
        )
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
                410,
                "upload_expired",
                f"no uploaded image {upload_id!r} (the server forgets "
                "old uploads and all of them when it restarts)",
                "Upload the image again.",
            )
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

    # --- search --------------------------------------------------------------------------
    def _text_array(self, texts: list[str]) -> np.ndarray:
        found = self._text_vectors(texts)
        return np.stack([found[t] for t in texts])

    def search(self, req: schemas.SearchRequest) -> dict:
        """Run a search request; returns the `schemas.SearchResponse` shape."""
        started = time.perf_counter()
        query = api_query(req)  # validates dates etc. even on an empty library
        dim = self.lib.dim
        results: list[SearchResult] = []
        if dim is not None:
            searcher = Searcher(
                self.lib.store,
                self.lib.vectors.reading,
                lambda: self.lib.encoder,
                dim,
                text_vectors=self._text_array,
                uploads=self._upload_vector,
            )
            results = searcher.search(query)
        empty = False
        if not results:
            with self.lib.vectors.reading() as index:
                empty = index.ntotal == 0
        return {
            "results": [hit(r) for r in results],
            "count": len(results),
            "took_ms": round((time.perf_counter() - started) * 1e3, 3),
            "library_empty": empty,
        }


def api_query(req: schemas.SearchRequest) -> Query:
    """The core Query for an API request: `q` in the query syntax (words only) + `terms`."""
    terms = []
    for t in req.terms:
        if t.text is not None:
            terms.append(Term("text", t.text, t.weight))
        elif t.like is not None:
            terms.append(Term("id", str(t.like), t.weight))
        else:
            terms.append(Term("upload", t.upload or "", t.weight))
    f = req.filters
    query = build_query(
        req.q or "",
        terms=terms,
        paths=False,
        k=req.k,
        min_score=req.min_score,
        within=f.folders,
        source=f.source,
        after=f.after,
        before=f.before,
        tag=f.tag,
        include_offline=f.include_offline,
        near=f.near,
        camera=f.camera,
        text=f.text,
        folder_names=f.folder_names,
        keywords=req.keywords,
        cutoff=req.cutoff,
    )
    if len(query.terms) > schemas.MAX_TERMS:
        raise QueryError(f"too many terms (at most {schemas.MAX_TERMS})")
    return query
