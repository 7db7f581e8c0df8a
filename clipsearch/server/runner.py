"""Running the app with uvicorn: in the foreground (`clipsearch serve`) or in a thread.

One server per library: before anything else it takes `LIB/server.lock`, so a second
`serve` on the same library stops at once with ServerRunning (naming the first one's URL and
pid), while a server killed without cleaning up blocks nothing. The socket is bound before the
app starts, so `--port 0` works and a port in use is a clear error. Once the app is ready to
answer, `LIB/server.json` announces it (see `clipsearch.server.client`); it is removed when the
server stops, before the lock is let go, and only if it is still this server's.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from clipsearch import __version__
from clipsearch.errors import ConfigError
from clipsearch.server.client import ServerLock, remove_server_file, write_server_file
from clipsearch.server.settings import ServerSettings

log = logging.getLogger("clipsearch.server")


def warm(library: Any) -> None:
    """Load the model and the index now, so the first request is as fast as the rest.

    Goes through the library's own search, so a model whose weights changed since indexing
    is refused here, before the server starts.
    """
    if library.dim is not None:
        library.search("warm up", k=1)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. (Made with IPPROTO_TCP: asyncio sets TCP_NODELAY only on
    connections from such sockets; without it every response waits ~40 ms for Nagle.)"""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
        sock.set_inheritable(False)
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use",
                hint="Is another `clipsearch serve` running? Pick a free port with --port.",
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def connect_url(host: str, port: int) -> str:
    """The URL a client on this machine uses to reach a server bound to host:port."""
    name = host.strip("[]")
    if name in ("", "0.0.0.0"):
        name = "127.0.0.1"
    elif name == "::":
        name = "::1"
    return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"


def claim(library: Any, settings: ServerSettings) -> tuple[ServerLock, socket.socket]:
    """Take the library's server lock, then bind the port: ServerRunning if another server
    serves this library (whatever its port), ConfigError if the port is taken."""
    lock = ServerLock(library.path)
    lock.acquire()
    try:
        return lock, bind(settings.host, settings.port)
    except BaseException:
        lock.release()
        raise


def _server(
    library: Any,
    settings: ServerSettings,
    sock: socket.socket,
    on_ready: Callable[[str], None] | None,
    log_level: str,
) -> tuple[Any, str]:
    import uvicorn

    from clipsearch.server.app import create_app

    settings = settings.with_(port=sock.getsockname()[1])
    url = connect_url(settings.host, settings.port)
    pid = os.getpid()

    def announce() -> None:
        try:
            write_server_file(
                library.path,
                {
                    "pid": pid,
                    "host": settings.host,
                    "port": settings.port,
                    "url": url,
                    "token_required": bool(settings.token),
                    "started": time.time(),
                    "version": __version__,
                    "library": str(library.path),
                },
            )
        except OSError as exc:
            log.warning(
                "cannot write %s/server.json (%s): `clipsearch search` will not find this server",
                library.path,
                exc.strerror or exc,
            )
        if on_ready:
            on_ready(url)

    def withdraw() -> None:
        remove_server_file(library.path, pid, settings.port)

    app = create_app(library, settings, on_start=announce, on_stop=withdraw)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=log_level,
        access_log=log_level == "debug",
        timeout_graceful_shutdown=5,
        server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(config), url


def run(
    library: Any,
    settings: ServerSettings,
    *,
    on_ready: Callable[[str], None] | None = None,
    on_loading: Callable[[], None] | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until Ctrl-C / SIGTERM (blocking). `on_ready(url)` runs once it answers.

    Another server for the library, or a busy port, fails fast: before `on_loading()` and
    the model.
    """
    lock, sock = claim(library, settings)
    port = sock.getsockname()[1]
    try:
        server, _ = _server(library, settings, sock, on_ready, log_level)
        if on_loading:
            on_loading()
        if settings.warm:
            warm(library)
        server.run(sockets=[sock])
    finally:
        sock.close()
        remove_server_file(library.path, os.getpid(), port)  # if the app could not stop cleanly
        lock.release()


class BackgroundServer:
    """A server in a thread of this process (tests, benchmarks)::

    with BackgroundServer(library, ServerSettings(port=0)) as srv:
        httpx.get(srv.url + "/api/status")
    """

    def __init__(
        self, library: Any, settings: ServerSettings | None = None, log_level: str = "warning"
    ) -> None:
        self.library = library
        self.settings = settings or ServerSettings(port=0)
        self.log_level = log_level
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock: ServerLock | None = None
        self._sock: socket.socket | None = None
        self._port = 0

    def start(self, timeout: float = 60) -> BackgroundServer:
        self._lock, self._sock = claim(self.library, self.settings)
        self._port = self._sock.getsockname()[1]
        try:
            self._server, self.url = _server(
                self.library,
                self.settings,
                self._sock,
                lambda _: self._ready.set(),
                self.log_level,
            )
            if self.settings.warm:
                warm(self.library)
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="clipsearch-server",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("the server did not start")
        return self

    @property
    def app(self) -> Any:
        """The FastAPI app being served."""
        return self._server.config.app if self._server is not None else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._release()

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            remove_server_file(self.library.path, os.getpid(), self._port)
            self._sock = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
