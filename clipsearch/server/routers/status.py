"""Health, what the page needs to know, the library's status and its failures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clipsearch import __version__
from clipsearch.media.thumbs import SIZES
from clipsearch.server import schemas
from clipsearch.server.context import Ctx
from clipsearch.server.routers import Feature

router = APIRouter(prefix="/api", tags=["status"])


@router.get("/health", response_model=schemas.Health)
def health(ctx: Ctx) -> dict:
    """Cheap liveness check; the CLI uses it to confirm a server serves its library."""
    lib = ctx.library
    return {"ok": True, "version": __version__, "library": str(lib.path), "model": lib.model}


@router.get("/info", response_model=schemas.Info)
def info(ctx: Ctx) -> dict:
    """Features (and their pages), limits and whether a token is needed."""
    from clipsearch.server.routers import all_features

    lib = ctx.library
    return {
        "version": __version__,
        "library": str(lib.path),
        "model": lib.model,
        "features": [{"name": f.name, "title": f.title, "page": f.page} for f in all_features()],
        "token_required": bool(ctx.settings.token),
        "max_upload_bytes": ctx.settings.max_upload_bytes,
        "max_k": schemas.MAX_K,
        "thumb_sizes": list(SIZES),
    }


@router.get("/status", response_model=schemas.Status)
def status(ctx: Ctx) -> dict:
    """The same facts as `clipsearch status --json`."""
    return ctx.library.status()


@router.get("/failures", response_model=list[schemas.FailureInfo])
def failures(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict]:
    """Files that could not be indexed, with the reason, by path."""
    return ctx.library.failures(limit)


FEATURE = Feature("library", "Library", router, page="library")
