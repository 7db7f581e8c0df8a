"""Perceptual hashes: copies stay within a few bits, different pictures do not."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageEnhance

from clipsearch.demo import shapes
from clipsearch.dupes.find import DEFAULT_MAX_DISTANCE
from clipsearch.media import phash


def _scene(seed: int, size: int = 256) -> Image.Image:
    rng = random.Random(seed)
    return shapes.render(shapes.sample_scene(rng), size=size)


def _photo_like(seed: int) -> Image.Image:
    """A smooth random picture with structure at several scales (like a photo)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((192, 256, 3))
    for cells in (2, 4, 8, 16):
        noise = rng.random((cells, cells, 3))
        img = Image.fromarray((noise * 255).astype(np.uint8)).resize((256, 192), Image.BICUBIC)
        out += np.asarray(img, dtype=np.float64) / cells
    out = 255 * (out - out.min()) / (out.max() - out.min())
    return Image.fromarray(out.astype(np.uint8))


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _distance(a: phash.PerceptualHashes, b: phash.PerceptualHashes) -> int:
    """Like dedup: pHash + dHash bits, as-is or mirrored, whichever is closer."""
    straight = phash.hamming(a.phash, b.phash) + phash.hamming(a.dhash, b.dhash)
    mirrored = phash.hamming(a.phash, b.phash_mirror) + phash.hamming(a.dhash, b.dhash_mirror)
    return min(straight, mirrored)


def test_copies_stay_close_and_flips_match_through_the_mirror_hash():
    for seed in range(5):
        img = _photo_like(seed)
        h = phash.compute(img)
        w, ht = img.size
        copies = {
            "resized": img.resize((w // 4, ht // 4), Image.LANCZOS),
            "jpeg q30": _jpeg(img, 30),
            "brighter": ImageEnhance.Brightness(img).enhance(1.25),
            "greyscale": img.convert("L"),
            "flipped": img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        }
        for name, copy in copies.items():
            assert _distance(h, phash.compute(copy)) <= 12, (seed, name)
        flipped = phash.compute(copies["flipped"])
        # Without the mirror hashes a flipped copy looks like another picture.
        assert phash.hamming(h.phash, flipped.phash) > 16
        assert phash.hamming(h.phash, flipped.phash_mirror) <= 4


def test_different_pictures_are_far_apart():
    hashes = [phash.compute(_photo_like(seed)) for seed in range(20)]
    closest = min(_distance(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :])
    assert closest > DEFAULT_MAX_DISTANCE + 4  # of 128 bits


def test_hashes_are_signed_64_bit_and_deterministic():
    img = _scene(3)
    first, again = phash.compute(img), phash.compute(img.copy())
    assert first == again
    for value in first.as_tuple():
        assert -(2**63) <= value < 2**63
    codes = phash.to_bytes(np.array([first.phash, -1, 0], dtype=np.int64))
    assert codes.shape == (3, 8)
    assert codes[1].tolist() == [255] * 8 and codes[2].tolist() == [0] * 8


def test_hamming_counts_differing_bits():
    assert phash.hamming(0, 0) == 0
    assert phash.hamming(0, -1) == 64
    assert phash.hamming(0b1011, 0b0001) == 2
