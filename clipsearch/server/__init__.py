"""The HTTP API and the web page (`clipsearch serve`).

    from clipsearch.server import ServerSettings, create_app, run, BackgroundServer

Importing this package is cheap; FastAPI, uvicorn and numpy load with the names that need
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BackgroundServer", "ServerSettings", "create_app", "run"]

if TYPE_CHECKING:
    from clipsearch.server.app import create_app
    from clipsearch.server.runner import BackgroundServer, run
    from clipsearch.server.settings import ServerSettings

_WHERE = {
    "create_app": "clipsearch.server.app",
    "BackgroundServer": "clipsearch.server.runner",
    "run": "clipsearch.server.runner",
    "ServerSettings": "clipsearch.server.settings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)
