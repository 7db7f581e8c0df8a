"""`clipsearch dupes`: groups, keepers, the HTML page, quarantine moves and undo."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.store.lock import WriterLock
from tests.helpers import photo_like


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """Two originals with copies, two singletons. Returns the photo folder."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    a = photo_like(1)
    a.save(root / "a.jpg", quality=95)
    a.resize((160, 120), Image.LANCZOS).save(root / "a-small.jpg", quality=90)
    a.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "a-flip.jpg", quality=60)
    b = photo_like(2, (256, 192))
    b.save(root / "b.png")
    (root / "sub" / "b-copy.png").write_bytes((root / "b.png").read_bytes())
    os.utime(root / "b.png", (1_600_000_000, 1_600_000_000))  # the older of the two copies
    b.save(root / "b-q30.jpg", quality=30)
    photo_like(3).save(root / "c.jpg")
    photo_like(4).save(root / "d.jpg")
    return root


def _groups(result) -> list[dict]:
    return json.loads(result.output)["groups"]


def _names(group: dict) -> tuple[str, list[str]]:
    return (
        os.path.basename(group["keeper"]["path"]),
        sorted(os.path.basename(m["path"]) for m in group["others"]),
    )


def test_groups_with_keepers_and_reasons(cli, collection):
    cli("index", str(collection))
    groups = _groups(cli("dupes", "--no-similar", "--json"))
    assert sorted(_names(g) for g in groups) == [
        ("a.jpg", ["a-flip.jpg", "a-small.jpg"]),  # same pixels as the flip: the larger file
        ("b.png", ["b-copy.png", "b-q30.jpg"]),  # same bytes as b-copy.png: the older
    ]
    by_keeper = {os.path.basename(g["keeper"]["path"]): g for g in groups}
    assert by_keeper["b.png"]["reasons"] == ["exact", "near"]
    assert by_keeper["a.jpg"]["reasons"] == ["near"]
    for g in groups:
        for p in g["pairs"]:
            assert 0.75 < p["score"] <= 1.0
            assert (p["distance"] == 0) if p["reason"] == "exact" else p["distance"] <= 24

    table = cli("dupes", "--no-similar").output
    assert "keep" in table and "copy" in table and "a-small.jpg" in table


def test_html_report_shows_groups_side_by_side(cli, collection, tmp_path):
    cli("index", str(collection))
    out = tmp_path / "report.html"
    cli("dupes", "--no-similar", "--html", str(out))
    page = out.read_text()
    assert page.count('<section class="group">') == 2
    assert page.count("data:image/jpeg;base64,") == 6  # every member has a thumbnail
    assert str(collection / "sub" / "b-copy.png") in page
    assert "exact 1.000" in page and "near" in page


def test_similar_images_by_clip(tmp_path):
    from clipsearch.demo import shapes
    from tests.helpers import cs

    same = shapes.Description(
        count=1, size="large", colour="red", kind="circle", background="white"
    )
    other = shapes.Description(
        count=3, size="small", colour="blue", kind="star", background="black"
    )
    shapes.write_collection(tmp_path / "shapes", 3, seed=5, descriptions=[same, same, other])
    lib = tmp_path / "lib"
    cs(lib, "--model", "tiny-shapes", "index", str(tmp_path / "shapes"))
    got = cs(lib, "dupes", "--threshold", "0.9", "--json")
    groups = json.loads(got.stdout)["groups"]
    assert len(groups) == 1
    names = sorted(os.path.basename(m["path"]) for m in [groups[0]["keeper"], *groups[0]["others"]])
    assert [n.split("-", 1)[1] for n in names] == [
        "a-large-red-circle-on-a-white-background.png"
    ] * 2
    assert groups[0]["reasons"] == ["similar"] and groups[0]["pairs"][0]["score"] >= 0.9
    none = cs(lib, "dupes", "--no-similar", "--json")
    assert json.loads(none.stdout)["groups"] == []


def test_move_to_quarantine_and_undo(cli, collection, lib_dir, tmp_path):
    cli("index", str(collection))
    before = {
        r.path: r.id for r in Library.open(lib_dir).store.rows_under([str(collection)]).values()
    }
    quarantine = tmp_path / "quarantine"
    moved = json.loads(cli("dupes", "--no-similar", "--move-to", str(quarantine), "--json").output)
    targets = sorted(os.path.relpath(m["to"], quarantine) for m in moved["moved"])
    assert targets == ["a-flip.jpg", "a-small.jpg", "b-q30.jpg", "sub/b-copy.png"]
    assert moved["skipped"] == []
    for name in ("a.jpg", "b.png", "c.jpg", "d.jpg"):
        assert (collection / name).exists()  # keepers stay
    for rel in targets:
        assert (quarantine / rel).is_file() and not (collection / rel).exists()
    with Library.open(lib_dir) as lib:  # the library follows: same ids, new paths
        for m in moved["moved"]:
            assert lib.store.get_rows([m["id"]])[m["id"]].path == m["to"]
            assert before[m["from"]] == m["id"]
    log = Path(moved["log"])
    assert [json.loads(line)["from"] for line in log.read_text().splitlines()]
    assert _groups(cli("dupes", "--no-similar", "--json")) == []  # quarantine is left out

    back = json.loads(cli("dupes", "--undo", str(log), "--json").output)
    assert len(back["moved"]) == 4 and back["skipped"] == []
    for rel in targets:
        assert (collection / rel).is_file() and not (quarantine / rel).exists()
    with Library.open(lib_dir) as lib:
        now = {r.path: r.id for r in lib.store.rows_under([str(collection)]).values()}
    assert now == before
    assert len(_groups(cli("dupes", "--no-similar", "--json"))) == 2


def test_move_never_overwrites(cli, collection, tmp_path):
    cli("index", str(collection))
    quarantine = tmp_path / "q"
    quarantine.mkdir()
    (quarantine / "a-small.jpg").write_bytes(b"someone else's file")
    moved = json.loads(cli("dupes", "--no-similar", "--move-to", str(quarantine), "--json").output)
    assert [s["path"] for s in moved["skipped"]] == [str(collection / "a-small.jpg")]
    assert "never overwritten" in moved["skipped"][0]["reason"]
    assert (quarantine / "a-small.jpg").read_bytes() == b"someone else's file"
    assert (collection / "a-small.jpg").is_file()
    assert len(moved["moved"]) == 3


def test_bad_destination_and_bad_undo_log_are_clear_errors(cli, collection, tmp_path):
    cli("index", str(collection))
    inside = cli("dupes", "--no-similar", "--move-to", str(collection / "q"), expect=2)
    assert "overlaps the indexed folder" in inside.stderr
    assert not (collection / "q").exists() and (collection / "a-small.jpg").exists()
    missing = cli("dupes", "--undo", str(tmp_path / "nope.jsonl"), expect=2)
    assert "cannot read undo log" in missing.stderr and "Traceback" not in missing.output
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    assert "not a clipsearch undo log" in cli("dupes", "--undo", str(junk), expect=2).stderr


def test_busy_library_moves_nothing(cli, collection, lib_dir, tmp_path):
    cli("index", str(collection))
    with WriterLock(lib_dir) as lock:
        lock.acquire("another writer")
        busy = cli("dupes", "--no-similar", "--move-to", str(tmp_path / "q"), expect=3)
    assert "being written" in busy.stderr or "busy" in busy.stderr
    assert sorted(p.name for p in collection.iterdir() if p.is_file()) == [
        "a-flip.jpg",
        "a-small.jpg",
        "a.jpg",
        "b-q30.jpg",
        "b.png",
        "c.jpg",
        "d.jpg",
    ]
    assert not (tmp_path / "q").exists()


def test_library_indexed_before_hashes_gets_them_lazily(cli, collection, lib_dir):
    cli("index", str(collection))
    with sqlite3.connect(lib_dir / "clipsearch.db") as db:  # as a library from before 0003
        db.execute(
            "UPDATE images SET phash = NULL, dhash = NULL, phash_mirror = NULL, dhash_mirror = NULL"
        )
    first = json.loads(cli("dupes", "--no-similar", "--json").output)
    assert first["hashed"] == 8
    assert len(first["groups"]) == 2
    again = json.loads(cli("dupes", "--no-similar", "--json").output)
    assert again["hashed"] == 0 and len(again["groups"]) == 2  # stored the first time


def test_copies_indexed_later_reuse_and_keep_hashes(cli, collection, lib_dir):
    cli("index", str(collection))
    (collection / "sub" / "a-again.jpg").write_bytes((collection / "a.jpg").read_bytes())
    cli("index", str(collection))
    groups = {_names(g)[0]: _names(g)[1] for g in _groups(cli("dupes", "--no-similar", "--json"))}
    assert groups["a.jpg"] == ["a-again.jpg", "a-flip.jpg", "a-small.jpg"]
