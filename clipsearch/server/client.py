"""Finding and talking to a running `clipsearch serve` for a library.

A library has at most one server. It holds `LIB/server.lock` (a kernel lock: a killed server
releases it at once) for its whole life, and announces itself in `LIB/server.json` (written
atomically when it starts answering, removed when it stops)::

    {"pid": 4242, "host": "127.0.0.1", "port": 8765, "url": "http://127.0.0.1:8765",
     "token_required": false, "started": 1718000000.0, "version": "0.1.0",
     "library": "/home/me/clip-lib"}

`clipsearch search` uses a live one (the model is already loaded there) and falls back to
searching in-process when there is none, it is not alive, it does not answer quickly, it
needs a token the environment does not hold (`CLIPSEARCH_TOKEN`), or it fails. Query images
are sent as bytes, never as paths. A `server.json` whose server no longer holds the lock is
stale, whatever its pid. Standard library only: no HTTP package is needed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from clipsearch.errors import ClipsearchError, QueryError

log = logging.getLogger(__name__)

SERVER_FILE = "server.json"
SERVER_LOCK = "server.lock"
TOKEN_ENV = "CLIPSEARCH_TOKEN"
CONNECT_TIMEOUT = 1.0  # seconds for the liveness check: a busy or hung server is skipped
REQUEST_TIMEOUT = 60.0


# --- the server file --------------------------------------------------------------------------


def server_file(library: str | Path) -> Path:
    return Path(library) / SERVER_FILE


def write_server_file(library: str | Path, info: dict[str, Any]) -> None:
    """Write `server.json` atomically (readable by the owner only)."""
    target = server_file(library)
    fd, tmp = tempfile.mkstemp(prefix=".server-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(info, f, indent=2)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_server_file(library: str | Path) -> dict[str, Any] | None:
    try:
        info = json.loads(server_file(library).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def remove_server_file(library: str | Path, pid: int, port: int) -> None:
    """Remove `server.json` if it is still this server's (another may have replaced it)."""
    info = read_server_file(library)
    if info and info.get("pid") == pid and info.get("port") == port:
        with contextlib.suppress(OSError):
            server_file(library).unlink()


class ServerRunning(ClipsearchError):
    """Another `clipsearch serve` already serves this library (exit code 3, like a busy
    library)."""

    exit_code = 3


class ServerLock:
    """`LIB/server.lock`, held by the library's one server from before it binds its port
    until after it has removed its `server.json`.

    The kernel holds the lock (flock), so a server killed with SIGKILL releases it at once:
    the `server.json` it leaves behind never blocks the next server, and clients know it is
    stale. The file records the holder's pid, for messages.
    """

    def __init__(self, library: str | Path) -> None:
        from clipsearch.store.lock import FlockFile

        self.library = Path(library)
        self.path = self.library / SERVER_LOCK
        self._file = FlockFile(self.path)

    def acquire(self, wait: float = 0.5) -> None:
        """Take the lock, or raise ServerRunning naming the server that holds it.

        `wait` covers a client that is checking the lock at this very moment. A library
        folder that cannot hold the lock file (read-only) is served unguarded: such a server
        cannot write `server.json` either.
        """
        note = {"pid": os.getpid(), "since": time.time()}
        deadline = time.monotonic() + wait
        while True:
            try:
                if self._file.try_acquire(note):
                    break
            except OSError as exc:
                log.warning(
                    "cannot create %s (%s): not guarding against a second server",
                    self.path,
                    exc.strerror or exc,
                )
                return
            if time.monotonic() >= deadline:
                raise self._running(self._file.holder())
            time.sleep(0.05)
        # Any server.json now is a leftover of a server that was killed: nobody answers there.
        info = read_server_file(self.library)
        if info is not None:
            log.info("removing the stale server.json of pid %s", info.get("pid"))
            with contextlib.suppress(OSError):
                server_file(self.library).unlink()

    def release(self) -> None:
        self._file.release()

    def held_by_anyone(self) -> bool | None:
        """Whether some server holds the lock now; None when there is no lock file."""
        if not self.path.exists():
            return None
        return bool(self._file.holder())

    def _running(self, holder: dict) -> ServerRunning:
        pid = holder.get("pid")
        info = read_server_file(self.library)
        stop = f"`kill {pid}`" if isinstance(pid, int) else "stop it"
        if info and info.get("pid") == pid and info.get("url"):
            return ServerRunning(
                f"a clipsearch server already serves the library {self.library} at "
                f"{info['url']} (pid {pid})",
                hint=f"Open {info['url']} — `clipsearch search` on this library already uses "
                "it. A library has one server at a time, on any port: to start this one "
                f"instead, stop that one first (Ctrl-C where it runs, or {stop}).",
            )
        return ServerRunning(
            f"another clipsearch server (pid {pid if pid is not None else '?'}) is starting for "
            f"the library {self.library}",
            hint="It answers once its model is loaded, and `clipsearch search` will use it. A "
            f"library has one server at a time: to start this one instead, stop that one first "
            f"({stop}).",
        )


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- HTTP --------------------------------------------------------------------------------------


class Unavailable(Exception):
    """No usable server (the reason is logged; the caller falls back)."""


class ServerError(Exception):
    """The server answered with a JSON error."""

    def __init__(self, status: int, code: str, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint


class Client:
    """A small JSON-over-HTTP client for one server (one kept-alive connection)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = REQUEST_TIMEOUT):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise Unavailable(f"bad server url {url!r}")
        self.url, self.token, self.timeout = url, token, timeout
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def close(self) -> None:
        self._conn.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
        files: dict[str, tuple[str, bytes]] | None = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if files is not None:
            data, headers["Content-Type"] = _multipart(files)
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if params:
            path += "?" + urlencode(params, doseq=True)
        self._conn.timeout = timeout or self.timeout
        try:
            if self._conn.sock is not None:
                self._conn.sock.settimeout(self._conn.timeout)
            self._conn.request(method, path, body=data, headers=headers)
            resp = self._conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            raise Unavailable(f"{method} {path}: {exc or type(exc).__name__}") from None
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            raise Unavailable(f"{method} {path}: answer is not JSON") from None
        if resp.status >= 400:
            err = (payload or {}).get("error") if isinstance(payload, dict) else None
            err = err if isinstance(err, dict) else {}
            raise ServerError(
                resp.status,
                str(err.get("code", "error")),
                str(err.get("message", f"HTTP {resp.status}")),
                err.get("hint"),
            )
        return payload


def _multipart(files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "clipsearch-" + secrets.token_hex(12)
    out = bytearray()
    for field, (name, content) in files.items():
        safe = name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        out += f"--{boundary}\r\n".encode()
        out += f'Content-Disposition: form-data; name="{field}"; filename="{safe}"\r\n'.encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n"
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def connect(library: str | Path, *, token: str | None = None, model: str | None = None) -> Client:
    """A client for the live server of `library`; raises Unavailable (with why) otherwise.

    `model`, when given, must be the library's model (else the caller's in-process search
    gives the proper error).
    """
    library = os.path.abspath(library)
    info = read_server_file(library)
    if info is None:
        raise Unavailable("no server.json in the library")
    if ServerLock(library).held_by_anyone() is False or not pid_alive(info.get("pid")):
        raise Unavailable(f"the server (pid {info.get('pid')}) is not running; stale server.json")
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if info.get("token_required") and not token:
        raise Unavailable(f"the server needs a token and {TOKEN_ENV} is not set")
    client = Client(str(info.get("url", "")), token)
    try:
        health = client.request("GET", "/api/health", timeout=CONNECT_TIMEOUT)
    except (Unavailable, ServerError) as exc:
        client.close()
        raise Unavailable(f"the server at {client.url} did not answer: {exc}") from None
    if not isinstance(health, dict) or health.get("library") != library:
        client.close()
        raise Unavailable(f"the server at {client.url} serves another library")
    if model is not None:
        from clipsearch.model.specs import ModelSpec

        if ModelSpec.parse(model).canonical != health.get("model"):
            client.close()
            raise Unavailable(f"the server uses model {health.get('model')}, not {model}")
    return client


# --- search through a server -----------------------------------------------------------------


@dataclass(frozen=True)
class ServerAnswer:
    results: list  # list[SearchResult]
    library_empty: bool
    url: str
    seconds: float


def search(library: str | Path, query: Any, *, model: str | None = None) -> ServerAnswer | None:
    """Run a prepared `search.Query` on the library's live server; None if there is none.

    Errors in the query itself (an unknown `--like` id, terms that cancel out) raise
    QueryError exactly as an in-process search would; any other failure returns None.
    """
    started = time.perf_counter()
    if read_server_file(os.path.abspath(library)) is None:
        log.info("no clipsearch server for this library; searching in-process")
        return None
    try:
        client = connect(library, model=model)
    except Unavailable as exc:
        log.info("not using a server (%s); searching in-process", exc)
        return None
    try:
        answer = _search(client, query)
    except Unavailable as exc:
        log.info("the server failed (%s); searching in-process", exc)
        return None
    except ServerError as exc:
        if exc.code == "bad_query":
            raise QueryError(exc.message, hint=exc.hint) from None
        log.info("the server answered %s %s; searching in-process", exc.status, exc.message)
        return None
    finally:
        client.close()
    log.info("searched with the server at %s", client.url)
    return ServerAnswer(
        answer["results"], answer["library_empty"], client.url, time.perf_counter() - started
    )


def _search(client: Client, query: Any) -> dict:
    from clipsearch.query.search import SearchResult

    terms: list[dict[str, Any]] = []
    for t in query.terms:
        if t.kind == "text":
            terms.append({"text": t.value, "weight": t.weight})
        elif t.kind == "id":
            terms.append({"like": int(t.value), "weight": t.weight})
        else:  # an image file on this machine: send its bytes
            try:
                data = Path(t.value).read_bytes()
            except OSError as exc:
                raise QueryError(f"cannot read query image {t.value}: {exc.strerror}") from None
            up = client.request("POST", "/api/uploads", files={"image": (Path(t.value).name, data)})
            terms.append({"upload": up["id"], "weight": t.weight})
    body = {
        "terms": terms,
        "k": query.k,
        "min_score": query.min_score,
        "filters": {
            "folders": list(query.within),
            "source": query.source,
            "after": query.after,
            "before": query.before,
            "tag": query.tag,
            "include_offline": query.include_offline,
            "near": query.near.text if query.near else None,
            "camera": query.camera,
            "text": list(query.text),
            "folder_names": list(query.folder_names),
        },
        "keywords": list(query.keywords),
        "cutoff": query.cutoff,
    }
    answer = client.request("POST", "/api/search", body=body)
    names = [f.name for f in fields(SearchResult)]
    results = [SearchResult(**{n: r[n] for n in names if n in r}) for r in answer["results"]]
    return {"results": results, "library_empty": bool(answer.get("library_empty"))}
