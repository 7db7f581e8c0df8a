"""Perceptual hashes: 64-bit fingerprints that survive resizing, recompression and small edits.

Each picture gets two hashes, each also of its mirror image (so a flipped copy matches):

- **pHash**: the sign of the 8x8 lowest DCT frequencies of a 32x32 greyscale version against
  their median (robust to scaling, compression, brightness).
- **dHash**: the sign of horizontal gradients of a 9x8 greyscale version (robust to the same,
  and an independent second opinion: two hashes agreeing keeps false matches rare).

They are computed at index time from the picture already decoded for the model (no second
decode) and stored as signed 64-bit integers (SQLite's INTEGER). `hamming` counts differing
bits. Only numpy and PIL: no heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

HASH_BITS = 64
_DCT_SIZE = 32
_LOW = 8


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float64)


_DCT = _dct_matrix(_DCT_SIZE)[:_LOW]  # only the lowest 8 frequencies are ever used
_MIRROR_SIGNS = np.where(np.arange(_LOW) % 2 == 1, -1.0, 1.0)[None, :]  # odd column freqs flip
_WEIGHTS = (1 << np.arange(HASH_BITS - 1, -1, -1, dtype=np.uint64)).astype(np.uint64)


@dataclass(frozen=True)
class PerceptualHashes:
    """pHash and dHash of a picture and of its mirror image, as signed 64-bit ints."""

    phash: int
    dhash: int
    phash_mirror: int
    dhash_mirror: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.phash, self.dhash, self.phash_mirror, self.dhash_mirror)


def _to_int(bits: np.ndarray) -> int:
    """64 booleans (most significant first) -> a signed 64-bit int."""
    value = int((bits.astype(np.uint64).ravel() * _WEIGHTS).sum(dtype=np.uint64))
    return value - (1 << 64) if value >= (1 << 63) else value


def _grey(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    grey = img if img.mode == "L" else img.convert("L")
    small = grey.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(small, dtype=np.float64)


def _greyscale(img: Image.Image) -> Image.Image:
    return img if img.mode == "L" else img.convert("L")


def _phash_bits(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = _DCT @ pixels @ _DCT.T  # (8, 8): rows vertical, columns horizontal frequency
    mirror = low * _MIRROR_SIGNS
    out = []
    for coeffs in (low, mirror):
        flat = coeffs.ravel()
        median = np.median(flat[1:])  # the DC term (overall brightness) is left out
        out.append(flat > median)
    return out[0], out[1]


def _dhash_bits(pixels: np.ndarray) -> np.ndarray:
    return (pixels[:, 1:] > pixels[:, :-1]).ravel()


def compute(img: Image.Image) -> PerceptualHashes:
    """The perceptual hashes of a decoded picture (any size, any mode)."""
    grey = _greyscale(img)  # once for both hashes (0.2 ms of a 500x375 photo's 0.8)
    p, pm = _phash_bits(_grey(grey, (_DCT_SIZE, _DCT_SIZE)))
    d9 = _grey(grey, (9, 8))
    d, dm = _dhash_bits(d9), _dhash_bits(d9[:, ::-1])
    return PerceptualHashes(_to_int(p), _to_int(d), _to_int(pm), _to_int(dm))


def hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit hashes."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def to_bytes(values: np.ndarray) -> np.ndarray:
    """Signed int64 hashes (N,) -> uint8 codes (N, 8), big-endian, for FAISS binary indexes."""
    return np.ascontiguousarray(np.asarray(values, dtype=">i8")).view(np.uint8).reshape(-1, 8)
