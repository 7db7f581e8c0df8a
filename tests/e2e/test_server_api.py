"""The HTTP API against a live server (uvicorn, real socket) on a real temp library."""

from __future__ import annotations

import io
import os
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import make_image

HIT_KEYS = {
    "id",
    "path",
    "score",
    "width",
    "height",
    "size",
    "mtime",
    "taken_at",
    "source",
    "offline",
    "keyword",
    "name",
    "thumb_url",
    "file_url",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    from pillow_heif import register_heif_opener

    register_heif_opener()  # lets PIL write the HEIC below
    root = tmp_path_factory.mktemp("served")
    photos = root / "photos"
    for i in range(6):
        make_image(photos / f"img{i}.jpg", seed=i)
    make_image(photos / "sub" / "png6.png", seed=6)
    make_image(photos / "sub" / "heic7.heic", seed=7, size=(120, 80))
    # Stored sideways (60x20) with EXIF orientation 6: displayed 20 wide, 60 high.
    sideways = Image.fromarray(np.full((20, 60, 3), 200, np.uint8))
    exif = sideways.getexif()
    exif[0x0112] = 6
    sideways.save(photos / "turned.jpg", exif=exif.tobytes())
    lib = Library.open(root / "library", model=tiny_model)
    lib.index([photos])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        http = httpx.Client(base_url=srv.url, timeout=60)
        ids = {
            os.path.relpath(r.path, photos): r.id
            for r in lib.store.rows_under([str(photos)]).values()
        }
        yield SimpleNamespace(
            url=srv.url, lib=lib, photos=photos, lib_dir=root / "library", http=http, ids=ids
        )
        http.close()
    lib.close()


def _hits(resp: httpx.Response) -> list[dict]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["count"] == len(body["results"]) and body["took_ms"] >= 0
    return body["results"]


def test_text_search_matches_the_library_and_has_the_documented_shape(served):
    hits = _hits(served.http.get("/api/search", params={"q": "a red circle", "k": 5}))
    assert len(hits) == 5
    assert all(set(h) == HIT_KEYS for h in hits)
    expected = served.lib.search("a red circle", k=5)
    assert [h["id"] for h in hits] == [r.id for r in expected]
    assert [h["score"] for h in hits] == [r.to_dict()["score"] for r in expected]
    assert hits[0]["thumb_url"] == f"/api/images/{hits[0]['id']}/thumb"
    # POST gives the same answer as GET.
    post = _hits(served.http.post("/api/search", json={"q": "a red circle", "k": 5}))
    assert post == hits


def test_weighted_mix_with_negatives_scores_against_the_weighted_sum(served):
    a, b = served.ids["img0.jpg"], served.ids["img1.jpg"]
    body = {
        "q": "2:beach - people",
        "terms": [{"like": a, "weight": 1.5}, {"like": b, "weight": -0.5}],
        "k": 9,
    }
    hits = _hits(served.http.post("/api/search", json=body))
    lib = served.lib
    enc = lib.encoder
    t = enc.encode_texts(["beach", "people"])
    ids, vecs = lib.store.get_vectors(list(served.ids.values()), lib.dim)
    by_id = dict(zip(ids.tolist(), vecs, strict=True))
    q = 2 * t[0] - t[1] + 1.5 * by_id[a] - 0.5 * by_id[b]
    q /= np.linalg.norm(q)
    assert a not in [h["id"] for h in hits]  # a positive `like` leaves the image out
    assert len(hits) == len(served.ids) - 1
    for h in hits:
        assert h["score"] == pytest.approx(float(by_id[h["id"]] @ q), abs=1e-4)


def test_more_like_this_by_id(served):
    target = served.ids["img3.jpg"]
    hits = _hits(served.http.get("/api/search", params={"like": target, "k": 3}))
    assert target not in [h["id"] for h in hits]
    assert [h["id"] for h in hits] == [r.id for r in served.lib.search(like=target, k=3)]


def test_search_by_uploaded_image(served, tmp_path):
    data = (served.photos / "img2.jpg").read_bytes()
    up = served.http.post("/api/uploads", files={"image": ("q.jpg", data, "image/jpeg")})
    assert up.status_code == 201, up.text
    info = up.json()
    assert info["library_id"] == served.ids["img2.jpg"] and info["bytes"] == len(data)
    assert (info["width"], info["height"], info["format"]) == (96, 64, "JPEG")
    hits = _hits(served.http.post("/api/search", json={"terms": [{"upload": info["id"]}], "k": 2}))
    assert hits[0]["id"] == served.ids["img2.jpg"] and hits[0]["score"] == pytest.approx(1.0)
    # A picture not in the library (same pixels, another file format) finds its twin.
    png = make_image(tmp_path / "twin.png", seed=2)
    resp = served.http.post("/api/search/image", files={"image": ("twin.png", png.read_bytes())})
    top = _hits(resp)[0]
    assert top["id"] == served.ids["img2.jpg"] and top["score"] > 0.99


def test_one_shot_image_search_mixes_text_and_filters(served):
    data = (served.photos / "img4.jpg").read_bytes()
    query = '{"q": "a blue square", "k": 3, "filters": {"folders": ["%s"]}}' % (
        served.photos / "sub"
    )
    hits = _hits(
        served.http.post(
            "/api/search/image",
            files={"image": ("x.jpg", data)},
            data={"query": query, "weight": "2"},
        )
    )
    assert hits and all(h["path"].startswith(str(served.photos / "sub") + "/") for h in hits)


def test_filters_folder_source_and_dates(served):
    get = served.http.get
    sub = str(served.photos / "sub")
    hits = _hits(get("/api/search", params={"q": "x", "folder": sub, "k": 50}))
    assert {h["path"] for h in hits} == {
        str(served.photos / "sub" / n) for n in ("png6.png", "heic7.heic")
    }
    body = get("/api/search", params={"q": "x", "source": "generated"}).json()
    assert body["results"] == [] and body["library_empty"] is False
    assert _hits(get("/api/search", params={"q": "x", "after": "2999"})) == []
    assert len(_hits(get("/api/search", params={"q": "x", "before": "2999-01-01", "k": 50}))) == 9
    bad = get("/api/search", params={"q": "x", "after": "last tuesday"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_query"
    assert "2024-06" in bad.json()["error"]["message"]


def test_image_detail_file_and_cached_thumbnail(served):
    image_id = served.ids["img1.jpg"]
    detail = served.http.get(f"/api/images/{image_id}").json()
    assert detail["path"] == str(served.photos / "img1.jpg")
    assert detail["format"] == "JPEG" and detail["exists"] is True
    assert detail["preview_url"] == detail["file_url"]
    original = served.http.get(detail["file_url"])
    assert original.status_code == 200 and original.headers["content-type"] == "image/jpeg"
    assert original.content == (served.photos / "img1.jpg").read_bytes()

    thumb = served.http.get(f"/api/images/{image_id}/thumb", params={"size": 160})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (96, 64)  # never enlarged
    cached = list((served.lib_dir / "thumbs" / "160").rglob("*.jpg"))
    assert len(cached) == 1
    made = cached[0].stat().st_mtime_ns
    assert served.http.get(f"/api/images/{image_id}/thumb?size=160").content == thumb.content
    assert cached[0].stat().st_mtime_ns == made  # made once


def test_thumbnails_follow_exif_orientation_and_read_heic(served):
    turned = served.http.get(f"/api/images/{served.ids['turned.jpg']}/thumb")
    assert Image.open(io.BytesIO(turned.content)).size == (20, 60)
    heic_id = served.ids["sub/heic7.heic"]
    heic = served.http.get(f"/api/images/{heic_id}/thumb")
    assert heic.status_code == 200
    assert Image.open(io.BytesIO(heic.content)).size == (120, 80)
    # Browsers cannot show HEIC: the preview is a large JPEG instead of the original.
    detail = served.http.get(f"/api/images/{heic_id}").json()
    assert detail["preview_url"] == f"/api/images/{heic_id}/thumb?size=1280"


def test_status_info_health_and_failures(served):
    status = served.http.get("/api/status").json()
    expected = served.lib.status()
    assert set(expected) <= set(status)
    assert status["images"] == 9 and status["library"] == str(served.lib_dir)
    assert status["index"]["vectors"] == 9
    info = served.http.get("/api/info").json()
    assert {"search", "library"} <= {f["page"] for f in info["features"] if f["page"]}
    assert info["token_required"] is False and info["max_upload_bytes"] == 20 * 2**20
    health = served.http.get("/api/health").json()
    assert health == {
        "ok": True,
        "version": health["version"],
        "library": str(served.lib_dir),
        "model": served.lib.model,
    }
    assert served.http.get("/api/failures").json() == []


def test_api_docs_work_offline(served):
    docs = served.http.get("/docs")
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "cdn." not in docs.text
    asset = served.http.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    spec = served.http.get("/openapi.json").json()
    for path in ("/api/search", "/api/uploads", "/api/images/{image_id}/thumb", "/api/status"):
        assert path in spec["paths"]
    assert "SearchResponse" in spec["components"]["schemas"]


def test_the_page_is_served_with_a_strict_policy(served):
    page = served.http.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/app.js">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in (
        "app.js",
        "lib.js",
        "viewer.js",
        "query-images.js",
        "style.css",
        "pages/search.js",
        "pages/library.js",
    ):
        assert served.http.get(f"/static/{asset}").status_code == 200, asset


def test_forgotten_upload_and_unknown_ids_are_clear_errors(served):
    gone = served.http.post("/api/search", json={"terms": [{"upload": "up_nope"}]})
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "upload_expired"
    unknown = served.http.get("/api/search", params={"like": 999999})
    assert unknown.status_code == 400 and "999999" in unknown.json()["error"]["message"]
    missing = served.http.get("/api/images/999999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    two = served.http.post("/api/search", json={"terms": [{"text": "a", "like": 1}]})
    assert two.status_code == 422 and "exactly one" in two.json()["error"]["message"]
    cancel = served.http.post("/api/search", json={"q": "dog - dog"})
    assert cancel.status_code == 400 and "cancel" in cancel.json()["error"]["message"]
