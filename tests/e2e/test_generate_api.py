"""Generation over HTTP: a background job you start, poll, cancel; the picture lands in the
library and the search API finds it."""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pytest

from clipsearch import Library
from clipsearch.demo import shapes
from clipsearch.server import BackgroundServer, ServerSettings

RED = "a red circle on a white background"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen-api")
    shapes.write_collection(root / "photos", 6, seed=5, size=64)
    lib = Library.open(root / "library", model="tiny-shapes", threads=1)
    lib.index([root / "photos"])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        http = httpx.Client(base_url=srv.url, timeout=60)
        yield SimpleNamespace(url=srv.url, lib=lib, http=http)
        http.close()
    lib.close()


def _wait(http: httpx.Client, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/api/generate/{job_id}").json()
        if job["state"] != "running":
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still running")


def test_a_job_runs_reports_progress_and_adds_the_picture(served):
    http = served.http
    r = http.post(
        "/api/generate",
        json={"prompts": [RED], "steps": 30, "seed": 7, "cutouts": 8, "preview_every": 1},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "running" and job["steps"] == 30 and job["prompts"] == [RED]
    seen_steps = set()
    while job["state"] == "running":
        seen_steps.add(job["step"])
        if job["preview_url"]:
            png = http.get(job["preview_url"])
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        time.sleep(0.1)
        job = http.get(f"/api/generate/{job['id']}").json()
    assert job["state"] == "done", job
    assert job["step"] == 30 and job["loss"] is not None and len(seen_steps) > 1
    result = job["result"]
    assert result["seed"] == 7 and result["steps_done"] == 30 and result["drawer"] == "vqgan"
    assert (
        result["search_url"]
        == "#/search?q=a%20red%20circle%20on%20a%20white%20background&source=generated"
    )
    detail = http.get(f"/api/images/{result['image_id']}").json()
    assert detail["source"] == "generated"
    hits = http.post("/api/search", json={"q": "a red circle", "filters": {"source": "generated"}})
    assert hits.status_code == 200, hits.text
    assert [h["id"] for h in hits.json()["results"]] == [result["image_id"]]
    assert http.get("/api/status").json()["generated"] == 1
    assert http.get("/api/generate").json()[0]["id"] == job["id"]


def test_one_job_at_a_time_and_cancel_saves_nothing(served):
    http = served.http
    before = http.get("/api/status").json()["images"]
    job = http.post("/api/generate", json={"prompts": ["a blue star"], "steps": 2000}).json()
    busy = http.post("/api/generate", json={"prompts": ["a green heart"], "steps": 5})
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "busy"
    assert job["id"] in busy.json()["error"]["hint"]
    r = http.delete(f"/api/generate/{job['id']}")
    assert r.status_code == 200 and r.json()["cancel_requested"]
    done = _wait(http, job["id"])
    assert done["state"] == "cancelled" and done["step"] < 2000 and done["result"] is None
    assert http.get("/api/status").json()["images"] == before


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"prompts": ["sunset:lots"]}, 400, "bad weight 'lots'"),
        ({"prompts": [""]}, 400, "no prompt given"),
        ({"prompts": ["a cat", " :2"]}, 400, "empty prompt"),
        ({"prompts": []}, 422, "prompts"),
        ({"prompts": ["a cat"], "width": 66, "height": 64}, 400, "multiples of 4"),
        ({"prompts": ["a cat"], "vqgan": "/etc/passwd"}, 422, "vqgan"),
        ({"prompts": ["a cat"], "init_id": 999999}, 404, "no image with id 999999"),
        ({"prompts": ["a cat"], "steps": 0}, 422, "steps"),
    ],
)
def test_bad_requests_answer_json_errors_and_start_nothing(served, body, status, words):
    r = served.http.post("/api/generate", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]
    assert all(j["state"] != "running" for j in served.http.get("/api/generate").json())


def test_unknown_and_malformed_job_ids(served):
    assert served.http.get("/api/generate/0123456789ab").status_code == 404
    assert served.http.get("/api/generate/..%2F..%2Fetc").status_code in (404, 422)
    assert served.http.delete("/api/generate/nothex").status_code == 422
