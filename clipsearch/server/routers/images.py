"""Images by id: facts, the original file, cached thumbnails.

Only files the library has indexed are served, looked up by their numeric id: a request never
names a path. A file that is gone from disk, or is no longer a regular file, is a 404.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, Response

from clipsearch.errors import UnreadableImage
from clipsearch.media.fs import display
from clipsearch.media.thumbs import DEFAULT_SIZE, SIZES, thumbnail
from clipsearch.server import schemas
from clipsearch.server.context import Ctx, ServerContext
from clipsearch.server.errors import ApiError
from clipsearch.server.routers import Feature
from clipsearch.server.searching import image_links
from clipsearch.store.facts import facts_of

router = APIRouter(prefix="/api/images", tags=["images"])

ImageId = Annotated[int, Path(ge=1, le=2**62, description="The image's id in the library.")]
_BROWSER_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP"})  # MPO: phone JPEGs
_NOT_FOUND = {404: {"model": schemas.ErrorResponse}}


def _row(ctx: ServerContext, image_id: int):  # -> ImageRow
    row = ctx.library.store.get_rows([image_id]).get(image_id)
    if row is None:
        raise ApiError(404, "not_found", f"no image with id {image_id} in this library")
    return row


def _existing_file(row) -> str:
    try:
        st = os.stat(row.path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise ApiError(
            404,
            "file_gone",
            f"image {row.id} is no longer on disk at {row.path}",
            "Run `clipsearch index` again to bring the library up to date.",
        )
    return row.path


@router.get("/{image_id}", response_model=schemas.ImageDetail, responses=_NOT_FOUND)
def image(image_id: ImageId, ctx: Ctx) -> dict:
    """Everything the library knows about one image."""
    row = _row(ctx, image_id)
    links = image_links(row.id, row.path)
    browser_ok = (row.format or "").upper() in _BROWSER_FORMATS
    return {
        "id": row.id,
        "path": row.path,
        "width": row.width,
        "height": row.height,
        "size": row.size,
        "mtime": row.mtime_ns / 1e9,
        "taken_at": row.taken_at,
        "source": row.source,
        "format": row.format,
        "folder": os.path.dirname(row.path),
        "added_at": row.added_at,
        "updated_at": row.updated_at,
        "exists": os.path.isfile(row.path),
        "preview_url": links["file_url"] if browser_ok else f"{links['thumb_url']}?size=1280",
        **links,
        **facts_for_display(facts_of(ctx.library.store, [row.id]).get(row.id, {})),
    }


def facts_for_display(f: dict) -> dict:
    """photo_facts columns -> the ImageDetail fields (camera, place, map link, text)."""
    from clipsearch.media.metadata import PhotoFacts

    camera = PhotoFacts(f.get("camera_make"), f.get("camera_model")).camera
    lat, lon = f.get("lat"), f.get("lon")
    place = ", ".join(
        dict.fromkeys(p for p in (f.get("city"), f.get("region"), f.get("country")) if p)
    )
    return {
        "camera": camera,
        "lens": f.get("lens"),
        "lat": lat,
        "lon": lon,
        "place": place or None,
        "map_url": (
            f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=15/{lat:.5f}/{lon:.5f}"
            if lat is not None and lon is not None
            else None
        ),
        "text": f.get("ocr_text") or None,
    }


@router.get("/{image_id}/file", response_class=FileResponse, responses=_NOT_FOUND)
def image_file(image_id: ImageId, ctx: Ctx) -> FileResponse:
    """The original file, as it is on disk."""
    row = _row(ctx, image_id)
    path = _existing_file(row)
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    name = display(os.path.basename(path))  # a name that is not UTF-8, escaped
    return FileResponse(
        path,
        media_type=media,
        content_disposition_type="inline",
        filename=name,
        headers={"cache-control": "private, max-age=60"},
    )


@router.get(
    "/{image_id}/thumb",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "A JPEG thumbnail."},
        **_NOT_FOUND,
        415: {"model": schemas.ErrorResponse},
    },
)
def image_thumb(
    image_id: ImageId,
    ctx: Ctx,
    size: Annotated[int, Query(description=f"Longest side: one of {list(SIZES)}.")] = DEFAULT_SIZE,
) -> Response:
    """A JPEG thumbnail, made on first request and cached in the library (`thumbs/`).

    A damaged cached file is made again; when the cache cannot be written (a full disk, a
    read-only library folder) the thumbnail is sent from memory.
    """
    if size not in SIZES:
        raise ApiError(422, "invalid", f"size must be one of {', '.join(map(str, SIZES))}")
    row = _row(ctx, image_id)
    path = _existing_file(row)
    try:
        thumb = thumbnail(ctx.library.path, path, row.content_hash, size)
    except UnreadableImage as exc:
        raise ApiError(415, "not_an_image", f"cannot make a thumbnail: {exc.reason}") from None
    return Response(
        thumb.data,
        media_type="image/jpeg",
        headers={"cache-control": "private, max-age=600"},
    )


FEATURE = Feature("images", "Images", router)
