"""Thumbnails: small JPEGs of library images, made once and cached in the library folder.

    LIB/thumbs/<size>/<hash[:2]>/<content hash>.jpg

They are keyed by the image's content hash, so a moved or renamed photo keeps its thumbnail,
copies share one, and an edited photo (new content, new hash) gets a new one. Pictures are
decoded with `images.open_image` (every format clipsearch indexes, HEIC included, EXIF
orientation applied, JPEGs at a reduced scale) and written atomically (a temp file, then a
rename), so a crash or two requests racing for the same thumbnail never leave a half-written
file behind.

A cached file that is not a whole JPEG (garbled by a disk, or cut short by a power cut before
the data reached it) is made again. When the cache cannot be written (a full disk, a read-only
library folder) the thumbnail is still made and handed back from memory; nothing is cached.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from clipsearch.media.images import open_image

log = logging.getLogger(__name__)

THUMB_DIR = "thumbs"
SIZES = (160, 320, 640, 1280)  # longest side in pixels; anything else is refused
DEFAULT_SIZE = 320
_QUALITY = 85
_cache_failing = False  # only the first of a run of failed writes is a warning


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail's JPEG bytes, and the cached file holding them (None: not cached)."""

    data: bytes
    path: Path | None


def thumb_path(library: Path, content_hash: str, size: int) -> Path:
    """Where the thumbnail of the image with this content hash lives (made or not)."""
    if size not in SIZES:
        raise ValueError(f"thumbnail size must be one of {', '.join(map(str, SIZES))}")
    if not content_hash or not content_hash.isalnum():
        raise ValueError(f"bad content hash {content_hash!r}")
    return library / THUMB_DIR / str(size) / content_hash[:2] / f"{content_hash}.jpg"


def thumbnail(
    library: Path, image_path: str, content_hash: str, size: int = DEFAULT_SIZE
) -> Thumbnail:
    """The thumbnail of `image_path`: read from the cache, or made (and cached if possible).

    Raises `UnreadableImage` when the picture cannot be decoded (nothing is cached then).
    """
    out = thumb_path(library, content_hash, size)
    cached = _read_cached(out, size)
    if cached is not None:
        return Thumbnail(cached, out)
    img, _ = open_image(image_path, draft_size=size)
    img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=_QUALITY, optimize=True, progressive=True)
    data = buf.getvalue()
    return Thumbnail(data, out) if _cache(data, out) else Thumbnail(data, None)


def _read_cached(out: Path, size: int) -> bytes | None:
    """The cached file's bytes if it is a whole JPEG of this size; a damaged one is removed."""
    try:
        data = out.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read the cached thumbnail %s (%s): making it again", out, exc)
        return None
    if _is_whole_jpeg(data, size):
        return data
    log.warning("the cached thumbnail %s is damaged: making it again", out)
    with contextlib.suppress(OSError):
        out.unlink()
    return None


def _is_whole_jpeg(data: bytes, size: int) -> bool:
    """Starts and ends like a JPEG and its header parses to a picture of at most `size`."""
    if not (data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9")):
        return False
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            return 0 < max(img.size) <= size
    except Exception:
        return False


def _cache(data: bytes, out: Path) -> bool:
    """Write the thumbnail to the cache; False (and a warning) when it cannot be written."""
    global _cache_failing
    try:
        _write_atomically(data, out)
    except OSError as exc:
        if not _cache_failing:
            log.warning(
                "cannot cache thumbnails in %s (%s): serving them from memory until it can",
                out.parents[2],
                exc.strerror or exc,
            )
        _cache_failing = True
        return False
    _cache_failing = False
    return True


def _write_atomically(data: bytes, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".jpg", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
