"""SQLite is the truth; the FAISS file is a cache that is checked and repaired on open."""

import json

import pytest

from clipsearch.store.faiss_index import index_files


@pytest.fixture
def indexed(cli, photos):
    cli("index", str(photos))
    return photos


def top_path(cli, image):
    return json.loads(cli("search", "--image", str(image), "-k", "1", "--json").stdout)[0]["path"]


def test_deleted_index_file_is_rebuilt(cli, indexed, lib_dir):
    for f in index_files(lib_dir):
        f.unlink()
    assert top_path(cli, indexed / "img3.jpg") == str(indexed / "img3.jpg")
    assert index_files(lib_dir)  # the rebuilt index was saved
    assert json.loads(cli("status", "--json").stdout)["index"]["vectors"] == 8


def test_truncated_index_file_is_rebuilt(cli, indexed, lib_dir):
    (f,) = index_files(lib_dir)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    assert top_path(cli, indexed / "img4.jpg") == str(indexed / "img4.jpg")
    assert json.loads(cli("status", "--json").stdout)["index"]["vectors"] == 8


def test_garbage_index_file_is_rebuilt(cli, indexed, lib_dir):
    (f,) = index_files(lib_dir)
    f.write_bytes(b"\x00garbage" * 100)
    assert top_path(cli, indexed / "img5.jpg") == str(indexed / "img5.jpg")


def test_stale_index_file_catches_up_from_the_log(cli, indexed, lib_dir, tmp_path):
    (old,) = index_files(lib_dir)
    saved = tmp_path / "old.faiss"
    saved.write_bytes(old.read_bytes())
    (indexed / "img0.jpg").unlink()
    from tests.helpers import make_image

    make_image(indexed / "later.jpg", seed=40)
    cli("index", str(indexed))
    # Put the old (pre-change) index file back, as if the last save never happened.
    for f in index_files(lib_dir):
        f.unlink()
    old.write_bytes(saved.read_bytes())
    hits = json.loads(cli("search", "x", "-k", "50", "--json").stdout)
    paths = {h["path"] for h in hits}
    assert len(hits) == 8 and str(indexed / "later.jpg") in paths
    assert str(indexed / "img0.jpg") not in paths


def test_index_file_with_extra_vectors_is_rebuilt(cli, indexed, lib_dir):
    # An index that disagrees with the store (more vectors than rows) is not trusted.
    import numpy as np

    from clipsearch.store.faiss_index import VectorIndex

    idx = VectorIndex.load_latest(lib_dir)
    idx.add(np.array([10_000]), np.ones((1, idx.dim), np.float32) / np.sqrt(idx.dim))
    idx.save(lib_dir, idx.seq)
    st = json.loads(cli("status", "--json").stdout)
    assert st["index"]["vectors"] == 8
