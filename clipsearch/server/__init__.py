"""The HTTP API and the web page (`clipsearch serve`).

    from clipsearch.server import ServerSettings, create_app, run

FastAPI and uvicorn are imported only when this package is.
"""

from clipsearch.server.app import create_app
from clipsearch.server.runner import BackgroundServer, run
from clipsearch.server.settings import ServerSettings

__all__ = ["BackgroundServer", "ServerSettings", "create_app", "run"]
