"""`clipsearch dupes`: groups, keepers, the HTML page, quarantine moves and undo."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.store.lock import WriterLock
from tests.helpers import cs, photo_like


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
    assert page.count('<section class="group copies">') == 2
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
    assert groups[0]["kind"] == "similar" and groups[0]["others"][0]["reason"] == "similar"
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


def _rows(output: str, name: str) -> list[str]:
    return [line for line in output.splitlines() if line.rstrip().endswith(name)]


def test_keeper_is_the_original_jpeg_and_a_byte_identical_copy_is_exact(cli, tmp_path_factory):
    photos = tmp_path_factory.mktemp("k") / "photos"  # a short path: table rows on one line
    (photos / "sub").mkdir(parents=True)
    a = photo_like(7)
    a.save(photos / "a.jpg", quality=90)
    a.save(photos / "a-converted.png")  # the same pixels as a PNG: larger, nothing more
    small = a.resize((160, 120), Image.LANCZOS)
    small.save(photos / "a-small.jpg", quality=85)
    (photos / "sub" / "a-small-again.jpg").write_bytes((photos / "a-small.jpg").read_bytes())
    assert (photos / "a-converted.png").stat().st_size > (photos / "a.jpg").stat().st_size
    cli("index", str(photos))

    (group,) = _groups(cli("dupes", "--no-similar", "--json"))
    assert _names(group) == ("a.jpg", ["a-converted.png", "a-small-again.jpg", "a-small.jpg"])
    others = {os.path.basename(m["path"]): m for m in group["others"]}
    assert others["a-small-again.jpg"]["reason"] == "exact"
    assert others["a-small-again.jpg"]["match"] == others["a-small.jpg"]["id"]
    assert others["a-small.jpg"]["reason"] == "exact"
    assert others["a-converted.png"]["reason"] == "near"
    assert others["a-converted.png"]["match"] == group["keeper"]["id"]

    table = cli("dupes", "--no-similar").output
    (again,) = _rows(table, "a-small-again.jpg")
    assert " exact " in again and "1.000" in again and "near" not in again
    (keep,) = _rows(table, "a.jpg")
    assert " keep " in keep and "JPEG" in keep


def test_random_model_does_not_offer_to_move_everything(cli, lib_dir, tmp_path):
    """A randomly initialised model puts every picture near every other: similar pairs
    are left out, with the reason, and only real copies are offered or moved."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(24):
        photo_like(100 + i).save(photos / f"p{i:02d}.jpg", quality=90)
    photo_like(100).resize((160, 120), Image.LANCZOS).save(photos / "p00-small.jpg")
    (photos / "p01-copy.jpg").write_bytes((photos / "p01.jpg").read_bytes())
    cli("index", str(photos))
    with Library.open(lib_dir) as lib:  # the premise: this model cannot tell them apart
        _, vectors = next(lib.store.iter_vectors(lib.dim))
    cos = vectors @ vectors.T
    np.fill_diagonal(cos, -1)
    assert np.median(cos.max(axis=1)) > 0.98 and np.median(cos) > 0.9

    report = json.loads(cli("dupes", "--json").stdout)
    assert sorted(_names(g) for g in report["groups"]) == [
        ("p00.jpg", ["p00-small.jpg"]),
        ("p01.jpg", ["p01-copy.jpg"]),
    ]
    assert {g["kind"] for g in report["groups"]} == {"copies"}
    assert report["duplicates"] == 2 and report["similar_images"] == 0
    cal = report["calibration"]
    assert cal["used"] is False and cal["pictures"] == 24 and cal["nn_median"] > 0.98
    assert "cannot tell these pictures apart" in report["warnings"][0]

    table = cli("dupes")
    assert "warning: similar images left out" in table.stderr
    assert "cannot tell these pictures apart" in table.stderr

    moved = cli("dupes", "--move-to", str(tmp_path / "q"), "--json")
    assert sorted(os.path.basename(m["from"]) for m in json.loads(moved.stdout)["moved"]) == [
        "p00-small.jpg",
        "p01-copy.jpg",
    ]
    assert len(list(photos.iterdir())) == 24


@pytest.fixture
def shapes_library(tmp_path: Path) -> tuple[Path, Path]:
    """tiny-shapes (a trained model) over 12 distinct scenes, two of which show the same
    description (look-alikes, not copies), plus one exact copy."""
    from clipsearch.demo import shapes

    same = shapes.Description(
        count=1, size="large", colour="red", kind="circle", background="white"
    )
    folder = tmp_path / "shapes"
    paths = shapes.write_collection(folder, 12, seed=11, descriptions=[same, same, *[None] * 10])
    (folder / "copy-of-last.png").write_bytes(paths[-1].read_bytes())
    lib = tmp_path / "shapes-lib"
    cs(lib, "--model", "tiny-shapes", "index", str(folder))
    return lib, folder


def test_similar_groups_stand_apart_and_move_only_when_asked(shapes_library, tmp_path):
    lib, folder = shapes_library
    report = json.loads(cs(lib, "dupes", "--threshold", "0.9", "--json").stdout)
    assert report["calibration"]["used"] is True and report["warnings"] == []
    assert report["calibration"]["nn_median"] < 0.9  # a trained model spreads them out
    kinds = [g["kind"] for g in report["groups"]]
    assert kinds == ["copies", "similar"]  # copies first, similar apart
    copies, similar = report["groups"]
    assert copies["reasons"] == ["exact"] and copies["others"][0]["reason"] == "exact"
    alike = sorted(os.path.basename(m["path"]) for m in [similar["keeper"], *similar["others"]])
    assert [n[:4] for n in alike] == ["0000", "0001"]
    assert report["copies"] == 1 and report["similar_images"] == 1

    table = cs(lib, "dupes", "--threshold", "0.9")
    assert "Exact and near copies" in table.stdout and "Similar images" in table.stdout
    assert table.stdout.index("copy-of-last.png") < table.stdout.index("Similar images")

    quarantine = tmp_path / "q"
    moved = cs(lib, "dupes", "--threshold", "0.9", "--move-to", str(quarantine))
    assert "1 files moved" in moved.stderr
    assert "1 similar image was not moved" in moved.stderr and "--include-similar" in moved.stderr
    assert not (folder / "copy-of-last.png").exists()
    assert {p.name[:4] for p in folder.iterdir()} >= {"0000", "0001"}  # look-alikes stay

    both = json.loads(
        cs(
            lib,
            "dupes",
            "--threshold",
            "0.9",
            "--move-to",
            str(quarantine),
            "--include-similar",
            "--json",
        ).stdout
    )
    assert [os.path.basename(m["from"])[:4] for m in both["moved"]] == [
        os.path.basename(similar["others"][0]["path"])[:4]
    ]
    assert both["similar_not_moved"] == 0
    usage = cs(lib, "dupes", "--include-similar", expect=2)
    assert "--include-similar only applies with --move-to" in usage.stderr


def test_printed_undo_command_works_when_pasted(tmp_path, tiny_model):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo_like(1).save(photos / "a.jpg", quality=95)
    photo_like(1).resize((160, 120), Image.LANCZOS).save(photos / "a-small.jpg")
    lib = tmp_path / "my library"  # a space: the command must be quoted to paste
    cs(lib, "--model", tiny_model, "index", str(photos))
    moved = cs(lib, "dupes", "--no-similar", "--move-to", str(tmp_path / "quarantine dir"))
    (line,) = [x for x in moved.stderr.splitlines() if x.startswith("Undo with:")]
    argv = shlex.split(line.removeprefix("Undo with:"))
    assert argv[:3] == ["clipsearch", "--library", str(lib)]
    assert not (photos / "a-small.jpg").exists()
    from click.testing import CliRunner

    from clipsearch.cli import cli as command

    pasted = CliRunner().invoke(command, argv[1:], catch_exceptions=False)
    assert pasted.exit_code == 0, pasted.output
    assert "1 files restored" in pasted.stderr
    assert (photos / "a-small.jpg").is_file()
