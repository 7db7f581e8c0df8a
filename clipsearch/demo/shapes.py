"""A procedural "shapes world": seeded scenes of coloured shapes, their images and captions.

The world is small on purpose. A scene holds one, two or three shapes of the same kind, colour
and size, placed at random positions (with random rotation and slight colour jitter) on a
plain background with a soft gradient. Its canonical caption names every attribute::

    "two small red circles on a white background"

Captions may also leave attributes out (a :class:`Description` with ``None`` fields), as in
"a red circle" or "three stars on a black background"; :meth:`Description.matches` tells which
scenes such a caption truthfully describes.

Some (colour, shape) pairs, :data:`HELDOUT_COMBOS`, are never shown to the model in training
(``heldout="exclude"``), while every colour and every shape alone is; evaluation uses them to
measure compositional generalisation.

Everything here is pure PIL + numpy + stdlib, deterministic given a seed, and uses only the
random generator passed in (never global random state).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import product
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (220, 38, 38),
    "orange": (245, 140, 20),
    "yellow": (238, 214, 30),
    "green": (34, 160, 60),
    "blue": (40, 85, 225),
    "purple": (135, 55, 190),
    "pink": (245, 125, 190),
    "brown": (125, 75, 35),
}
"""Shape colours (name -> nominal sRGB); rendering jitters each channel slightly."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "heart", "cross")
PLURALS: dict[str, str] = {s: ("crosses" if s == "cross" else s + "s") for s in SHAPES}
SIZES: tuple[str, ...] = ("small", "large")
COUNTS: tuple[int, ...] = (1, 2, 3)
COUNT_WORDS: dict[int, str] = {1: "a", 2: "two", 3: "three"}
BACKGROUNDS: dict[str, RGB] = {
    "white": (246, 246, 244),
    "black": (22, 22, 24),
    "gray": (128, 128, 128),
    "beige": (222, 204, 168),
}
"""Background colours (name -> nominal sRGB)."""

HELDOUT_COMBOS: frozenset[tuple[str, str]] = frozenset(
    {
        ("yellow", "heart"),
        ("blue", "triangle"),
        ("green", "star"),
        ("purple", "square"),
        ("orange", "cross"),
        ("pink", "circle"),
    }
)
"""(colour, shape) pairs never sampled with ``heldout="exclude"`` (the training split).

Each colour and each shape is in exactly one pair, so training still shows every colour with
five of the six shapes and every shape with seven of the eight colours.
"""

# Radius ranges as fractions of the image side (the radius bounds the shape's outline).
_RADIUS: dict[str, tuple[float, float]] = {"small": (0.095, 0.12), "large": (0.175, 0.215)}
_MAX_ROTATION: dict[str, float] = {"star": 36.0, "circle": 0.0}  # others: +-15 degrees

Heldout = Literal["exclude", "only", "include"]


@dataclass(frozen=True)
class Description:
    """The semantic content of a caption: each attribute, or ``None`` where it is left out."""

    count: int | None = None
    size: str | None = None
    colour: str | None = None
    kind: str | None = None
    background: str | None = None

    def matches(self, other: Description) -> bool:
        """True when every attribute this description states equals ``other``'s."""
        return all(
            getattr(self, f.name) is None or getattr(self, f.name) == getattr(other, f.name)
            for f in fields(self)
        )

    @property
    def is_complete(self) -> bool:
        """True when no attribute is left out."""
        return all(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True)
class Shape:
    """One shape: centre ``(x, y)`` and ``radius`` are fractions of the image side."""

    kind: str
    colour: str
    size: str
    x: float
    y: float
    radius: float
    rotation: float  # degrees, counter-clockwise
    rgb: RGB  # the jittered colour actually painted


@dataclass(frozen=True)
class Scene:
    """A background and one or more shapes of the same kind, colour and size."""

    shapes: tuple[Shape, ...]
    background: str
    background_rgb: RGB  # jittered background colour
    gradient: tuple[float, float]  # (angle in radians, strength in 0-255 units)

    @property
    def description(self) -> Description:
        """The complete description (all attributes) of the scene."""
        s = self.shapes[0]
        return Description(len(self.shapes), s.size, s.colour, s.kind, self.background)


def all_descriptions(heldout: Heldout = "include") -> list[Description]:
    """Every complete description of the world, in a fixed order, filtered by ``heldout``."""
    out = []
    for count, size, colour, kind, bg in product(COUNTS, SIZES, COLOURS, SHAPES, BACKGROUNDS):
        if _keep((colour, kind), heldout):
            out.append(Description(count, size, colour, kind, bg))
    return out


def _keep(combo: tuple[str | None, str | None], heldout: Heldout) -> bool:
    if heldout == "include":
        return True
    if heldout not in ("exclude", "only"):
        raise ValueError(f"heldout must be 'exclude', 'only' or 'include', not {heldout!r}")
    return (combo in HELDOUT_COMBOS) == (heldout == "only")


def sample_description(rng: random.Random, heldout: Heldout = "exclude") -> Description:
    """Draw a complete description uniformly among those allowed by ``heldout``."""
    while True:
        colour, kind = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        if _keep((colour, kind), heldout):
            break
    return Description(
        rng.choice(COUNTS), rng.choice(SIZES), colour, kind, rng.choice(list(BACKGROUNDS))
    )


def place(
    rng: random.Random, count: int, lo: float, hi: float, *, margin: float, shrink: float = 1.0
) -> list[tuple[float, float, float]] | None:
    """`count` non-overlapping circles (x, y, radius) in the unit square, radii drawn from
    [lo, hi], `margin` from the edges; each failed layout shrinks `hi` by `shrink` (1: not).
    None if 1,000 layouts fail."""
    for _attempt in range(1000):
        placed: list[tuple[float, float, float]] = []
        for _ in range(count):
            r = rng.uniform(lo, hi)
            for _try in range(50):
                x, y = (
                    rng.uniform(r + margin, 1 - margin - r),
                    rng.uniform(r + margin, 1 - margin - r),
                )
                if all(math.hypot(x - px, y - py) > r + pr + 0.03 for px, py, pr in placed):
                    placed.append((x, y, r))
                    break
            else:
                break
        if len(placed) == count:
            return placed
        hi = max(lo, hi * shrink)
    return None


def _jitter(rgb: RGB, rng: random.Random, amount: int) -> RGB:
    r, g, b = (min(255, max(0, c + rng.randint(-amount, amount))) for c in rgb)
    return (r, g, b)


def sample_scene(
    rng: random.Random,
    description: Description | None = None,
    heldout: Heldout = "exclude",
) -> Scene:
    """Draw a scene: its attributes from ``description`` (sampled if ``None``; missing
    attributes are sampled too), and a random non-overlapping layout, rotations and jitter."""
    fixed = description is not None and None not in (description.colour, description.kind)
    for _ in range(1000):
        full = sample_description(rng, "include")
        if description is not None:
            full = Description(
                *(getattr(description, f.name) or getattr(full, f.name) for f in fields(full))
            )
        if fixed or _keep((full.colour, full.kind), heldout):
            break
    else:
        raise ValueError(f"no scene matches {description} with heldout={heldout!r}")
    lo, hi = _RADIUS[full.size]  # type: ignore[index]
    assert full.kind is not None and full.colour is not None and full.count is not None
    max_rot = _MAX_ROTATION.get(full.kind, 15.0)
    placed = place(rng, full.count, lo, hi, margin=0.02)
    if placed is None:  # pragma: no cover - layouts of at most three shapes always fit
        raise RuntimeError(f"could not place {full}")
    rotations = [rng.uniform(-max_rot, max_rot) for _ in placed]
    colours = [_jitter(COLOURS[full.colour], rng, 14) for _ in placed]
    shapes = tuple(
        Shape(full.kind, full.colour, full.size, x, y, r, rot, rgb)
        for (x, y, r), rot, rgb in zip(placed, rotations, colours, strict=True)
    )
    bg = full.background
    assert bg is not None
    background_rgb = _jitter(BACKGROUNDS[bg], rng, 8)
    gradient = (rng.uniform(0, 2 * math.pi), rng.uniform(0, 24))
    return Scene(shapes, bg, background_rgb, gradient)


def _outline(kind: str) -> list[tuple[float, float]]:
    """The shape's polygon in unit coordinates (radius 1, y pointing down)."""
    if kind == "square":
        return [(-0.72, -0.72), (0.72, -0.72), (0.72, 0.72), (-0.72, 0.72)]
    if kind == "triangle":  # equilateral, apex up, centred on its bounding box, enlarged a
        r = 1.15  # little: it covers much less of its circle than the other shapes do
        return [
            (r * math.sin(a), r * (0.25 - math.cos(a)))
            for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)
        ]
    if kind == "star":
        return [
            (
                (1.0 if i % 2 == 0 else 0.42) * math.sin(i * math.pi / 5),
                -(1.0 if i % 2 == 0 else 0.42) * math.cos(i * math.pi / 5),
            )
            for i in range(10)
        ]
    if kind == "cross":
        a, b = 0.3, 0.92
        return [
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
            (-a, -b),
        ]
    if kind == "heart":
        ts = [2 * math.pi * i / 48 for i in range(48)]
        return [
            (
                math.sin(t) ** 3 * 0.95,
                -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
                / 17
                * 0.95
                - 0.05,
            )
            for t in ts
        ]
    raise ValueError(f"unknown shape kind {kind!r}")


def render(scene: Scene, size: int = 64, supersample: int = 4) -> Image.Image:
    """Render ``scene`` as an RGB image of ``size`` x ``size`` pixels.

    Shapes are drawn on a mask at ``supersample`` times the resolution and box-filtered down,
    which antialiases their edges; the background gradient is computed at full resolution.
    """
    angle, strength = scene.gradient
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    field = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]
    bg = np.asarray(scene.background_rgb, np.float32)[None, None, :] + strength * field[..., None]
    image = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    big = size * supersample
    for shape in scene.shapes:
        mask = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(mask)
        cx, cy, r = shape.x * big, shape.y * big, shape.radius * big
        if shape.kind == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        else:
            rot = math.radians(shape.rotation)
            c, s = math.cos(rot), math.sin(rot)
            draw.polygon(
                [
                    (cx + r * (c * u + s * v), cy + r * (-s * u + c * v))
                    for u, v in _outline(shape.kind)
                ],
                fill=255,
            )
        small = mask.reduce(supersample) if supersample > 1 else mask
        image.paste(shape.rgb, (0, 0, size, size), small)
    return image


def caption(item: Scene | Description) -> str:
    """The caption of a scene (complete) or of a description (naming only what it states).

    >>> caption(Description(2, "small", "red", "circle", "white"))
    'two small red circles on a white background'
    >>> caption(Description(1, None, "orange", "star"))
    'an orange star'
    >>> caption(Description(None, None, "red", "circle"))
    'red circles'
    """
    d = item.description if isinstance(item, Scene) else item
    words = [] if d.count is None else [COUNT_WORDS[d.count]]  # no count: a bare plural
    words += [w for w in (d.size, d.colour) if w is not None]
    if d.count == 1:
        words.append(d.kind or "shape")
    else:
        words.append("shapes" if d.kind is None else PLURALS[d.kind])
    if words[0] == "a" and words[1][0] in "aeiou":
        words[0] = "an"
    if d.background is not None:
        words += ["on", "a", d.background, "background"]
    return " ".join(words)


_WORD_TO_COUNT = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}
_NOUNS = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}


def parse_caption(text: str) -> Description:
    """Parse a caption (or a :func:`write_collection` file name) back into a Description.

    Words outside the world's vocabulary are ignored; a background is recognised only in the
    "on a <colour> background" form, so "a blue square on a white background" parses right.
    """
    words = re.findall(r"[a-z]+", text.lower())
    background = None
    for i in range(len(words) - 1):
        if words[i] in BACKGROUNDS and words[i + 1] == "background":
            background = words[i]
            words = words[: max(0, i - 2)] + words[i + 2 :]  # drop "on a <bg> background"
            break
    found: dict[str, object] = {"background": background}
    for w in words:
        if w in _WORD_TO_COUNT and "count" not in found:
            found["count"] = _WORD_TO_COUNT[w]
        elif w in SIZES:
            found.setdefault("size", w)
        elif w in COLOURS:
            found.setdefault("colour", w)
        elif w in _NOUNS:
            found.setdefault("kind", _NOUNS[w])
            if "count" not in found and w != _NOUNS[w]:
                found["count"] = None  # a bare plural ("circles") states no count
    return Description(**found)  # type: ignore[arg-type]


def write_collection(
    folder: str | Path,
    n: int,
    seed: int = 0,
    *,
    size: int = 256,
    heldout: Heldout = "include",
    suffix: str = ".png",
    descriptions: Sequence[Description] | None = None,
) -> list[Path]:
    """Write ``n`` rendered scenes to ``folder`` and return their paths, in order.

    File names are ``<index>-<caption with dashes>`` (e.g.
    ``0007-two-small-red-circles-on-a-white-background.png``); :func:`parse_caption` reads
    them back. ``descriptions``, if given, are cycled through to fix (some of) each scene's
    attributes; the rest is sampled from ``seed``. ``suffix`` picks the format (.png, .jpg).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        want = descriptions[i % len(descriptions)] if descriptions else None
        scene = sample_scene(rng, want, heldout)
        path = folder / f"{i:04d}-{caption(scene).replace(' ', '-')}{suffix}"
        render(scene, size, supersample=2).save(path, quality=92)
        paths.append(path)
    return paths
