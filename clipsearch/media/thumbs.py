"""Thumbnails: small JPEGs of library images, made once and cached in the library folder.

    LIB/thumbs/<size>/<hash[:2]>/<content hash>.jpg

They are keyed by the image's content hash, so a moved or renamed photo keeps its thumbnail,
copies share one, and an edited photo (new content, new hash) gets a new one. Pictures are
decoded with `images.open_image` (every format clipsearch indexes, HEIC included, EXIF
orientation applied) and written atomically (a temp file, then a rename), so a crash or two
requests racing for the same thumbnail never leave a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from PIL import Image

from clipsearch.media.images import open_image

THUMB_DIR = "thumbs"
SIZES = (160, 320, 640, 1280)  # longest side in pixels; anything else is refused
DEFAULT_SIZE = 320
_QUALITY = 85


def thumb_path(library: Path, content_hash: str, size: int) -> Path:
    """Where the thumbnail of the image with this content hash lives (made or not)."""
    if size not in SIZES:
        raise ValueError(f"thumbnail size must be one of {', '.join(map(str, SIZES))}")
    if not content_hash or not content_hash.isalnum():
        raise ValueError(f"bad content hash {content_hash!r}")
    return library / THUMB_DIR / str(size) / content_hash[:2] / f"{content_hash}.jpg"


def thumbnail(library: Path, image_path: str, content_hash: str, size: int = DEFAULT_SIZE) -> Path:
    """The cached thumbnail of `image_path`, made on first use.

    Raises `UnreadableImage` when the picture cannot be decoded (nothing is cached then).
    """
    out = thumb_path(library, content_hash, size)
    if out.is_file():
        return out
    img, _ = open_image(image_path, draft_size=size)
    img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    _write_atomically(img, out)
    return out


def _write_atomically(img: Image.Image, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jpg", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, "JPEG", quality=_QUALITY, optimize=True, progressive=True)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
