"""`classify` and `tag` with the shipped tiny-shapes model: accuracy, filters, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipsearch.demo import shapes
from tests.helpers import cs

LABELS = [f"{c} {k}" for c in shapes.COLOURS for k in shapes.SHAPES]


def _truth(path: str) -> str:
    d = shapes.parse_caption(Path(path).stem.split("-", 1)[1].replace("-", " "))
    return f"{d.colour} {d.kind}"


@pytest.fixture(scope="module")
def shapes_lib(tmp_path_factory) -> tuple[Path, Path]:
    """48 single-object shapes pictures (every colour x shape once), indexed with tiny-shapes."""
    root = tmp_path_factory.mktemp("shapes")
    descs = [
        shapes.Description(count=1, colour=c, kind=k) for c in shapes.COLOURS for k in shapes.SHAPES
    ]
    shapes.write_collection(root / "photos", len(descs), seed=11, descriptions=descs)
    lib = root / "lib"
    cs(lib, "--model", "tiny-shapes", "index", str(root / "photos"))
    return lib, root


def test_zero_shot_accuracy_on_the_shapes_world(shapes_lib):
    lib, _ = shapes_lib
    results = json.loads(cs(lib, "classify", *LABELS, "--json").stdout)
    assert len(results) == 48
    correct = sum(r["label"] == _truth(r["path"]) for r in results)
    assert correct / len(results) >= 0.9, correct
    for r in results:
        assert 0 < r["probability"] <= 1 and r["top"][0]["label"] == r["label"]
        assert r["top"][0]["probability"] >= r["top"][1]["probability"]
    table = cs(lib, "classify", "red circle", "blue square").stdout
    assert "red circle" in table and "prob" in table


def test_classify_where_limits_the_images(shapes_lib):
    lib, root = shapes_lib
    one = sorted((root / "photos").glob("*-red-star-*"))[0]
    results = json.loads(cs(lib, "classify", *LABELS, "--where", str(one), "--json").stdout)
    assert [r["path"] for r in results] == [str(one)]
    assert results[0]["label"] == "red star"


def test_tag_then_search_by_tag_and_retag_replaces(shapes_lib, tmp_path):
    lib, root = shapes_lib
    vocab = tmp_path / "shapes.txt"
    vocab.write_text("# colours and shapes\n" + "\n".join(LABELS) + "\n\n")
    summary = json.loads(
        cs(lib, "tag", "--vocabulary", str(vocab), "--min-score", "0.5", "--json").stdout
    )
    assert summary["labels"] == 48 and summary["images"] == 48
    found = json.loads(
        cs(lib, "search", "a shape", "--tag", "red circle", "--json", "-k", "48").stdout
    )
    assert found, "no image tagged red circle"
    assert all(_truth(r["path"]) == "red circle" for r in found)
    status = json.loads(cs(lib, "status", "--json").stdout)
    assert status["vocabulary"] == {"name": str(vocab), "labels": 48, "min_score": 0.5}

    # New images are tagged as they are indexed.
    extra = root / "photos" / "later"
    shapes.write_collection(
        extra,
        2,
        seed=99,
        descriptions=[shapes.Description(count=1, size="large", colour="red", kind="circle")],
    )
    cs(lib, "index", str(root / "photos"))
    found = json.loads(
        cs(lib, "search", "a shape", "--tag", "red circle", "--json", "-k", "48").stdout
    )
    assert {str(p) for p in extra.iterdir()} <= {r["path"] for r in found}

    # Re-tagging replaces every tag.
    other = tmp_path / "kinds.txt"
    other.write_text("\n".join(shapes.SHAPES))
    cs(lib, "tag", "--vocabulary", str(other))
    assert json.loads(cs(lib, "search", "a shape", "--tag", "red circle", "--json").stdout) == []
    circles = json.loads(
        cs(lib, "search", "a shape", "--tag", "circle", "--json", "-k", "60").stdout
    )
    assert (
        circles and sum(_truth(r["path"]).endswith("circle") for r in circles) / len(circles) >= 0.8
    )


def test_builtin_vocabularies_load():
    from clipsearch.tags.classify import load_vocabulary

    coco, imagenet = load_vocabulary("coco"), load_vocabulary("imagenet")
    assert len(coco.labels) == 80 and "dog" in coco.labels and "person" in coco.labels
    assert len(imagenet.labels) >= 998 and "goldfish" in imagenet.labels  # 2 names repeat


def test_bad_labels_and_vocabularies_are_clear_errors(shapes_lib, tmp_path):
    lib, _ = shapes_lib
    none = cs(lib, "classify", expect=2)
    assert "no labels given" in none.stderr and "Traceback" not in none.stderr
    assert "no labels given" in cs(lib, "classify", " ", "", expect=2).stderr
    unknown = cs(lib, "tag", "--vocabulary", "klingon", expect=2)
    assert "unknown vocabulary 'klingon'" in unknown.stderr and "coco" in unknown.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    assert "has no labels" in cs(lib, "tag", "--vocabulary", str(empty), expect=2).stderr
    assert (
        "between 0 and 1"
        in cs(lib, "tag", "--vocabulary", "coco", "--min-score", "2", expect=2).stderr
    )
