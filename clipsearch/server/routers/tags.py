"""Tags and zero-shot classification: the library's tags, tagging it, classifying images."""

from __future__ import annotations

import threading

from fastapi import APIRouter

from clipsearch.errors import LibraryLocked
from clipsearch.server import schemas
from clipsearch.server.context import Ctx
from clipsearch.server.errors import ApiError
from clipsearch.server.routers import Feature
from clipsearch.store import features

router = APIRouter(prefix="/api", tags=["tags"])
_tagging = threading.Lock()


@router.get("/tags", response_model=schemas.TagsResponse)
def tags(ctx: Ctx) -> dict:
    """The vocabulary the library is tagged with (if any) and every tag in use, with counts."""
    vocab = ctx.library.tag_vocabulary()
    if vocab is not None:
        vocab = {
            "name": vocab["name"],
            "labels": len(vocab["labels"]),
            "min_score": vocab.get("min_score"),
        }
    counts = features.tag_counts(ctx.library.store)
    return {"vocabulary": vocab, "tags": [{"label": lb, "images": n} for lb, n in counts]}


@router.post(
    "/tags",
    response_model=schemas.TagsResponse,
    responses={409: {"model": schemas.ErrorResponse, "description": "The library is busy."}},
)
def tag(req: schemas.TagRequest, ctx: Ctx) -> dict:
    """Tag every image (earlier tags are replaced); images indexed later are tagged too."""
    if not _tagging.acquire(blocking=False):
        raise ApiError(409, "busy", "the library is already being tagged")
    try:
        ctx.library.tag(req.vocabulary or req.labels, min_score=req.min_score)
    except LibraryLocked as exc:
        raise ApiError(
            409,
            "busy",
            f"the library is busy ({exc.message}); nothing was tagged",
            "Try again when the other clipsearch command has finished.",
        ) from None
    finally:
        _tagging.release()
    return tags(ctx)


@router.post("/classify", response_model=schemas.ClassifyResponse)
def classify(req: schemas.ClassifyRequest, ctx: Ctx) -> dict:
    """Each image's best labels among `labels` (prompt-ensembled zero-shot CLIP)."""
    results = ctx.library.classify(req.labels, ids=req.ids, top=req.top)[: req.limit]
    out = [r.to_dict() for r in results]
    return {"results": out, "count": len(out)}


FEATURE = Feature("tags", "Tags", router)
