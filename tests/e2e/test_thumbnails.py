"""Thumbnails survive a damaged cache and a full disk (real server, real files, real tmpfs).

A cached thumbnail that is not a whole JPEG any more is made again; when the cache folder
cannot be written (the disk is full) the thumbnail is still answered, from memory.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import make_image, photo_like


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("thumbs")
    photos = root / "photos"
    photos.mkdir()
    photo_like(1, (1600, 1200)).save(photos / "wide.jpg", quality=90)
    make_image(photos / "small.png", seed=2, size=(96, 64))
    lib = Library.open(root / "library", model=tiny_model)
    lib.index([photos])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        http = httpx.Client(base_url=srv.url, timeout=60)
        ids = {Path(r.path).name: r.id for r in lib.store.rows_under([str(photos)]).values()}
        yield SimpleNamespace(http=http, ids=ids, lib_dir=root / "library")
        http.close()
    lib.close()


def get_thumb(served, name: str, size: int) -> bytes:
    """The thumbnail as a browser gets it; it must be a whole, decodable JPEG."""
    resp = served.http.get(f"/api/images/{served.ids[name]}/thumb", params={"size": size})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(resp.content))
    img.load()  # every pixel decodes
    assert img.format == "JPEG"
    return resp.content


def cached(served, size: int) -> list[Path]:
    return sorted((served.lib_dir / "thumbs" / str(size)).rglob("*.jpg"))


GARBLE = {
    "random bytes": lambda good: np.random.default_rng(0).bytes(len(good)),
    "cut short": lambda good: good[: len(good) // 2],
    "zeros (power cut)": lambda good: bytes(len(good)),
    "empty": lambda good: b"",
    "garbled inside": lambda good: (
        good[:3] + np.random.default_rng(1).bytes(len(good) - 5) + good[-2:]
    ),  # starts and ends like a JPEG
}


@pytest.mark.parametrize("damage", list(GARBLE))
def test_a_damaged_cached_thumbnail_is_made_again(served, damage):
    size = {"random bytes": 160, "cut short": 320, "zeros (power cut)": 640}.get(damage, 1280)
    good = get_thumb(served, "wide.jpg", size)
    [file] = [p for p in cached(served, size) if p.read_bytes() == good]
    file.write_bytes(GARBLE[damage](good))

    again = get_thumb(served, "wide.jpg", size)
    assert again == good  # the same thumbnail, made again
    assert Image.open(io.BytesIO(again)).size == (size, size * 3 // 4)
    assert file.read_bytes() == good  # and the cache is whole again


@pytest.fixture
def full_thumbnail_disk(served):
    """The library's thumbnail folder on a tiny tmpfs, filled to the last byte."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = served.lib_dir / "thumbs"
    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    filler = folder / "filler"
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    try:
        assert list(folder.iterdir()) == [filler]  # a fresh, full folder over the old one
        yield SimpleNamespace(folder=folder, filler=filler)
    finally:
        if subprocess.run(["umount", str(folder)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_full_disk_serves_thumbnails_from_memory(served, full_thumbnail_disk, caplog):
    caplog.set_level(logging.WARNING, logger="clipsearch")
    first = get_thumb(served, "wide.jpg", 320)
    assert Image.open(io.BytesIO(first)).size == (320, 240)
    assert get_thumb(served, "small.png", 320) and get_thumb(served, "wide.jpg", 160)
    assert get_thumb(served, "wide.jpg", 320) == first  # asked again: made again, same picture
    assert not cached(served, 320) and not cached(served, 160)  # nothing half-written left
    leftovers = [p for p in full_thumbnail_disk.folder.rglob("*") if p.is_file()]
    assert leftovers == [full_thumbnail_disk.filler]
    warned = [r.getMessage() for r in caplog.records if "cannot cache" in r.getMessage()]
    assert len(warned) == 1 and "No space left on device" in warned[0]  # said once, not spammed

    full_thumbnail_disk.filler.unlink()  # space again: the next request caches it
    assert get_thumb(served, "wide.jpg", 320) == first
    assert [p.read_bytes() for p in cached(served, 320)] == [first]
