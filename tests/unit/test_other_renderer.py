"""Tests for the other renderers of the shapes world (clipsearch.demo.other_renderer)."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from clipsearch.demo import other_renderer as other
from clipsearch.demo import shapes
from clipsearch.demo.shapes import Description

WHITE = (246, 246, 244)


def _look(renderer: str, **kw) -> other.Look:
    """A plain look: filled, antialiased, flat background, no blur, shading or JPEG."""
    base = other.sample_look(random.Random(0), renderer)
    plain = dict(size=128, mode="filled", supersample=2, texture="flat", shade=0.0, blur=0.0)
    return replace(base, **{**plain, "jpeg": 0, "square_round": 0.0, "line": 0.03, **kw})


def _one(kind: str, colour: str = "red", radius: float = 0.35, rotation: float = 20.0):
    shape = shapes.Shape(kind, colour, "large", 0.5, 0.5, radius, rotation, shapes.COLOURS[colour])
    return shapes.Scene((shape,), "white", WHITE, (0.0, 0.0))


def _mask(image, background=WHITE) -> np.ndarray:
    px = np.asarray(image).astype(int)
    return np.abs(px - np.asarray(background)).sum(-1) > 90


@pytest.mark.parametrize("style", other.STYLES)
def test_same_seed_same_picture_and_global_state_untouched(style: str) -> None:
    random.seed(1)
    np.random.seed(1)
    expected = (random.random(), np.random.random())
    random.seed(1)
    np.random.seed(1)
    want = Description(1, None, "blue", "star")
    a = other.sample_picture(random.Random(3), want, style, "include")
    b = other.sample_picture(random.Random(3), want, style, "include")
    assert a[0] == b[0] and want.matches(a[0])
    assert np.array_equal(np.asarray(a[1]), np.asarray(b[1]))
    assert a[1].mode == "RGB" and a[1].size[0] == a[1].size[1]
    assert (random.random(), np.random.random()) == expected


@pytest.mark.parametrize("kind", shapes.SHAPES)
def test_the_two_renderers_draw_the_same_shape(kind: str) -> None:
    # Two implementations (Pillow polygons, numpy distance fields) of one geometry: the
    # same pixels, up to edges (the heart's outlines differ on purpose: two constructions).
    scene = _one(kind)
    pil = _mask(other.render_look(scene, _look("pil")))
    sdf = _mask(other.render_look(scene, _look("sdf")))
    iou = (pil & sdf).sum() / (pil | sdf).sum()
    assert iou > (0.75 if kind == "heart" else 0.88), iou
    assert 0.08 < sdf.mean() < 0.5  # a large shape, not the whole picture


@pytest.mark.parametrize("renderer", other.RENDERERS)
def test_outline_leaves_the_inside_empty_and_keeps_the_colour(renderer: str) -> None:
    scene = _one("circle", "green")
    filled = np.asarray(other.render_look(scene, _look(renderer))).astype(int)
    outline = np.asarray(other.render_look(scene, _look(renderer, mode="outline"))).astype(int)
    centre = (64, 64)
    assert np.abs(filled[centre] - shapes.COLOURS["green"]).max() < 10
    assert np.abs(outline[centre] - WHITE).max() < 10
    ring = _mask(outline)
    assert 0.02 < ring.mean() < _mask(filled).mean() / 2
    ys, xs = np.nonzero(ring)
    assert np.abs(outline[ys, xs] - shapes.COLOURS["green"]).sum(-1).min() < 30


def test_aliased_pictures_have_hard_edges() -> None:
    scene = _one("triangle", "blue")
    for renderer in other.RENDERERS:
        hard = np.asarray(other.render_look(scene, _look(renderer, supersample=1)))
        soft = np.asarray(other.render_look(scene, _look(renderer, supersample=2)))
        n_hard = len(np.unique(hard.reshape(-1, 3), axis=0))
        n_soft = len(np.unique(soft.reshape(-1, 3), axis=0))
        assert n_hard == 2 and n_soft >= 4, (renderer, n_hard, n_soft)


def test_wide_scenes_keep_the_caption_and_stay_inside() -> None:
    rng = random.Random(4)
    radii = {"small": [], "large": []}
    for _ in range(300):
        want = shapes.sample_description(rng, "exclude")
        scene = other.sample_wide_scene(rng, want)
        assert scene.description == want and shapes.caption(scene) == shapes.caption(want)
        for s in scene.shapes:
            assert s.radius < s.x < 1 - s.radius and s.radius < s.y < 1 - s.radius
            radii[s.size].append(s.radius)
        for i, a in enumerate(scene.shapes):
            for b in scene.shapes[i + 1 :]:
                assert np.hypot(a.x - b.x, a.y - b.y) > a.radius + b.radius
    assert max(radii["small"]) < min(radii["large"])  # "small" and "large" stay apart
    assert min(radii["small"]) < 0.09 and max(radii["large"]) > 0.35  # wider than the house's


def test_heldout_combos_are_never_drawn_for_training() -> None:
    rng = random.Random(5)
    for style in ("house", *other.RENDERERS):
        for _ in range(100):
            d, _ = other.sample_picture(rng, Description(colour="yellow"), style, size=48)
            assert d.kind != "heart"


@pytest.mark.parametrize("kind", shapes.SHAPES)
def test_plain_style_is_one_filled_shape_on_white_in_the_exact_colour(kind: str) -> None:
    rng = random.Random(6)
    image = other.render_plain("purple", kind, rng)
    assert image.size == (other.PLAIN_SIZE, other.PLAIN_SIZE)
    colours = {tuple(c) for c in np.unique(np.asarray(image).reshape(-1, 3), axis=0)}
    assert colours == {(255, 255, 255), shapes.COLOURS["purple"]}  # aliased, exact palette
    d, _ = other.sample_picture(rng, Description(colour="red", kind=kind), other.HELDOUT_STYLE)
    assert (d.count, d.background, d.colour, d.kind) == (1, "white", "red", kind)


def test_every_look_renders() -> None:
    rng = random.Random(7)
    for i in range(60):
        renderer = other.RENDERERS[i % 2]
        look = other.sample_look(rng, renderer)
        scene = other.sample_wide_scene(rng, heldout="include")
        image = other.render_look(scene, look)
        assert image.size == (look.size, look.size) and image.mode == "RGB"
        # the shapes' colour is there (before blur and JPEG, which may wash out thin lines)
        px = np.asarray(other.render_look(scene, replace(look, blur=0.0, jpeg=0))).astype(int)
        s = scene.shapes[0]
        assert np.abs(px - np.asarray(s.rgb)).sum(-1).min() < 60, (look, s)
    with pytest.raises(ValueError, match="renderer"):
        other.sample_look(rng, "plain")
