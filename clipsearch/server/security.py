"""The server's guard: one small ASGI middleware in front of everything.

In order, for every HTTP request:

1. **Host check** (when listening on loopback): the `Host` header must name this machine
   (127.0.0.1, localhost, [::1]); this stops DNS-rebinding pages from reading the API.
2. **Cross-origin writes**: a POST/PUT/PATCH/DELETE whose `Origin` is another site is
   refused, so a web page elsewhere cannot act on the library through the user's browser.
3. **Token** (when one is set): every `/api/` request except the login must carry it, as
   `Authorization: Bearer TOKEN` or the cookie `POST /api/session` sets. The page's own
   files and the API docs carry no library data and load without it.
4. **Body size**: a declared `Content-Length` over the limit is refused at once; a body
   streamed without one is cut off when it passes the limit.
5. **Response headers**: no MIME sniffing, no referrer, no framing, and a strict
   Content-Security-Policy for the page (scripts and styles from this server only).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clipsearch.server.errors import error_bytes
from clipsearch.server.settings import ServerSettings

COOKIE = "clipsearch_token"
JSON_BODY_LIMIT = 1 * 2**20  # bytes, for everything that is not an upload
_MULTIPART_SLACK = 64 * 2**10  # form boundaries and headers around an upload
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
_PUBLIC_PATHS = frozenset({"/api/session"})
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def host_name(host_header: str) -> str:
    """The name part of a Host header ('[::1]:8765' -> '[::1]', 'a:1' -> 'a')."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[: h.find("]") + 1] if "]" in h else h
    return h.rsplit(":", 1)[0] if ":" in h else h


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class Guard:
    """ASGI middleware applying the rules in this module's docstring."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings
        self.allowed_hosts = _LOOPBACK_NAMES | {host_name(settings.host)}
        self.upload_limit = settings.max_upload_bytes + _MULTIPART_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        multipart = headers.get("content-type", "").startswith("multipart/")
        limit = self.upload_limit if multipart else JSON_BODY_LIMIT
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "bad_request", "bad Content-Length header")
                return
            if int(declared) > limit:
                await _answer(send, 413, "too_large", _too_large(limit, multipart), close=True)
                return
        await self.app(scope, _limited(receive, limit, multipart), self._decorated(scope, send))

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        host = headers.get("host", "")
        if self.settings.loopback and host_name(host) not in self.allowed_hosts:
            return 400, "bad_host", "this server answers only requests addressed to this machine"
        origin = headers.get("origin")
        if (
            scope["method"] not in _SAFE_METHODS
            and origin is not None
            and (origin == "null" or urlsplit(origin).netloc.lower() != host.lower())
        ):
            return 403, "forbidden", "cross-origin requests that change things are refused"
        token = self.settings.token
        path: str = scope["path"]
        if token and path.startswith("/api/") and path not in _PUBLIC_PATHS:
            auth = headers.get("authorization", "")
            bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE)
            if not (token_matches(bearer, token) or token_matches(cookie, token)):
                return 401, "unauthorized", "this server needs its token"
        return None

    def _decorated(self, scope: Scope, send: Send) -> Send:
        path: str = scope["path"]
        page = not path.startswith(("/api/", "/docs", "/redoc"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h.setdefault("x-content-type-options", "nosniff")
                h.setdefault("referrer-policy", "no-referrer")
                h.setdefault("x-frame-options", "DENY")
                if page:
                    h.setdefault("content-security-policy", _CSP)
                    h.setdefault("cache-control", "no-cache")
            await send(message)

        return send_with_headers


def _limited(receive: Receive, limit: int, multipart: bool) -> Receive:
    seen = 0

    async def counting_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_large(limit, multipart))
        return message

    return counting_receive


def _too_large(limit: int, multipart: bool) -> str:
    if multipart:
        return f"upload too large: the limit is {(limit - _MULTIPART_SLACK) / 2**20:.0f} MB"
    return f"request body too large: the limit is {limit // 1024} KB"


async def _answer(send: Send, status: int, code: str, message: str, *, close: bool = False) -> None:
    body = error_bytes(code, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="clipsearch"'))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
