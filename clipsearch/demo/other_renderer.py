"""Other ways to draw the shapes world: the same scenes and captions, other renderers.

:func:`clipsearch.demo.shapes.render` is the project's own renderer (style ``"house"``). A
model trained on it alone learns that renderer, not shapes: it confuses shapes drawn by any
other program. This module draws the same world differently:

* ``"pil"`` — Pillow's ``ImageDraw`` straight onto the picture (polygons and ellipses),
  filled, outlined or filled with a border, at a random line width, aliased or supersampled
  by 2-3x, with its own shape geometry (star depth, cross arm width, triangle height, rounded
  squares... vary from picture to picture);
* ``"sdf"`` — a numpy rasteriser of signed distance functions (the shapes' exact distance
  fields, after Inigo Quilez), with analytic or hard edges, outlines as ``|d| < w``, softened
  edges and shading inside the shape;

both with sizes and positions wider than the house world's (still "small" < "large"), any
rotation, stronger colour jitter, textured backgrounds (gradients, vignettes, noise, paper
grain), blur and JPEG compression at a random picture size, which the model's preprocessing
then shrinks as it would a user's file. :func:`sample_look` draws all of that; :class:`Look`
records it, so a picture is a pure function of its scene and look.

* ``"plain"`` — **never used in training**: "another program", one filled shape drawn from
  its bounding box with ``ImageDraw`` primitives (``ellipse``, ``rectangle``, a bounding-box
  triangle, a two-circle heart, a two-bar cross), exact palette colours, 224 px, pure white
  background, no rotation, no antialiasing, random size and position. It is the held-out
  *rendering style* of the evaluation (:func:`render_plain`).

Captions do not change: a picture of any style is captioned by its scene, as in
"a small red circle on a white background". Pure PIL + numpy, deterministic given the
``random.Random`` passed in (never global random state).
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from clipsearch.demo import shapes

RENDERERS: tuple[str, ...] = ("pil", "sdf")
"""The renderers of this module used in training (besides the house renderer)."""
HELDOUT_STYLE = "plain"
"""The rendering style kept for evaluation only."""
STYLES: tuple[str, ...] = ("house", *RENDERERS, HELDOUT_STYLE)

# Radii (fractions of the side) of the wider world: a gap between the sizes keeps "small"
# and "large" apart; large shapes are capped by how many must fit side by side.
WIDE_RADIUS: dict[str, tuple[float, float]] = {"small": (0.07, 0.135), "large": (0.16, 0.47)}
_LARGE_CAP: dict[int, float] = {1: 0.47, 2: 0.26, 3: 0.2}
PICTURE_SIZES: tuple[int, ...] = (48, 64, 64, 96, 128, 160, 224)
TEXTURES: tuple[str, ...] = ("flat", "gradient", "vignette", "noise", "paper", "stripes")
PLAIN_SIZE = 224


@dataclass(frozen=True)
class Look:
    """How a scene is drawn, beyond what it shows: renderer, geometry, strokes and finish."""

    renderer: str  # "pil" or "sdf"
    size: int  # pixels per side of the picture
    mode: str  # "filled", "outline" or "bordered" (filled, with a darker or lighter edge)
    line: float  # stroke width as a fraction of the side
    supersample: int  # 1: aliased (hard pixel edges)
    star_inner: float  # inner / outer radius of the star
    cross_arm: float  # half width of the cross's arms / its radius
    square_half: float  # half side of the square / its radius
    square_round: float  # corner radius / half side
    triangle_height: float  # triangle height / radius (equilateral: 1.5 * 1.15)
    heart_squash: float  # heart height / width factor
    texture: str  # one of TEXTURES
    texture_strength: float  # 0-255 units
    shade: float  # brightness ramp across each shape, 0-255 units
    blur: float  # Gaussian blur radius in pixels (0: none)
    jpeg: int  # JPEG quality (0: not compressed)
    seed: int  # for the texture's noise


def sample_look(rng: random.Random, renderer: str) -> Look:
    """A random :class:`Look` for ``renderer`` ("pil" or "sdf")."""
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {RENDERERS}, not {renderer!r}")
    mode = rng.choices(("filled", "outline", "bordered"), weights=(0.6, 0.25, 0.15))[0]
    return Look(
        renderer=renderer,
        size=rng.choice(PICTURE_SIZES),
        mode=mode,
        line=rng.uniform(0.018, 0.05),
        supersample=rng.choice((1, 1, 2, 3)) if renderer == "pil" else rng.choice((1, 2)),
        star_inner=rng.uniform(0.36, 0.55),
        cross_arm=rng.uniform(0.2, 0.38),
        square_half=rng.uniform(0.64, 0.78),
        square_round=rng.choice((0.0, 0.0, rng.uniform(0.05, 0.35))),
        triangle_height=rng.uniform(1.45, 1.95),
        heart_squash=rng.uniform(0.88, 1.12),
        texture=rng.choice(TEXTURES),
        texture_strength=rng.uniform(3.0, 18.0),
        shade=rng.choice((0.0, rng.uniform(-30.0, 30.0))),
        blur=rng.choice((0.0, 0.0, 0.0, rng.uniform(0.3, 1.2))),
        jpeg=rng.choice((0, 0, rng.randint(20, 92))),
        seed=rng.randrange(2**31),
    )


def sample_wide_scene(
    rng: random.Random,
    description: shapes.Description | None = None,
    heldout: shapes.Heldout = "exclude",
) -> shapes.Scene:
    """Like :func:`shapes.sample_scene`, with wider sizes and positions, any rotation and
    stronger colour jitter (the same attributes, so the same caption)."""
    base = shapes.sample_scene(rng, description, heldout)
    full = base.description
    assert full.count is not None and full.size is not None
    lo, hi = WIDE_RADIUS[full.size]
    if full.size == "large":
        hi = _LARGE_CAP[full.count]
    placed = shapes.place(rng, full.count, lo, hi, margin=0.01, shrink=0.97)  # crowded: smaller
    if placed is None:  # pragma: no cover - always fits once shrunk
        raise RuntimeError(f"could not place {full}")
    straight = rng.random() < 0.3  # programs often draw shapes upright
    assert full.colour is not None and full.kind is not None
    rgb = shapes.COLOURS[full.colour]
    drawn = tuple(
        shapes.Shape(
            full.kind,
            full.colour,
            full.size,
            x,
            y,
            r,
            0.0 if straight else rng.uniform(-180.0, 180.0),
            _jitter(rgb, rng, 22),
        )
        for x, y, r in placed
    )
    gradient = (rng.uniform(0, 2 * math.pi), rng.uniform(0, 30))
    return replace(base, shapes=drawn, gradient=gradient)


def _jitter(rgb: shapes.RGB, rng: random.Random, amount: int) -> shapes.RGB:
    r, g, b = (min(255, max(0, c + rng.randint(-amount, amount))) for c in rgb)
    return (r, g, b)


def render_look(scene: shapes.Scene, look: Look) -> Image.Image:
    """Draw ``scene`` as ``look`` says: an RGB picture of ``look.size`` pixels."""
    size = look.size
    background = _background(scene, look)
    if look.renderer == "pil":
        image = _draw_pil(scene, look, background)
    elif look.renderer == "sdf":
        image = _draw_sdf(scene, look, background)
    else:
        raise ValueError(f"unknown renderer {look.renderer!r}")
    if look.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(look.blur * size / 128))
    if look.jpeg:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=look.jpeg)
        buf.seek(0)
        image = Image.open(buf).convert("RGB")
    return image


def sample_picture(
    rng: random.Random,
    description: shapes.Description | None = None,
    style: str = "pil",
    heldout: shapes.Heldout = "exclude",
    size: int | None = None,
) -> tuple[shapes.Description, Image.Image]:
    """A random picture of ``style`` (any of :data:`STYLES`) and its complete description.

    ``size`` fixes the picture's side (default: the style's own; house: 224)."""
    if style == "house":
        scene = shapes.sample_scene(rng, description, heldout)
        return scene.description, shapes.render(scene, size or 224, supersample=2)
    if style == HELDOUT_STYLE:
        d = shapes.sample_scene(rng, description, heldout).description
        assert d.colour is not None and d.kind is not None
        d = replace(d, count=1, background="white")
        return d, render_plain(d.colour, d.kind, rng, size or PLAIN_SIZE)
    scene = sample_wide_scene(rng, description, heldout)
    look = sample_look(rng, style)
    if size is not None:
        look = replace(look, size=size)
    return scene.description, render_look(scene, look)


# --- backgrounds -------------------------------------------------------------------------


def _background(scene: shapes.Scene, look: Look) -> np.ndarray:
    """The (size, size, 3) float32 background: its colour, gradient and texture."""
    n = look.size
    angle, strength = scene.gradient
    ramp = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    field = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]
    bg = np.asarray(scene.background_rgb, np.float32)[None, None, :] + (strength * field[..., None])
    s, kind = look.texture_strength, look.texture
    noise = np.random.default_rng(look.seed)
    if kind == "gradient":
        bg = bg + s * field[..., None]
    elif kind == "vignette":
        yy, xx = np.meshgrid(ramp, ramp, indexing="ij")
        bg = bg - (s * 1.5) * ((xx**2 + yy**2) / 2)[..., None]
    elif kind == "noise":
        bg = bg + noise.normal(0, s / 3, (n, n, 1)).astype(np.float32)
    elif kind == "paper":
        coarse = noise.normal(0, s / 2, (6, 6)).astype(np.float32)
        grain = np.asarray(Image.fromarray(coarse, "F").resize((n, n), Image.Resampling.BICUBIC))
        bg = bg + grain[..., None]
    elif kind == "stripes":
        period = noise.uniform(6, 20) * n / 128
        bg = bg + (s / 3) * np.sign(np.sin(2 * np.pi * field / 2 * n / period))[..., None]
    return np.clip(bg, 0, 255)


def _finish(background: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")


def _edge_rgb(rgb: shapes.RGB, background: shapes.RGB) -> tuple[int, int, int]:
    """A border colour for ``bordered`` shapes: darker, or lighter on a dark background."""
    dark = sum(background) < 3 * 90
    r, g, b = (int(c + (255 - c) * 0.45) if dark else int(c * 0.55) for c in rgb)
    return (r, g, b)


# --- the "pil" renderer ------------------------------------------------------------------


def _polygon(kind: str, look: Look) -> list[tuple[float, float]]:
    """The shape's outline in unit coordinates (radius 1, y down, apex up), per ``look``."""
    if kind == "square":
        h, rc = look.square_half, look.square_half * look.square_round
        if rc <= 0:
            return [(-h, -h), (h, -h), (h, h), (-h, h)]
        pts = []
        for cx, cy, a0 in ((h - rc, -h + rc, -90), (h - rc, h - rc, 0), (-h + rc, h - rc, 90)):
            pts += _arc(cx, cy, rc, a0)
        return pts + _arc(-h + rc, -h + rc, rc, 180)
    if kind == "triangle":
        height = look.triangle_height
        half_base = height / math.sqrt(3) * 1.05
        top = -height * 0.55
        return [(0.0, top), (half_base, top + height), (-half_base, top + height)]
    if kind == "star":
        return [
            (
                (1.0 if i % 2 == 0 else look.star_inner) * math.sin(i * math.pi / 5),
                -(1.0 if i % 2 == 0 else look.star_inner) * math.cos(i * math.pi / 5) + 0.08,
            )
            for i in range(10)
        ]
    if kind == "cross":
        a, b = look.cross_arm, 0.9
        corner = [(a, -b), (a, -a), (b, -a)]  # one arm's corner; the others by quarter turns
        return [(x * c - y * s, x * s + y * c) for c, s in _QUARTERS for x, y in corner]
    if kind == "heart":
        ts = [2 * math.pi * i / 40 for i in range(40)]
        sq = look.heart_squash
        return [
            (
                math.sin(t) ** 3 * 0.95,
                -sq
                * (13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
                / 17
                * 0.95,
            )
            for t in ts
        ]
    raise ValueError(f"no polygon for {kind!r}")


_QUARTERS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # (cos, sin) of 0, 90, 180, 270 degrees


def _arc(cx: float, cy: float, r: float, start_deg: float) -> list[tuple[float, float]]:
    angles = [math.radians(start_deg + a) for a in range(0, 91, 15)]
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


def _draw_pil(scene: shapes.Scene, look: Look, background: np.ndarray) -> Image.Image:
    ss = look.supersample
    big = look.size * ss
    image = _finish(background)
    canvas = image.resize((big, big), Image.Resampling.NEAREST) if ss > 1 else image
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(look.line * big))
    for shape in scene.shapes:
        cx, cy, r = shape.x * big, shape.y * big, shape.radius * big
        fill = shape.rgb if look.mode != "outline" else None
        if look.mode == "filled":
            edge = None
        elif look.mode == "outline":
            edge = shape.rgb
        else:
            edge = _edge_rgb(shape.rgb, scene.background_rgb)
        w = width if edge is not None else 0
        if shape.kind == "circle":
            box = (cx - r, cy - r, cx + r, cy + r)
            draw.ellipse(box, fill=fill, outline=edge, width=w)
            continue
        rot = math.radians(shape.rotation)
        c, s = math.cos(rot), math.sin(rot)
        points = [
            (cx + r * (c * u + s * v), cy + r * (-s * u + c * v))
            for u, v in _polygon(shape.kind, look)
        ]
        if look.shade and fill is not None:
            fill = _shifted(shape.rgb, look.shade * (0.5 if shape.y < 0.5 else -0.5))
        draw.polygon(points, fill=fill, outline=edge, width=w)
    if ss > 1:
        canvas = canvas.resize((look.size, look.size), Image.Resampling.BOX)
    return canvas


def _shifted(rgb: shapes.RGB, amount: float) -> tuple[int, int, int]:
    r, g, b = (int(min(255, max(0, c + amount))) for c in rgb)
    return (r, g, b)


# --- the "sdf" renderer ------------------------------------------------------------------


def _length(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(x * x + y * y)


def _sd_box(x: np.ndarray, y: np.ndarray, bx: float, by: float, rc: float = 0.0) -> np.ndarray:
    qx, qy = np.abs(x) - bx + rc, np.abs(y) - by + rc
    outside = _length(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - rc


def _sd_triangle(x: np.ndarray, y: np.ndarray, half_base: float, height: float) -> np.ndarray:
    """Isosceles triangle, apex at (0, 0), base at y = height (y down): Quilez's formula."""
    qx, qy = half_base, height
    px = np.abs(x)
    t = np.clip((px * qx + y * qy) / (qx * qx + qy * qy), 0, 1)
    ax, ay = px - qx * t, y - qy * t
    u = np.clip(px / qx, 0, 1)
    bx, by = px - qx * u, y - qy
    k = np.sign(qy)
    d = np.minimum(ax * ax + ay * ay, bx * bx + by * by)
    s = np.maximum(k * (px * qy - y * qx), k * (y - qy))
    return np.sqrt(d) * np.sign(s)


def _sd_star(x: np.ndarray, y: np.ndarray, inner: float) -> np.ndarray:
    """Five-pointed star of outer radius 1, a point up (y down): Quilez's sdStar5."""
    k1x, k1y = 0.809016994375, -0.587785252292
    px, py = np.abs(x), -y
    for kx, ky in ((k1x, k1y), (-k1x, k1y)):  # fold into one point's wedge
        dot = np.maximum(kx * px + ky * py, 0)
        px, py = px - 2 * dot * kx, py - 2 * dot * ky
    px, py = np.abs(px), py - 1.0
    bax, bay = inner * -k1y, inner * k1x - 1.0
    h = np.clip((px * bax + py * bay) / (bax * bax + bay * bay), 0, 1)
    return _length(px - bax * h, py - bay * h) * np.sign(py * bax - px * bay)


def _sd_heart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Quilez's heart, y up: its point at (0, 0), its lobes up to y = 1.1, x within +-0.6."""
    px, py = np.abs(x), y
    d_lobe = _length(px - 0.25, py - 0.75) - math.sqrt(2) / 4
    m = 0.5 * np.maximum(px + py, 0)
    d_low = np.sqrt(np.minimum(px**2 + (py - 1) ** 2, (px - m) ** 2 + (py - m) ** 2)) * np.sign(
        px - py
    )
    return np.where(py + px > 1, d_lobe, d_low)


def _sdf(kind: str, x: np.ndarray, y: np.ndarray, look: Look) -> np.ndarray:
    """Signed distance (unit radius) of ``kind`` at points (x, y), negative inside."""
    if kind == "circle":
        return _length(x, y) - 1.0
    if kind == "square":
        h = look.square_half
        return _sd_box(x, y, h, h, h * look.square_round)
    if kind == "triangle":
        height = look.triangle_height
        return _sd_triangle(x, y + height * 0.55, height / math.sqrt(3) * 1.05, height)
    if kind == "star":
        return _sd_star(x, y - 0.08, look.star_inner)
    if kind == "cross":
        a, b = look.cross_arm, 0.9
        return np.minimum(_sd_box(x, y, a, b), _sd_box(x, y, b, a))
    if kind == "heart":
        k, ky = 1.58, 1.58 * look.heart_squash  # 1.2 x 1.1 units -> about 1.9 x 1.75
        return _sd_heart(x / k, 0.55 - y / ky) * min(k, ky)
    raise ValueError(f"unknown shape kind {kind!r}")


def _draw_sdf(scene: shapes.Scene, look: Look, background: np.ndarray) -> Image.Image:
    n = look.size
    image = background.copy()
    pix = (np.arange(n, dtype=np.float32) + 0.5) / n
    for shape in scene.shapes:
        # only the shape's bounding square needs computing
        r = shape.radius
        x0, x1 = max(0, int((shape.x - r * 1.2) * n)), min(n, int((shape.x + r * 1.2) * n) + 2)
        y0, y1 = max(0, int((shape.y - r * 1.2) * n)), min(n, int((shape.y + r * 1.2) * n) + 2)
        dx, dy = (pix[None, x0:x1] - shape.x) / r, (pix[y0:y1, None] - shape.y) / r
        rot = math.radians(shape.rotation)
        c, s = math.cos(rot), math.sin(rot)
        u, v = c * dx - s * dy, s * dx + c * dy  # into the shape's own frame
        d = _sdf(shape.kind, u, v, look) * (r * n)  # in pixels
        w = look.line * n
        if look.mode == "outline":
            d = np.abs(d + w / 2) - w / 2
        alpha = _coverage(d, look.supersample)
        colour = np.asarray(shape.rgb, np.float32)
        fill = np.broadcast_to(colour, (*d.shape, 3))
        if look.shade:
            fill = fill + (look.shade * np.clip(v, -1, 1))[..., None] / 2
        if look.mode == "bordered":
            edge = np.asarray(_edge_rgb(shape.rgb, scene.background_rgb), np.float32)
            rim = _coverage(-(d + w), look.supersample)[..., None]
            fill = fill * (1 - rim) + edge * rim
        patch = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = patch * (1 - alpha[..., None]) + fill * alpha[..., None]
    return _finish(image)


def _coverage(d: np.ndarray, supersample: int) -> np.ndarray:
    """Coverage of pixels by the region d < 0: hard (aliased) or a one-pixel ramp."""
    if supersample == 1:
        return (d < 0).astype(np.float32)
    return np.clip(0.5 - d, 0, 1).astype(np.float32)


# --- the held-out style: "another program" -----------------------------------------------


def render_plain(colour: str, kind: str, rng: random.Random, size: int = PLAIN_SIZE) -> Image.Image:
    """One filled shape as another program would draw it (the held-out style).

    ``ImageDraw`` primitives from a bounding box of random side (15-75% of the picture) and
    position, the palette's exact colour (:data:`shapes.COLOURS`), pure white, no rotation,
    no antialiasing: ``ellipse``; ``rectangle``; a triangle on the box's base with its apex
    at the top middle; a star with inner radius 0.5; a heart of two circles on a triangle;
    a cross of two bars a third of the box wide.
    """
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    side = rng.uniform(0.15, 0.75) * size
    margin = 0.03 * size
    x0 = rng.uniform(margin, size - margin - side)
    y0 = rng.uniform(margin, size - margin - side)
    x1, y1 = x0 + side, y0 + side
    xm, ym = x0 + side / 2, y0 + side / 2
    fill = shapes.COLOURS[colour]
    if kind == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif kind == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif kind == "triangle":
        draw.polygon([(x0, y1), (x1, y1), (xm, y0)], fill=fill)
    elif kind == "star":
        points = []
        for i in range(10):
            rad = side / 2 * (1.0 if i % 2 == 0 else 0.5)
            a = math.pi * i / 5
            points.append((xm + rad * math.sin(a), ym - rad * math.cos(a)))
        draw.polygon(points, fill=fill)
    elif kind == "heart":
        q = side / 4
        draw.ellipse((x0, y0, xm, y0 + 2 * q), fill=fill)
        draw.ellipse((xm, y0, x1, y0 + 2 * q), fill=fill)
        draw.polygon(
            [(x0 + side * 0.02, y0 + q * 1.3), (x1 - side * 0.02, y0 + q * 1.3), (xm, y1)],
            fill=fill,
        )
    elif kind == "cross":
        t = side / 6
        draw.rectangle((xm - t, y0, xm + t, y1), fill=fill)
        draw.rectangle((x0, ym - t, x1, ym + t), fill=fill)
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    return image
