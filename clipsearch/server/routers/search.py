"""Search: text, uploaded images, "more like this", weighted mixes, negatives and filters."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import ValidationError

from clipsearch.server import schemas
from clipsearch.server.context import Ctx
from clipsearch.server.errors import ApiError
from clipsearch.server.routers import Feature

router = APIRouter(prefix="/api", tags=["search"])

_ERRORS = {
    400: {"model": schemas.ErrorResponse, "description": "A bad query or bad JSON."},
    410: {"model": schemas.ErrorResponse, "description": "An upload id the server forgot."},
    422: {"model": schemas.ErrorResponse, "description": "A parameter out of range."},
}
_UPLOAD_ERRORS = {
    413: {"model": schemas.ErrorResponse, "description": "Over the upload size limit."},
    415: {"model": schemas.ErrorResponse, "description": "Not an image clipsearch can read."},
}


@router.get("/search", response_model=schemas.SearchResponse, responses=_ERRORS)
def search_get(
    ctx: Ctx,
    q: Annotated[str, Query(max_length=1000, description="Words: `2:dog + cat - fruit`.")] = "",
    like: Annotated[list[int] | None, Query(description="More like these image ids.")] = None,
    not_: Annotated[list[str] | None, Query(alias="not", description="Push away from.")] = None,
    k: Annotated[int, Query(ge=1, le=schemas.MAX_K)] = 30,
    min_score: Annotated[float | None, Query(ge=-1, le=1)] = None,
    folder: Annotated[list[str] | None, Query(description="Only inside this folder.")] = None,
    source: Annotated[str | None, Query(pattern="^(photos|generated)$")] = None,
    after: Annotated[str | None, Query(max_length=40)] = None,
    before: Annotated[str | None, Query(max_length=40)] = None,
    tag: Annotated[str | None, Query(max_length=200, description="Only images tagged so.")] = None,
    near: Annotated[str | None, Query(max_length=200, description="Near a place.")] = None,
    camera: Annotated[str | None, Query(max_length=200, description="Camera words.")] = None,
    text: Annotated[list[str] | None, Query(description="Words in the picture.")] = None,
    cutoff: Annotated[str | None, Query(pattern="^auto$", description="End at a drop.")] = None,
) -> dict:
    """Search with query parameters: handy for links and `curl`.

    `q` takes the query language: `beach near:Lisbon after:2023 text:"invoice" "project
    plan"` (filters and quoted phrases), as the CLI does.
    """
    terms = [schemas.Term(like=i) for i in like or []]
    terms += [schemas.Term(text=n, weight=-1.0) for n in not_ or [] if n.strip()]
    if not terms and not q.strip() and not (near or camera or text or folder or tag):
        raise ApiError(400, "bad_query", "empty query: give q or like")
    try:
        filters = schemas.Filters(
            folders=folder or [],
            source=source,
            after=after,
            before=before,
            tag=tag,
            near=near,
            camera=camera,
            text=text or [],
        )
        req = schemas.SearchRequest(
            q=q, terms=terms, k=k, min_score=min_score, filters=filters, cutoff=cutoff
        )
    except ValidationError as exc:
        raise ApiError(422, "invalid", _first_error(exc)) from None
    return ctx.engine.search(req)


@router.get("/query", response_model=schemas.QueryParse)
def parse_query(
    q: Annotated[str, Query(max_length=1000, description="A query in the query language.")] = "",
) -> dict:
    """How the search reads `q` (the page's filter chips come from here): the same parser as
    the search itself, so a chip is exactly what the search will do."""
    from clipsearch.errors import QueryError
    from clipsearch.query.parse import resolve_near, split_query

    try:
        parts = split_query(q)
        filters = []
        for (key, value), (start, end) in zip(parts.filters, parts.spans, strict=True):
            label = f"{key} {value}"
            if key == "near":
                label = f"near {resolve_near(value).label}"
            filters.append({"key": key, "value": value, "start": start, "end": end, "label": label})
    except QueryError as exc:
        error = {"message": exc.message, "hint": exc.hint, "position": exc.position}
        return {"free": q, "filters": [], "keywords": [], "error": error}
    return {"free": parts.free, "filters": filters, "keywords": list(parts.phrases)}


@router.post("/search", response_model=schemas.SearchResponse, responses=_ERRORS)
def search_post(req: schemas.SearchRequest, ctx: Ctx) -> dict:
    """Search with a weighted mix of text, library images (`like`) and uploaded images."""
    return ctx.engine.search(req)


@router.post(
    "/uploads",
    response_model=schemas.Upload,
    status_code=201,
    responses={**_UPLOAD_ERRORS, 422: {"model": schemas.ErrorResponse}},
)
def upload(
    ctx: Ctx,
    image: Annotated[UploadFile, File(description="The query image (any format it reads).")],
) -> schemas.Upload:
    """Send a query image once; refer to it in search terms as `{"upload": ID}`.

    The image is read, checked and embedded; only its vector is kept (in memory, for the
    server's lifetime, the most recent few hundred).
    """
    return ctx.engine.add_upload(image.file.read())


@router.post(
    "/search/image",
    response_model=schemas.SearchResponse,
    responses={**_ERRORS, **_UPLOAD_ERRORS},
)
def search_image(
    ctx: Ctx,
    image: Annotated[UploadFile, File(description="The query image.")],
    query: Annotated[
        str | None,
        Form(
            description="Optional JSON: a SearchRequest (terms may be left out) to mix in "
            "text, filters, k; the image is added as a term of weight `weight`.",
        ),
    ] = None,
    weight: Annotated[float, Form(ge=-100, le=100)] = 1.0,
) -> dict:
    """One-shot search by an uploaded image: `curl -F image=@photo.jpg URL/api/search/image`."""
    try:
        spec = json.loads(query) if query else {}
    except ValueError:
        raise ApiError(400, "bad_json", "the query field is not valid JSON") from None
    if not isinstance(spec, dict):
        raise ApiError(422, "invalid", "the query field must be a JSON object")
    terms = spec.get("terms", [])
    if not isinstance(terms, list):
        raise ApiError(422, "invalid", "terms must be a list")
    up = ctx.engine.add_upload(image.file.read())
    spec["terms"] = [*terms, {"upload": up.id, "weight": weight}]
    try:
        req = schemas.SearchRequest.model_validate(spec)
    except ValidationError as exc:
        raise ApiError(422, "invalid", _first_error(exc)) from None
    return ctx.engine.search(req)


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(p) for p in e.get("loc", ()))
    return f"{loc}: {e.get('msg')}" if loc else str(e.get("msg"))


FEATURE = Feature("search", "Search", router, page="search")
