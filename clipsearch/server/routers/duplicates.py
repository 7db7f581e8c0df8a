"""Duplicates: groups with keepers, moving copies into quarantine, and undoing that.

The server never takes a destination path from a request: copies go to the library's own
`LIBRARY/quarantine/STAMP/` folder (keeping their paths relative to the indexed folder), and
an undo is named by that STAMP. Moving takes the library's writer lock; when another process
(an `index` run, the watch daemon) is writing, the answer is 409 and nothing moves.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from typing import Annotated

from fastapi import APIRouter, Query

from clipsearch.errors import LibraryLocked
from clipsearch.server import schemas
from clipsearch.server.context import Ctx
from clipsearch.server.errors import ApiError
from clipsearch.server.routers import Feature
from clipsearch.server.searching import image_links

router = APIRouter(prefix="/api/duplicates", tags=["duplicates"])
_moving = threading.Lock()  # one move or undo at a time in this process
_BUSY = {409: {"model": schemas.ErrorResponse, "description": "The library is busy."}}


def _member(raw: dict, sources: dict[int, str]) -> dict:  # Group.to_dict member -> DupeMember
    return {
        **raw,
        "source": sources.get(raw["id"], "photos"),
        **image_links(raw["id"], raw["path"]),
    }


@router.get("", response_model=schemas.DupesResponse)
def duplicates(
    ctx: Ctx,
    similar: Annotated[bool, Query(description="Include CLIP-similar images.")] = True,
    threshold: Annotated[float, Query(ge=-1, le=1, description="Cosine for similar.")] = 0.95,
    max_distance: Annotated[int, Query(ge=0, le=64, description="Hash bits for near.")] = 24,
) -> dict:
    """Every duplicate group: exact and near copies (`kind` "copies"), then similar images
    (`kind` "similar"), left out with a `warnings` line when the model cannot tell the
    library's pictures apart at `threshold`."""
    report = ctx.library.duplicates(max_distance=max_distance, threshold=threshold, similar=similar)
    out = report.to_dict()
    sources = {
        i: r.source
        for i, r in ctx.library.store.get_rows(
            [m.id for g in report.groups for m in g.members]
        ).items()
    }
    for raw in out["groups"]:
        raw["keeper"] = _member(raw["keeper"], sources)
        raw["others"] = [_member(m, sources) for m in raw["others"]]
    return out


def _locked(what: str) -> ApiError:
    return ApiError(
        409,
        "busy",
        f"the library is busy ({what}); nothing was moved",
        "Try again when the other clipsearch command has finished.",
    )


@router.post("/move", response_model=schemas.MoveResponse, responses=_BUSY)
def move(req: schemas.MoveRequest, ctx: Ctx) -> dict:
    """Move these images into `LIBRARY/quarantine/STAMP/`; the library follows. Never deletes."""
    lib = ctx.library
    known = lib.store.get_rows(req.ids)
    unknown = [i for i in req.ids if i not in known]
    if unknown:
        raise ApiError(404, "not_found", f"no image with id {unknown[0]} in this library")
    if not _moving.acquire(blocking=False):
        raise _locked("another move is running")
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = os.path.join(lib.path, "quarantine", stamp)
        try:
            report = lib.move_duplicates(list(dict.fromkeys(req.ids)), dest)
        except LibraryLocked as exc:
            raise _locked(exc.message) from None
    finally:
        _moving.release()
    out = report.to_dict()
    return {"moved": out["moved"], "skipped": out["skipped"], "undo": stamp if report.log else None}


@router.post("/undo", response_model=schemas.MoveResponse, responses=_BUSY)
def undo(req: schemas.UndoRequest, ctx: Ctx) -> dict:
    """Move the files of an earlier `move` back where they were."""
    lib = ctx.library
    logs = sorted(
        glob.glob(os.path.join(lib.path, "quarantine", req.undo, "clipsearch-undo-*.jsonl"))
    )
    if not logs:
        raise ApiError(404, "not_found", f"no quarantine move {req.undo!r} in this library")
    if not _moving.acquire(blocking=False):
        raise _locked("another move is running")
    try:
        moved, skipped = [], []
        for log in logs:
            try:
                report = lib.undo_moves(log)
            except LibraryLocked as exc:
                raise _locked(exc.message) from None
            out = report.to_dict()
            moved += out["moved"]
            skipped += out["skipped"]
    finally:
        _moving.release()
    return {"moved": moved, "skipped": skipped, "undo": None}


FEATURE = Feature("duplicates", "Duplicates", router, page="duplicates")
