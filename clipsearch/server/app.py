"""The FastAPI app: an open library + settings in, the API and the web page out.

    app = create_app(library, ServerSettings())

Routers come from `routers.all_features()` (one per feature); errors are JSON
(`errors.py`); `security.Guard` sits in front of everything. The page is plain files in
`static/` (no build step); the API docs (Swagger UI at /docs, ReDoc at /redoc) are served
from files installed with the package, so they work offline.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from clipsearch import __version__
from clipsearch.server import errors
from clipsearch.server.context import ServerContext
from clipsearch.server.routers import all_features
from clipsearch.server.searching import QueryEngine
from clipsearch.server.security import Guard
from clipsearch.server.settings import ServerSettings

log = logging.getLogger("clipsearch.server")

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """\
Search a clipsearch photo library over HTTP: text, uploaded images, "more like this",
weighted mixes with negatives, and filters; images and cached thumbnails by id; status.

Every error is JSON: `{"error": {"code": "...", "message": "...", "hint": "..."}}`.
When the server has a token, send `Authorization: Bearer TOKEN` with every `/api/` request.
"""


def create_app(
    library: Any,
    settings: ServerSettings | None = None,
    *,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> FastAPI:
    """The app for one open library. `on_start`/`on_stop` run when it starts/stops serving."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if on_start:
            on_start()
        try:
            yield
        finally:
            if on_stop:
                on_stop()

    app = FastAPI(
        title="clipsearch",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=errors.JSONResponse,
    )
    app.state.ctx = ServerContext(library, settings, QueryEngine(library))
    errors.install(app)
    for feature in all_features():
        app.include_router(feature.router)
    _add_docs(app)
    _add_page(app)
    app.add_middleware(Guard, settings=settings)
    return app


def _add_page(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "icon.svg", media_type="image/svg+xml")


def _add_docs(app: FastAPI) -> None:
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="clipsearch API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/static/icon.svg",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="clipsearch API",
            redoc_js_url="/docs/assets/redoc.standalone.js",
            redoc_favicon_url="/static/icon.svg",
            with_google_fonts=False,
        )
