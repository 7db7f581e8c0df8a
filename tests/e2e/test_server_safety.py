"""Safe by default: hostile requests get JSON errors, the server stays up, nothing changes.

Every test here checks that the library (database rows, vectors, files in the photo folder)
is exactly as it was afterwards; only thumbnails may appear in the library's cache folder.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import sqlite3
import zlib
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.errors import ConfigError
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import make_image

TOKEN = "correct-horse-battery-staple-42"


def snapshot(lib_dir: Path, photos: Path) -> dict:
    """What must never change: the rows, vectors and meta in the database; the photos."""
    db = sqlite3.connect(f"file:{lib_dir / 'clipsearch.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT id, path, size, mtime_ns, content_hash, data FROM images "
            "LEFT JOIN vectors ON vectors.image_id = images.id ORDER BY id"
        ).fetchall()
        meta = db.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
        failures = db.execute("SELECT path, reason FROM failures ORDER BY path").fetchall()
    finally:
        db.close()
    files = {
        str(p.relative_to(photos)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(photos.rglob("*"))
        if p.is_file()
    }
    return {"rows": rows, "meta": meta, "failures": failures, "photos": files}


def _served(root: Path, model: str, settings: ServerSettings):
    photos = root / "photos"
    for i in range(4):
        make_image(photos / f"img{i}.jpg", seed=i)
    lib = Library.open(root / "library", model=model)
    lib.index([photos])
    srv = BackgroundServer(lib, settings).start()
    return lib, srv, photos


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("hostile")
    lib, srv, photos = _served(root, tiny_model, ServerSettings(port=0, max_upload_bytes=2**20))
    before = snapshot(root / "library", photos)
    http = httpx.Client(base_url=srv.url, timeout=60)
    yield SimpleNamespace(
        url=srv.url, http=http, lib=lib, lib_dir=root / "library", photos=photos, before=before
    )
    http.close()
    srv.stop()
    lib.close()


@pytest.fixture
def unchanged(served):
    """Checks, after the test, that the server answers and the library did not change."""
    yield
    health = served.http.get("/api/health")
    assert health.status_code == 200 and health.json()["ok"] is True
    assert snapshot(served.lib_dir, served.photos) == served.before


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """Send `path` exactly as written (no client-side normalisation of `..`)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def assert_json_error(status: int, body: bytes, code: str | None = None) -> dict:
    text = body.decode("utf-8", "replace")
    assert "Traceback" not in text and 'File "' not in text
    err = json.loads(text)["error"]
    assert set(err) == {"code", "message", "hint"} and err["message"]
    if code:
        assert err["code"] == code, (status, err)
    return err


TRAVERSALS = [
    "/api/images/../../../../etc/passwd",
    "/api/images/..%2F..%2F..%2Fetc%2Fpasswd/file",
    "/api/images/%2e%2e%2fclipsearch.db/file",
    "/api/images/1%2F..%2F..%2Fclipsearch.db/file",
    "/api/images/-1/file",
    "/api/images/0/thumb",
    "/api/images/1.5/file",
    "/api/images/1%00/file",
    "/api/images/99999999999999999999999/file",
    "/api/images//etc/passwd/file",
    "/static/../clipsearch.db",
    "/static/..%2F..%2Fclipsearch.db",
    "/static/%2e%2e/%2e%2e/server.json",
    "/docs/assets/../../clipsearch.db",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_paths_from_requests_are_never_served(served, unchanged, path):
    status, body = raw_get(served.url, path)
    assert status in (400, 404, 405, 422), (path, status)
    assert b"SQLite format" not in body and b"root:" not in body
    if body.startswith(b"{"):
        assert_json_error(status, body)


def test_huge_upload_is_refused(served, unchanged):
    big = b"\xff\xd8\xff" + b"\0" * (2 * 2**20)
    try:
        resp = served.http.post("/api/uploads", files={"image": ("big.jpg", big)})
    except httpx.TransportError:
        pytest.fail("the server dropped the connection instead of answering 413")
    assert resp.status_code == 413
    assert "1 MB" in assert_json_error(413, resp.content, "too_large")["message"]


def test_streamed_upload_without_length_is_cut_off(served, unchanged):
    def chunks():
        yield b"--b\r\nContent-Disposition: form-data; name=image; filename=x.jpg\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 65536

    headers = {"content-type": "multipart/form-data; boundary=b"}
    resp = served.http.post("/api/uploads", content=chunks(), headers=headers)
    assert resp.status_code == 413
    assert_json_error(413, resp.content, "too_large")


@pytest.mark.parametrize(
    "name, data",
    [
        ("notes.txt", b"this is not a picture"),
        ("empty.jpg", b""),
        ("fake.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 100),
        ("script.jpg", b"<script>alert(1)</script>"),
    ],
)
def test_non_images_are_refused(served, unchanged, name, data):
    resp = served.http.post("/api/uploads", files={"image": (name, data, "image/jpeg")})
    assert resp.status_code == 415
    assert_json_error(415, resp.content, "not_an_image")


def test_truncated_image_and_decompression_bomb(served, unchanged):
    jpeg = (served.photos / "img0.jpg").read_bytes()
    cut = served.http.post("/api/uploads", files={"image": ("cut.jpg", jpeg[: len(jpeg) // 2])})
    assert cut.status_code == 415
    # A 30000 x 30000 PNG: tiny on the wire, 900 megapixels once decoded.
    bomb = _png_header(30000, 30000) + _chunk(b"IDAT", zlib.compress(b"\0" * 30001 * 64))
    resp = served.http.post(
        "/api/uploads", files={"image": ("bomb.png", bomb + _chunk(b"IEND", b""))}
    )
    assert resp.status_code == 415
    assert "too large" in assert_json_error(415, resp.content, "not_an_image")["message"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def _png_header(w: int, h: int) -> bytes:
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)


@pytest.mark.parametrize(
    "body, status",
    [
        (b"{not json", 400),
        (b"[]", 422),
        (b'{"q": "dog", "k": 0}', 422),
        (b'{"q": "dog", "k": 1e9}', 422),
        (b'{"q": "dog", "min_score": "NaN"}', 422),
        (b'{"q": "dog", "filters": {"folders": "/"}}', 422),
        (b'{"q": "dog", "unknown": 1}', 422),
        (b'{"terms": [{"upload": "../../etc/passwd"}]}', 410),
        (b'{"terms": [{"like": "../1"}]}', 422),
        (b'{"q": "' + b"[" * 5000 + b'"}', 422),
        (b"[" * 100_000, 400),
        (b'{"q": "\xff\xfe"}', 400),
    ],
)
def test_bad_json_gets_a_json_error(served, unchanged, body, status):
    resp = served.http.post(
        "/api/search", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == status, resp.text
    assert_json_error(status, resp.content)


def test_oversized_json_body_is_refused(served, unchanged):
    resp = served.http.post("/api/search", json={"q": "x" * (2 * 2**20)})
    assert resp.status_code == 413
    assert_json_error(413, resp.content, "too_large")


def test_path_like_text_is_only_ever_text(served, unchanged, tmp_path):
    secret = make_image(tmp_path / "secret.jpg", seed=1)  # same pixels as img1.jpg
    for q in (str(secret), "./img1.jpg", "~/x.jpg", "../../library/clipsearch.db"):
        hits = served.http.get("/api/search", params={"q": q, "k": 4}).json()["results"]
        # If the server had read the file, img1 would come first with a score of ~1.
        assert not hits or hits[0]["score"] < 0.999
    folder = served.http.get("/api/search", params={"q": "x", "folder": "../../../etc"})
    assert folder.status_code == 200 and folder.json()["results"] == []


def test_wrong_methods_and_unknown_routes(served, unchanged):
    assert_json_error(405, served.http.delete("/api/search").content, "method_not_allowed")
    assert_json_error(404, served.http.get("/api/nothing-here").content, "not_found")
    resp = served.http.post("/api/uploads", content=b"x", headers={"content-type": "text/plain"})
    assert resp.status_code in (400, 422)
    assert_json_error(resp.status_code, resp.content)


def test_other_hosts_and_cross_origin_writes_are_refused(served, unchanged):
    rebind = served.http.get("/api/status", headers={"host": "attacker.example:8765"})
    assert rebind.status_code == 400
    assert_json_error(400, rebind.content, "bad_host")
    post = served.http.post(
        "/api/search", json={"q": "dog"}, headers={"origin": "http://attacker.example"}
    )
    assert post.status_code == 403
    same = served.http.post("/api/search", json={"q": "dog"}, headers={"origin": served.url})
    assert same.status_code == 200


def test_unexpected_errors_leak_nothing(tmp_path, tiny_model):
    lib, srv, _ = _served(tmp_path, tiny_model, ServerSettings(port=0))
    try:
        engine = srv.app.state.ctx.engine  # a fault, injected on purpose
        secret = "/very/secret/path/details"

        def broken(req):
            raise RuntimeError(f"boom at {secret}")

        engine.search = broken
        resp = httpx.get(srv.url + "/api/search", params={"q": "dog"})
        assert resp.status_code == 500
        err = assert_json_error(500, resp.content, "internal")
        assert secret not in resp.text and "RuntimeError" not in resp.text
        assert err["message"] == "internal server error"
        assert httpx.get(srv.url + "/api/health").status_code == 200
    finally:
        srv.stop()
        lib.close()


def test_a_token_guards_every_api_request(tmp_path, tiny_model):
    lib, srv, _ = _served(tmp_path, tiny_model, ServerSettings(port=0, token=TOKEN))
    try:
        url = srv.url
        plain = httpx.get(url + "/api/search", params={"q": "dog"})
        assert plain.status_code == 401 and plain.headers["www-authenticate"].startswith("Bearer")
        assert_json_error(401, plain.content, "unauthorized")
        for path in ("/api/status", "/api/images/1/file", "/api/images/1/thumb", "/api/info"):
            assert httpx.get(url + path).status_code == 401, path
        wrong = httpx.get(url + "/api/status", headers={"authorization": "Bearer " + "x" * 30})
        assert wrong.status_code == 401
        good = httpx.get(url + "/api/status", headers={"authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
        # The page logs in once; the cookie then carries the token (HttpOnly, SameSite).
        with httpx.Client(base_url=url) as browser:
            assert browser.get("/").status_code == 200  # the page itself holds no data
            assert browser.post("/api/session", json={"token": "nope"}).status_code == 401
            login = browser.post("/api/session", json={"token": TOKEN})
            assert login.status_code == 204
            cookie = login.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert browser.get("/api/images/1/thumb").status_code == 200
            browser.delete("/api/session")
            browser.cookies.clear()
            assert browser.get("/api/status").status_code == 401
    finally:
        srv.stop()
        lib.close()


def test_listening_beyond_this_machine_needs_a_strong_token():
    with pytest.raises(ConfigError, match="without a token"):
        ServerSettings(host="0.0.0.0")
    with pytest.raises(ConfigError, match="too short"):
        ServerSettings(host="0.0.0.0", token="short")
    assert ServerSettings(host="0.0.0.0", token=TOKEN).loopback is False
    assert ServerSettings(host="::1").loopback and ServerSettings(host="localhost").loopback


def test_thumbnail_of_an_unreadable_file_is_a_json_error(tmp_path, tiny_model):
    lib, srv, photos = _served(tmp_path, tiny_model, ServerSettings(port=0))
    try:
        ids = {Path(r.path).name: r.id for r in lib.store.rows_under([str(photos)]).values()}
        (photos / "img0.jpg").write_bytes(b"now garbage")  # changed after indexing
        resp = httpx.get(f"{srv.url}/api/images/{ids['img0.jpg']}/thumb")
        assert resp.status_code == 415
        assert_json_error(415, resp.content, "not_an_image")
        assert not list((tmp_path / "library" / "thumbs").rglob("*.jpg"))  # nothing cached
        (photos / "img1.jpg").unlink()  # gone from disk since indexing
        gone = httpx.get(f"{srv.url}/api/images/{ids['img1.jpg']}/file")
        assert gone.status_code == 404
        assert_json_error(404, gone.content, "file_gone")
        hits = httpx.get(srv.url + "/api/search", params={"q": "x", "k": 10}).json()["results"]
        assert ids["img1.jpg"] not in [h["id"] for h in hits]
        assert Image.open(
            io.BytesIO(httpx.get(f"{srv.url}/api/images/{ids['img2.jpg']}/thumb").content)
        )
    finally:
        srv.stop()
        lib.close()
