"""Search means something: the shipped tiny-shapes model on a shapes-world collection.

The model was trained by scripts/train_tiny_clip.py (see docs/tiny-shapes.md); these tests
check what a user would notice: the right pictures come first.
"""

import json
from pathlib import Path

import pytest

from clipsearch import Library
from clipsearch.demo import shapes
from clipsearch.demo.shapes import Description, parse_caption

QUERIES = [
    "a red circle",
    "a blue square",
    "three small stars",
    "a green cross on a beige background",
    "a pink circle",  # a held-out pair: pink circles were never shown in training
    "a yellow heart",  # held out too
]
PLANTED = [parse_caption(q) for q in QUERIES]  # three true matches of each are planted


@pytest.fixture(scope="module")
def shapes_lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    photos = root / "photos"
    shapes.write_collection(photos / "random", 60, seed=21, size=128, suffix=".jpg")
    shapes.write_collection(
        photos / "planted", 3 * len(PLANTED), seed=22, size=128, suffix=".png", descriptions=PLANTED
    )
    lib = Library.open(root / "library", model="tiny-shapes")
    lib.index([photos])
    yield lib
    lib.close()


def truth(hit) -> Description:
    return parse_caption(Path(hit.path).stem)


def test_held_out_pairs_really_were_held_out():
    assert ("pink", "circle") in shapes.HELDOUT_COMBOS
    assert ("yellow", "heart") in shapes.HELDOUT_COMBOS


@pytest.mark.parametrize("query", QUERIES[:4])
def test_text_query_ranks_true_matches_first(shapes_lib, query):
    want = parse_caption(query)
    hits = shapes_lib.search(query, k=3)
    assert [want.matches(truth(h)) for h in hits] == [True, True, True], [h.path for h in hits]


@pytest.mark.parametrize("query", ["a pink circle", "a yellow heart"])
def test_held_out_combination_query_works(shapes_lib, query):
    want = parse_caption(query)
    hits = shapes_lib.search(query, k=3)
    assert all(want.matches(truth(h)) for h in hits), [h.path for h in hits]


def test_scores_are_ordered_and_separate_matches_from_the_rest(shapes_lib):
    want = parse_caption("a red circle")  # one red circle (any size, any background)
    hits = shapes_lib.search("a red circle", k=30)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    matching = [h.score for h in hits if want.matches(truth(h))]
    others = [h.score for h in hits if not want.matches(truth(h))]
    assert len(matching) >= 3 and min(matching) > max(others)


@pytest.mark.parametrize("query", [q for q in QUERIES if parse_caption(q).colour])
def test_image_query_returns_the_same_shape_and_colour_first(shapes_lib, query, tmp_path):
    # A new picture (not in the library) of the thing: pictures of the same colour and shape
    # come first, whatever their count, size or background.
    (example,) = shapes.write_collection(
        tmp_path, 1, seed=99, size=128, suffix=".png", descriptions=[parse_caption(query)]
    )
    want = parse_caption(query)
    same_look = Description(colour=want.colour, kind=want.kind)
    hits = shapes_lib.search(image=example, k=3)
    assert [same_look.matches(truth(h)) for h in hits] == [True, True, True], [
        Path(h.path).name for h in hits
    ]


def test_an_indexed_picture_is_its_own_best_match(shapes_lib):
    planted = sorted(Path(shapes_lib.status()["roots"][0]["path"]).glob("planted/*.png"))
    for path in planted[::3]:
        top = shapes_lib.search(image=path, k=1)[0]
        assert top.path == str(path) and top.score == pytest.approx(1.0, abs=1e-4)


def test_negative_term_pushes_a_colour_away(shapes_lib):
    plain = shapes_lib.search("a circle", k=6)
    assert any(truth(h).colour == "red" for h in plain)  # red circles among the circles...
    hits = shapes_lib.search("a circle - 0.5:red", k=3)  # ...until red is pushed away
    assert all(truth(h).kind == "circle" and truth(h).colour != "red" for h in hits), [
        Path(h.path).name for h in hits
    ]


def test_mix_of_image_and_text(shapes_lib):
    # A red circle's picture + the word "square": red squares or other circles, never noise.
    red_circle = next(
        p for p in Path(shapes_lib.status()["roots"][0]["path"]).glob("planted/*red-circle*")
    )
    hits = shapes_lib.search("a square", image=red_circle, k=3)
    assert all(truth(h).kind in ("square", "circle") for h in hits)


def test_the_demo_finds_what_it_asks_for(tmp_path):
    from tests.helpers import run_process

    proc = run_process("demo", "--dir", str(tmp_path / "demo"), "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["model"] == "tiny-shapes" and report["index"]["failed"] == 0
    results = [r for q in report["queries"] for r in q["results"]]
    assert len(report["queries"]) == 6 and len(results) == 18
    assert sum(r["correct"] for r in results) >= 17


@pytest.mark.parametrize("query", ["a red circle", "a blue square"])
def test_cutoff_auto_ends_the_list_where_the_matches_end(shapes_lib, query):
    # The matches score apart from the rest (test above): `cutoff="auto"` ends the list at
    # that drop instead of running on to k, and keeps every score.
    want = parse_caption(query)
    everything = shapes_lib.search(query, k=60)
    matching = sum(want.matches(truth(h)) for h in everything)
    cut = shapes_lib.search(query, k=60, cutoff="auto")
    assert 3 <= len(cut) < len(everything)
    kept = [want.matches(truth(h)) for h in cut]
    assert sum(kept) >= min(3, matching) and sum(kept) / len(cut) >= 0.75, [h.path for h in cut]
    assert [h.score for h in cut] == [h.score for h in everything[: len(cut)]]
