"""What every route needs: the open library, the settings, the query engine."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from clipsearch.server.searching import QueryEngine
from clipsearch.server.settings import ServerSettings


@dataclass
class ServerContext:
    library: Any  # clipsearch.library.Library (kept loose: nothing heavy at import time)
    settings: ServerSettings
    engine: QueryEngine
    started: float = field(default_factory=time.time)


def get_ctx(request: Request) -> ServerContext:
    """FastAPI dependency: the context of the app answering this request."""
    return request.app.state.ctx


Ctx = Annotated[ServerContext, Depends(get_ctx)]
