"""The duplicates and tags API against a live server on a real temp library."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from clipsearch.store.lock import WriterLock
from tests.helpers import photo_like


@pytest.fixture
def served(tmp_path, tiny_model):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    a = photo_like(1)
    a.save(photos / "a.jpg", quality=95)
    a.resize((160, 120), Image.LANCZOS).save(photos / "sub" / "a-small.jpg")
    photo_like(2).save(photos / "b.jpg")
    lib = Library.open(tmp_path / "library", model=tiny_model)
    lib.index([photos])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        http = httpx.Client(base_url=srv.url, timeout=60)
        ids = {
            os.path.relpath(r.path, photos): r.id
            for r in lib.store.rows_under([str(photos)]).values()
        }
        yield SimpleNamespace(
            http=http, lib=lib, photos=photos, ids=ids, lib_dir=tmp_path / "library"
        )
        http.close()
    lib.close()


def _dupes(served) -> dict:
    r = served.http.get("/api/duplicates", params={"similar": "false"})
    assert r.status_code == 200, r.text
    return r.json()


def test_groups_with_links_then_move_and_undo(served):
    body = _dupes(served)
    assert body["images"] == 3 and body["duplicates"] == 1 and body["pairs"]["near"] == 1
    (group,) = body["groups"]
    assert group["keeper"]["id"] == served.ids["a.jpg"]
    assert [m["id"] for m in group["others"]] == [served.ids["sub/a-small.jpg"]]
    assert group["keeper"]["thumb_url"] == f"/api/images/{served.ids['a.jpg']}/thumb"
    assert group["pairs"][0]["reason"] == "near"

    small = served.ids["sub/a-small.jpg"]
    moved = served.http.post("/api/duplicates/move", json={"ids": [small]})
    assert moved.status_code == 200, moved.text
    (entry,) = moved.json()["moved"]
    quarantine = served.lib_dir / "quarantine" / moved.json()["undo"]
    assert entry["to"] == str(quarantine / "sub" / "a-small.jpg")
    assert not (served.photos / "sub" / "a-small.jpg").exists()
    assert (quarantine / "sub" / "a-small.jpg").is_file()
    detail = served.http.get(f"/api/images/{small}").json()  # the library followed
    assert detail["path"] == entry["to"] and detail["exists"]
    assert _dupes(served)["groups"] == []

    undone = served.http.post("/api/duplicates/undo", json={"undo": moved.json()["undo"]})
    assert undone.status_code == 200 and len(undone.json()["moved"]) == 1
    assert (served.photos / "sub" / "a-small.jpg").is_file()
    assert served.http.get(f"/api/images/{small}").json()["path"] == str(
        served.photos / "sub" / "a-small.jpg"
    )
    assert len(_dupes(served)["groups"]) == 1


def test_similar_left_out_when_the_model_cannot_tell_pictures_apart(served):
    """The random tiny model puts a and b (unrelated pictures) above 0.95: b must not be
    offered as a duplicate of a, and the answer says why."""
    r = served.http.get("/api/duplicates", params={"similar": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    (group,) = body["groups"]
    assert group["kind"] == "copies"
    assert [m["id"] for m in group["others"]] == [served.ids["sub/a-small.jpg"]]
    (small,) = group["others"]
    assert (small["reason"], small["match"]) == ("near", served.ids["a.jpg"])
    assert group["keeper"]["reason"] is None
    assert body["copies"] == 1 and body["similar_images"] == 0 and body["pairs"]["similar"] == 0
    cal = body["calibration"]
    assert cal["used"] is False and cal["pictures"] == 2 and cal["pair_median"] > 0.95
    assert len(body["warnings"]) == 1 and "cannot tell these pictures apart" in body["warnings"][0]
    off = _dupes(served)  # similar=false: nothing to calibrate, nothing to warn about
    assert off["calibration"] is None and off["warnings"] == []


def test_busy_library_answers_409_and_moves_nothing(served):
    small = served.ids["sub/a-small.jpg"]
    with WriterLock(served.lib_dir) as lock:
        lock.acquire("clipsearch index (test)")
        r = served.http.post("/api/duplicates/move", json={"ids": [small]})
    assert r.status_code == 409
    assert (
        r.json()["error"]["code"] == "busy" and "nothing was moved" in r.json()["error"]["message"]
    )
    assert (served.photos / "sub" / "a-small.jpg").is_file()


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/duplicates/move", {"ids": [999999]}, 404),
        ("/api/duplicates/move", {"ids": []}, 422),
        ("/api/duplicates/move", {"ids": [1], "dest": "/tmp"}, 422),  # no paths from requests
        ("/api/duplicates/undo", {"undo": "../../etc"}, 422),
        ("/api/duplicates/undo", {"undo": "20200101-000000"}, 404),
        ("/api/classify", {"labels": []}, 422),
        ("/api/tags", {"vocabulary": "klingon"}, 422),
        ("/api/tags", {"vocabulary": "coco", "labels": ["x"]}, 422),
    ],
)
def test_hostile_or_bad_requests_get_json_errors(served, path, body, status):
    files_before = sorted(p.name for p in served.photos.rglob("*"))
    r = served.http.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    assert sorted(p.name for p in served.photos.rglob("*")) == files_before
    assert served.http.get("/api/health").status_code == 200


def test_tag_classify_and_search_by_tag(served):
    assert served.http.get("/api/tags").json() == {"vocabulary": None, "tags": []}
    r = served.http.post("/api/tags", json={"labels": ["alpha", "beta"], "min_score": 0.0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["vocabulary"] == {"name": "custom", "labels": 2, "min_score": 0.0}
    assert {t["label"] for t in body["tags"]} == {"alpha", "beta"}
    hits = served.http.post("/api/search", json={"q": "x", "filters": {"tag": "alpha"}}).json()
    assert hits["count"] == 3  # min_score 0: every image carries both labels
    none = served.http.get("/api/search", params={"q": "x", "tag": "gamma"}).json()
    assert none["count"] == 0
    got = served.http.post("/api/classify", json={"labels": ["alpha", "beta"], "top": 2}).json()
    assert got["count"] == 3
    for r in got["results"]:
        probs = [t["probability"] for t in r["top"]]
        assert abs(sum(probs) - 1) < 1e-3 and r["label"] == r["top"][0]["label"]
    assert json.loads(served.lib.store.get_meta("tag_vocabulary"))["labels"] == ["alpha", "beta"]
