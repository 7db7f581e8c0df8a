"""Very large photos and decompression bombs: one limit, on the size actually decoded.

Phones take 108 and 200 MP JPEGs; clipsearch decodes JPEGs at a reduced scale, so they index,
search, upload and get thumbnails like any photo. A 20000 x 20000 PNG would be decoded in full
(400 MP) and is refused everywhere with the same reason, and no Pillow warning reaches stderr.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.ingest.daemon import WatchDaemon, WatchOptions
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import big_jpeg, make_image, png_bomb, run_process

BOMB_REASON = "image too large to decode safely (20000x20000, 400 MP; limit 89.5 MP)"


@pytest.fixture(scope="module")
def big(tmp_path_factory, tiny_model):
    """A folder with a 108 MP and a 200 MP JPEG, small photos and a bomb, indexed by the CLI."""
    root = tmp_path_factory.mktemp("big")
    photos = root / "photos"
    big_jpeg(photos / "phone108.jpg", (12000, 9000), seed=1)
    big_jpeg(photos / "phone200.jpg", (16320, 12240), seed=2)
    for i in range(3):
        make_image(photos / f"small{i}.jpg", seed=10 + i)
    png_bomb(photos / "bomb.png", 20000, 20000)
    lib_dir = root / "library"
    # The real console script in its own process: what it prints is what a user sees.
    proc = run_process("--library", str(lib_dir), "--model", tiny_model, "index", str(photos))
    return SimpleNamespace(root=root, photos=photos, lib_dir=lib_dir, proc=proc)


def _rows(lib_dir: Path) -> dict[str, tuple]:
    with sqlite3.connect(lib_dir / "clipsearch.db") as db:
        rows = db.execute(
            "SELECT path, width, height, vectors.image_id IS NOT NULL, phash FROM images "
            "LEFT JOIN vectors ON vectors.image_id = images.id"
        ).fetchall()
    return {Path(p).name: tuple(rest) for p, *rest in rows}


def _failures(lib_dir: Path) -> dict[str, str]:
    with sqlite3.connect(lib_dir / "clipsearch.db") as db:
        return {Path(p).name: r for p, r in db.execute("SELECT path, reason FROM failures")}


def test_index_takes_phone_photos_and_refuses_the_bomb_quietly(big):
    assert big.proc.returncode == 0, big.proc.stderr
    assert "5 added" in big.proc.stdout and "1 failed" in big.proc.stdout
    # stderr names the skipped bomb with its reason; no Pillow warning, no traceback.
    lines = big.proc.stderr.splitlines()
    skipped = [line for line in lines if line.startswith("skipping ")]
    assert len(skipped) == 1 and "bomb.png" in skipped[0], big.proc.stderr
    assert skipped[0].endswith(BOMB_REASON)
    assert "DecompressionBomb" not in big.proc.stderr + big.proc.stdout
    assert not [line for line in lines if "Warning" in line or "Traceback" in line]

    rows = _rows(big.lib_dir)
    assert set(rows) == {"phone108.jpg", "phone200.jpg", "small0.jpg", "small1.jpg", "small2.jpg"}
    assert rows["phone108.jpg"][:3] == (12000, 9000, 1)  # the real size is recorded
    assert rows["phone200.jpg"][:3] == (16320, 12240, 1)
    assert rows["phone108.jpg"][3] is not None  # perceptual hash (duplicates) made too
    assert _failures(big.lib_dir) == {"bomb.png": BOMB_REASON}


def test_phone_photos_are_found_by_searching_with_them(big):
    with Library.open(big.lib_dir) as lib:
        for name in ("phone108.jpg", "phone200.jpg"):
            hits = lib.search(image=big.photos / name, k=3)
            assert Path(hits[0].path).name == name and hits[0].score > 0.99
        assert [f["reason"] for f in lib.failures()] == [BOMB_REASON]


def test_the_server_takes_them_as_uploads_and_thumbnails(big, tmp_path):
    fresh = big_jpeg(tmp_path / "another108.jpg", (12000, 9000), seed=3)  # not in the library
    with Library.open(big.lib_dir) as lib, BackgroundServer(lib, ServerSettings(port=0)) as srv:
        ids = {Path(r.path).name: r.id for r in lib.store.rows_under([str(big.photos)]).values()}
        http = httpx.Client(base_url=srv.url, timeout=120)
        up = http.post("/api/uploads", files={"image": ("a.jpg", fresh.read_bytes())})
        assert up.status_code == 201, up.text
        body = up.json()
        assert (body["width"], body["height"], body["library_id"]) == (12000, 9000, None)
        mixed = http.post("/api/search", json={"terms": [{"upload": body["id"]}], "k": 5})
        assert mixed.status_code == 200 and len(mixed.json()["results"]) == 5

        photo = (big.photos / "phone200.jpg").read_bytes()
        found = http.post(
            "/api/search/image", files={"image": ("p.jpg", photo)}, data={"query": '{"k": 1}'}
        )
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["id"] == ids["phone200.jpg"]

        thumb = http.get(f"/api/images/{ids['phone200.jpg']}/thumb", params={"size": 1280})
        assert thumb.status_code == 200, thumb.text
        assert Image.open(io.BytesIO(thumb.content)).size == (1280, 960)

        bomb = http.post(
            "/api/uploads", files={"image": ("b.png", (big.photos / "bomb.png").read_bytes())}
        )
        assert bomb.status_code == 415
        assert BOMB_REASON in bomb.json()["error"]["message"]
        http.close()


def test_watch_uses_the_same_limit(big, tmp_path, tiny_model):
    watched = tmp_path / "incoming"
    watched.mkdir()
    lib_dir = tmp_path / "library"
    lib = Library.open(lib_dir, model=tiny_model)
    daemon = WatchDaemon(lib, [str(watched)], WatchOptions(settle=0.3))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        _wait(lambda: daemon.phase == "watching" or errors, "the daemon to start")
        shutil.copy(big.photos / "phone200.jpg", watched / "phone200.jpg")
        shutil.copy(big.photos / "bomb.png", watched / "bomb.png")
        _wait(lambda: _failures(lib_dir) and _rows(lib_dir), "both files to be handled")
        assert _failures(lib_dir) == {"bomb.png": BOMB_REASON}
        assert _rows(lib_dir)["phone200.jpg"][:3] == (16320, 12240, 1)
    finally:
        daemon.request_stop("test")
        thread.join(timeout=60)
        lib.close()
    assert not errors and not thread.is_alive()


def _wait(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
