"""The query language through the HTTP API: the parse endpoint the page's chips use, filters
in `q`, facts in an image's details, and the CLI asking a running server."""

from __future__ import annotations

import httpx
import pytest

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import exif_jpeg

LISBON = (38.7223, -9.1393)
PARIS = (48.8566, 2.3522)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("hybrid-served")
    photos = root / "photos"
    exif_jpeg(
        photos / "Trips" / "tram.jpg",
        1,
        at=LISBON,
        make="Google",
        model="Pixel 7",
        taken="2023:07:14 10:00:00",
    )
    exif_jpeg(
        photos / "Trips" / "tower.jpg",
        2,
        at=PARIS,
        make="Canon",
        model="Canon EOS 5D Mark IV",
        taken="2021:05:01 09:00:00",
    )
    exif_jpeg(photos / "Home" / "cat.jpg", 3)
    lib = Library.open(root / "library", model=tiny_model)
    lib.index([photos])
    with (
        BackgroundServer(lib, ServerSettings(port=0)) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as http,
    ):
        yield http, lib, root
    lib.close()


def test_parse_endpoint_gives_chips_with_spans_and_labels(served):
    http, _, _ = served
    q = 'tram near:Lisbon after:2023 "yellow tram"'
    got = http.get("/api/query", params={"q": q}).json()
    assert got["error"] is None and got["keywords"] == ["yellow tram"]
    chips = {f["key"]: f for f in got["filters"]}
    assert q[chips["near"]["start"] : chips["near"]["end"]] == "near:Lisbon"
    assert "Portugal" in chips["near"]["label"] and chips["after"]["value"] == "2023"
    bad = http.get("/api/query", params={"q": "tram nar:Lisbon"}).json()
    assert bad["error"]["position"] == 6 and "near:" in bad["error"]["hint"]


def test_filters_in_q_and_as_fields(served):
    http, _, _ = served
    names = lambda body: [h["name"] for h in body["results"]]  # noqa: E731
    assert names(http.get("/api/search", params={"q": "near:Lisbon"}).json()) == ["tram.jpg"]
    body = http.get("/api/search", params={"q": "a photo", "camera": "canon"}).json()
    assert names(body) == ["tower.jpg"]
    body = http.post(
        "/api/search", json={"q": "a photo", "filters": {"folder_names": ["Home"]}}
    ).json()
    assert names(body) == ["cat.jpg"]
    body = http.post("/api/search", json={"filters": {"near": "France"}}).json()
    assert names(body) == ["tower.jpg"] and body["results"][0]["score"] is None
    bad = http.get("/api/search", params={"q": "tram near:Atlantisville"})
    assert bad.status_code == 400 and "no place" in bad.json()["error"]["message"]
    bad = http.get("/api/search", params={"q": "tram colour:red"}).json()["error"]
    assert bad["code"] == "bad_query" and bad["position"] == 6


def test_image_details_carry_camera_place_map_link(served):
    http, lib, _ = served
    (hit,) = lib.search("near:Lisbon")
    detail = http.get(f"/api/images/{hit.id}").json()
    assert detail["camera"] == "Google Pixel 7" and "Lisbon" in detail["place"]
    assert detail["map_url"].startswith("https://www.openstreetmap.org/?mlat=38.72")
    assert abs(detail["lat"] - LISBON[0]) < 1e-3 and detail["text"] is None


def test_the_cli_asks_the_running_server_with_the_same_filters(served):
    from clipsearch.query.build import build_query
    from clipsearch.server import client

    root = served[2]
    query = build_query("a photo near:Portugal camera:pixel after:2023")
    answer = client.search(root / "library", query)
    assert answer is not None and [r.path.rsplit("/", 1)[1] for r in answer.results] == ["tram.jpg"]
