"""Tests for the procedural shapes world (clipsearch.demo.shapes)."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from clipsearch.demo import shapes
from clipsearch.demo.shapes import Description


def _scenes(seed: int, n: int = 50, heldout: shapes.Heldout = "exclude") -> list[shapes.Scene]:
    rng = random.Random(seed)
    return [shapes.sample_scene(rng, heldout=heldout) for _ in range(n)]


def test_same_seed_same_scenes_pixels_and_captions() -> None:
    a, b = _scenes(7), _scenes(7)
    assert a == b
    assert [shapes.caption(s) for s in a] == [shapes.caption(s) for s in b]
    for s, t in zip(a[:10], b[:10], strict=True):
        assert np.array_equal(np.asarray(shapes.render(s)), np.asarray(shapes.render(t)))
    assert _scenes(8) != a


def test_sampling_leaves_global_random_state_alone() -> None:
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    shapes.render(_scenes(1, n=5)[0])
    assert (random.random(), np.random.random()) == expected


def test_caption_agrees_with_attributes() -> None:
    for scene in _scenes(3, n=200, heldout="include"):
        d = scene.description
        assert d.is_complete
        assert len(scene.shapes) == d.count
        assert all((s.kind, s.colour, s.size) == (d.kind, d.colour, d.size) for s in scene.shapes)
        text = shapes.caption(scene)
        assert text.endswith(f" on a {d.background} background")
        noun = d.kind if d.count == 1 else shapes.PLURALS[d.kind]
        assert f"{d.size} {d.colour} {noun} " in text
        assert text.split()[0] == {1: "a", 2: "two", 3: "three"}[d.count]
        assert shapes.parse_caption(text) == d


@pytest.mark.parametrize(
    ("desc", "text"),
    [
        (
            Description(2, "small", "red", "circle", "white"),
            "two small red circles on a white background",
        ),
        (Description(1, None, "orange", "star"), "an orange star"),
        (Description(1, "large", None, "cross"), "a large cross"),
        (Description(3, None, "blue", None, "black"), "three blue shapes on a black background"),
        (Description(None, None, "red", "circle"), "red circles"),
    ],
)
def test_caption_text(desc: Description, text: str) -> None:
    assert shapes.caption(desc) == text


def test_parse_caption_partial_and_filenames() -> None:
    assert shapes.parse_caption("a red circle") == Description(1, None, "red", "circle")
    assert shapes.parse_caption("Blue squares") == Description(None, None, "blue", "square")
    assert shapes.parse_caption("a blue square on a white background") == Description(
        1, None, "blue", "square", "white"
    )
    stem = "0007-two-small-red-circles-on-a-white-background.png"
    assert shapes.parse_caption(stem) == Description(2, "small", "red", "circle", "white")


def test_description_matches() -> None:
    full = Description(2, "small", "red", "circle", "white")
    assert Description(2, None, "red", "circle").matches(full)
    assert Description().matches(full)
    assert not Description(1, None, "red", "circle").matches(full)
    assert not Description(2, None, "blue").matches(full)


def test_heldout_combos_never_sampled_for_training() -> None:
    rng = random.Random(0)
    seen = Counter()
    for _ in range(5000):
        d = shapes.sample_description(rng, "exclude")
        assert (d.colour, d.kind) not in shapes.HELDOUT_COMBOS
        seen[d.colour] += 1
        seen[d.kind] += 1
    # every colour and every shape alone still appears in training
    assert all(seen[c] > 0 for c in shapes.COLOURS)
    assert all(seen[k] > 0 for k in shapes.SHAPES)
    # ...and so does every pair that is not held out
    pairs = {(d.colour, d.kind) for d in shapes.all_descriptions("exclude")}
    assert len(pairs) == len(shapes.COLOURS) * len(shapes.SHAPES) - len(shapes.HELDOUT_COMBOS)
    # partial descriptions are completed without ever landing on a held-out pair
    for _ in range(300):
        s = shapes.sample_scene(rng, Description(colour="yellow"), heldout="exclude")
        assert s.description.kind != "heart"
    held = {
        (d.colour, d.kind) for d in (shapes.sample_description(rng, "only") for _ in range(500))
    }
    assert held == set(shapes.HELDOUT_COMBOS)


def test_heldout_combos_share_no_colour_or_shape() -> None:
    colours = [c for c, _ in shapes.HELDOUT_COMBOS]
    kinds = [k for _, k in shapes.HELDOUT_COMBOS]
    assert len(set(colours)) == len(colours) and len(set(kinds)) == len(kinds)
    assert all(c in shapes.COLOURS and k in shapes.SHAPES for c, k in shapes.HELDOUT_COMBOS)


def test_all_descriptions_counts() -> None:
    n_all = len(shapes.all_descriptions("include"))
    assert n_all == (
        len(shapes.COUNTS)
        * len(shapes.SIZES)
        * len(shapes.COLOURS)
        * len(shapes.SHAPES)
        * len(shapes.BACKGROUNDS)
    )
    assert len(shapes.all_descriptions("exclude")) + len(shapes.all_descriptions("only")) == n_all


def test_shapes_stay_inside_and_do_not_overlap() -> None:
    for scene in _scenes(5, n=300):
        for s in scene.shapes:
            assert s.radius < s.x < 1 - s.radius and s.radius < s.y < 1 - s.radius
        for i, a in enumerate(scene.shapes):
            for b in scene.shapes[i + 1 :]:
                assert np.hypot(a.x - b.x, a.y - b.y) > a.radius + b.radius


@pytest.mark.parametrize("kind", shapes.SHAPES)
def test_red_shape_pixels_are_red(kind: str) -> None:
    rng = random.Random(0)
    scene = shapes.sample_scene(rng, Description(1, "large", "red", kind, "white"), "include")
    image = shapes.render(scene, size=64)
    assert image.size == (64, 64) and image.mode == "RGB"
    px = np.asarray(image).astype(int)
    s = scene.shapes[0]
    centre = px[round(s.y * 64), round(s.x * 64)]
    if kind != "cross":  # the others cover their centre... so does the cross, but be safe
        assert centre[0] > 170 and centre[1] < 90 and centre[2] < 90
    red = (px[..., 0] > 170) & (px[..., 1] < 90) & (px[..., 2] < 90)
    white = px.min(axis=-1) > 200
    assert red.sum() > 60  # a large shape covers well over 60 of 4096 pixels
    assert white.sum() > 2000  # the rest is (near-)white background
    # the red pixels lie around the shape's centre
    ys, xs = np.nonzero(red)
    assert abs(xs.mean() / 64 - s.x) < 0.08 and abs(ys.mean() / 64 - s.y) < 0.08


def test_counts_render_separate_blobs() -> None:
    rng = random.Random(1)
    for count in shapes.COUNTS:
        scene = shapes.sample_scene(rng, Description(count, "small", "blue", "circle", "white"))
        px = np.asarray(shapes.render(scene, size=128)).astype(int)
        blue = (px[..., 2] > 150) & (px[..., 0] < 120)
        assert _components(blue) == count


def _components(mask: np.ndarray) -> int:
    """Number of 4-connected components of a boolean mask."""
    seen = np.zeros_like(mask)
    n = 0
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        n += 1
        stack = [(y, x)]
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                inside = 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]
                if inside and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return n


def test_write_collection(tmp_path) -> None:
    paths = shapes.write_collection(tmp_path / "demo", 12, seed=3, size=96)
    assert len(paths) == 12 and len(set(paths)) == 12
    for path in paths:
        assert path.exists() and path.suffix == ".png"
        with Image.open(path) as im:
            assert im.size == (96, 96) and im.mode == "RGB"
        assert shapes.parse_caption(path.stem).is_complete
    again = shapes.write_collection(tmp_path / "again", 12, seed=3, size=96)
    assert [p.name for p in again] == [p.name for p in paths]
    jpgs = shapes.write_collection(tmp_path / "jpg", 2, seed=3, size=64, suffix=".jpg")
    with Image.open(jpgs[0]) as im:
        assert im.format == "JPEG"


def test_write_collection_with_descriptions(tmp_path) -> None:
    want = [Description(1, None, "red", "circle"), Description(colour="yellow", kind="heart")]
    paths = shapes.write_collection(tmp_path, 4, seed=0, size=64, descriptions=want)
    got = [shapes.parse_caption(p.stem) for p in paths]
    assert [want[i % 2].matches(d) for i, d in enumerate(got)] == [True] * 4


def test_import_is_light() -> None:
    code = "import sys, clipsearch.demo.shapes; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
