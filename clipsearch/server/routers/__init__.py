"""One router per feature; the web page shows a page for each feature that has one.

To add a feature (duplicates, tags, generation...):

1. write `routers/NAME.py` with `router = APIRouter(prefix="/api/NAME", tags=["NAME"])` and
   `FEATURE = Feature("NAME", "Title", router, page="NAME")` (page=None for API only);
2. add it to `all_features()` below;
3. for a page, write `static/pages/NAME.js` exporting `title`, `mount(root, app)` and,
   optionally, `unmount()` (see `static/pages/search.js`); the navigation picks it up from
   `GET /api/info`.

Response shapes go in `schemas.py` (they are the stable, documented contract).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter


@dataclass(frozen=True)
class Feature:
    name: str
    title: str
    router: APIRouter
    page: str | None = None  # static/pages/<page>.js


def all_features() -> list[Feature]:
    from clipsearch.server.routers import (
        duplicates,
        generate,
        images,
        search,
        session,
        status,
        tags,
    )

    return [
        search.FEATURE,
        images.FEATURE,
        status.FEATURE,
        session.FEATURE,
        duplicates.FEATURE,
        tags.FEATURE,
        generate.FEATURE,
    ]
