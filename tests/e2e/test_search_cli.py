"""`clipsearch search`: text, image, mixes, filters, output formats, gone files."""

import json
import os

import pytest

from tests.helpers import make_image


@pytest.fixture
def indexed(cli, photos):
    cli("index", str(photos))
    return photos


def search(cli, *args, expect=0):
    return json.loads(cli("search", *args, "--json", expect=expect).stdout)


def test_text_search_json_shape_and_order(cli, indexed):
    hits = search(cli, "a red circle", "-k", "5")
    assert len(hits) == 5
    assert {"id", "path", "score", "width", "height", "size", "mtime", "source"} <= set(hits[0])
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(os.path.isfile(h["path"]) for h in hits)


def test_multi_word_query_without_quotes(cli, indexed):
    assert search(cli, "a", "red", "circle") == search(cli, "a red circle")


def test_image_search_finds_the_same_image_first(cli, indexed):
    for name in ("img2.jpg", "sub/deep/png6.png"):
        top = search(cli, "--image", str(indexed / name), "-k", "3")[0]
        assert top["path"] == str(indexed / name)
        assert top["score"] == pytest.approx(1.0, abs=1e-4)


def test_image_outside_library_works(cli, indexed, tmp_path):
    query = make_image(tmp_path / "q" / "query.jpg", seed=2)  # same pixels as img2.jpg
    top = search(cli, "--image", str(query), "-k", "1")[0]
    assert top["path"] == str(indexed / "img2.jpg") and top["score"] > 0.99


def test_weights_steer_the_ranking(cli, indexed):
    a, b = str(indexed / "img0.jpg"), str(indexed / "img1.jpg")
    assert search(cli, f"3:{a} + {b}", "-k", "1")[0]["path"] == a
    assert search(cli, f"{a} + 3:{b}", "-k", "1")[0]["path"] == b


def test_mix_scores_are_cosine_to_the_weighted_sum(cli, indexed, lib_dir):
    import numpy as np

    from clipsearch import Library

    a, b = str(indexed / "img0.jpg"), str(indexed / "img1.jpg")
    hits = search(cli, f"3:{a} - {b}", "-k", "8")
    assert len(hits) == 8
    with Library.open(lib_dir) as lib:
        ids, vecs = lib.store.get_vectors([h["id"] for h in hits], lib.dim)
        va, vb = (
            lib.store.get_vectors([lib.store.row_by_path(p).id], lib.dim)[1][0] for p in (a, b)
        )
    q = 3 * va - vb
    q /= np.linalg.norm(q)
    expected = dict(zip(ids.tolist(), (vecs @ q).tolist(), strict=True))
    for h in hits:
        assert h["score"] == pytest.approx(expected[h["id"]], abs=1e-5)
    # --image/--not-image flags build the same query as the expression.
    flags = search(cli, "--image", a, "--not-image", b, "-k", "8")
    q2 = (va - vb) / np.linalg.norm(va - vb)
    for h in flags:
        assert h["score"] == pytest.approx(float(vecs[ids.tolist().index(h["id"])] @ q2), abs=1e-5)


def test_text_negative(cli, indexed):
    plain = search(cli, "beach", "-k", "8")
    neg = search(cli, "beach", "--not", "people", "-k", "8")
    assert [h["score"] for h in plain] != [h["score"] for h in neg]


def test_like_excludes_the_image_itself(cli, indexed):
    first = search(cli, "--image", str(indexed / "img0.jpg"), "-k", "1")[0]
    like = search(cli, "--like", str(first["id"]), "-k", "3")
    assert len(like) == 3 and first["id"] not in [h["id"] for h in like]


def test_top_and_min_score(cli, indexed):
    assert len(search(cli, "x", "-k", "3")) == 3
    assert len(search(cli, "x", "-k", "100")) == 8
    hits = search(cli, "--image", str(indexed / "img0.jpg"), "--min-score", "0.9999")
    assert [h["path"] for h in hits] == [str(indexed / "img0.jpg")]


def test_folder_filter(cli, indexed):
    hits = search(cli, "anything", "--in", str(indexed / "sub"), "-k", "10")
    assert {os.path.basename(h["path"]) for h in hits} == {"png6.png", "webp7.webp"}
    one = search(cli, "anything", "--in", str(indexed / "img3.jpg"))
    assert [h["path"] for h in one] == [str(indexed / "img3.jpg")]
    assert search(cli, "anything", "--in", str(indexed / "sub" / "nothing-here")) == []


def test_paths_and_table_output(cli, indexed):
    paths = cli("search", "dog", "-k", "4", "--paths").stdout.splitlines()
    assert len(paths) == 4 and all(os.path.isfile(p) for p in paths)
    table = cli("search", "dog", "-k", "2").stdout
    assert "score" in table and "path" in table
    assert cli("search", "x", "--json", "--paths", expect=2).exit_code == 2


def test_results_never_include_gone_files(cli, indexed):
    (indexed / "img0.jpg").unlink()  # deleted after indexing, before any re-index
    hits = search(cli, "--image", str(indexed / "img1.jpg"), "-k", "8")
    assert len(hits) == 7 and str(indexed / "img0.jpg") not in {h["path"] for h in hits}
    one = search(cli, "--like", "1", "-k", "1")
    assert len(one) == 1 and os.path.exists(one[0]["path"])


def test_query_errors_are_clear(cli, indexed, tmp_path):
    r = cli("search", "--image", str(tmp_path / "nope.jpg"), expect=2)
    assert "query image not found" in r.stderr
    r = cli("search", expect=2)
    assert "empty query" in r.stderr
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    r = cli("search", "--image", str(bad), expect=2)
    assert "cannot use query image" in r.stderr and "not an image" in r.stderr
    r = cli("search", "--like", "987654", expect=2)
    assert "no image with id 987654" in r.stderr
    r = cli("search", "dog - dog", expect=2)
    assert "cancel out" in r.stderr


def test_search_before_any_index(cli, lib_dir):
    r = cli("search", "dog", expect=1)
    assert "no library at" in r.stderr and "index" in r.stderr
    assert not lib_dir.exists()


def test_date_filters_use_capture_time_then_mtime(cli, tmp_path):
    from PIL import Image

    root = tmp_path / "dated"
    for name, when in (("old.jpg", "2019:05:01 10:00:00"), ("new.jpg", "2024:06:30 18:00:00")):
        img = Image.open(make_image(root / name, seed=len(name)))
        exif = img.getexif()
        exif.get_ifd(0x8769)[36867] = when
        img.save(root / name, exif=exif.tobytes())
    plain = make_image(root / "no-exif.jpg", seed=9)
    os.utime(plain, (1_600_000_000, 1_600_000_000))  # September 2020
    cli("index", str(root))

    def names(*args):
        return sorted(os.path.basename(h["path"]) for h in search(cli, "x", *args))

    assert names("--after", "2024") == ["new.jpg"]
    assert names("--before", "2020") == ["old.jpg"]
    assert names("--after", "2020-01", "--before", "2021-01-01") == ["no-exif.jpg"]
    assert names("--after", "2019-05-01T10:00:00", "--before", "2019-05-02") == ["old.jpg"]
    r = cli("search", "x", "--after", "last tuesday", expect=2)
    assert "'after' must be a date" in r.stderr


def test_source_filter(cli, indexed):
    assert len(search(cli, "x", "--source", "photos", "-k", "20")) == 8
    assert search(cli, "x", "--source", "generated") == []
    assert cli("search", "x", "--source", "drawings", expect=2).exit_code == 2
