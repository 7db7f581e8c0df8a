"""Image decoding: every supported format to an RGB picture, fast and safely.

- One read per file: the bytes are hashed and decoded from memory.
- JPEGs decode in draft mode straight to a scale just above the model's input size.
- One limit on the pixels actually decoded (`max_decoded_pixels`), checked before decoding:
  a 200 MP phone JPEG decoded at 1/8 scale is fine, a 20000 x 20000 PNG is refused.
- EXIF orientation is applied; the first frame of animations is used; transparency is
  flattened onto white; 16-bit and float images are scaled to 8 bits.
- Camera RAW photos (DNG, CR2, NEF, ARW, RAF...) are recognised by their bytes and decoded
  through `media.raw` (rawpy): the embedded JPEG preview when it is big enough.
- The capture time, camera, lens and GPS position come from EXIF, read before any pixel
  (`ImageInfo.taken_at`, `ImageInfo.facts`).
- Failures raise `UnreadableImage` with a short reason a user can act on.

`prepare` reproduces open_clip's preprocessing (resize + crop) with PIL and numpy, so decode
threads never touch torch; the model normalises the uint8 batch itself.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from clipsearch.errors import UnreadableImage
from clipsearch.media import raw
from clipsearch.media.fs import IMAGE_EXTENSIONS, is_image_name  # noqa: F401 (re-exported)
from clipsearch.media.metadata import PhotoFacts, facts_from_exif

_ROTATING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_DATETIME = 306
_SOFTWARE = 305
_heif_lock = threading.Lock()
_heif_registered = False
_open_lock = threading.Lock()
_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")
# First bytes of JPEG, PNG, GIF, WebP and BMP: a file with a RAW extension that starts so is
# no RAW photo (a JPEG renamed .dng), and Pillow reads it.
_PICTURE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM")


def content_hash(data: bytes) -> str:
    """The content hash used to recognise moved, renamed and copied files."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class PreprocessParams:
    """The model's input geometry and normalisation (from open_clip's preprocess config)."""

    size: tuple[int, int] = (224, 224)  # (height, width)
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"  # shortest | longest | squash
    fill_color: int = 0


@dataclass(frozen=True)
class ImageInfo:
    """Facts about a picture, read while decoding it."""

    width: int  # as displayed, after EXIF orientation
    height: int
    format: str
    taken_at: str | None  # EXIF capture time, ISO 8601 without zone
    facts: PhotoFacts | None = None  # camera, lens, GPS position; None when EXIF says none


def _register_heif() -> None:
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            try:
                from pillow_heif import register_heif_opener

                register_heif_opener()
            except ImportError:  # pragma: no cover - pillow-heif is a dependency
                pass
            _heif_registered = True


def max_decoded_pixels() -> int | None:
    """The most pixels clipsearch decodes for one picture (None: no limit).

    It is Pillow's `Image.MAX_IMAGE_PIXELS` (89,478,485 by default: 256 MiB as 8-bit RGB),
    applied to the size actually decoded rather than to the size in the file's header: a JPEG
    decoded at 1/8 scale counts an eighth of its width and height. Every decode goes through
    `open_image`, so indexing, `watch`, thumbnails and uploads share this one limit. Keeping it
    at Pillow's value means Pillow's own later checks (TIFF tiles) never object to a picture
    this let through.
    """
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else None


def open_image(
    source: str | Path | bytes, *, draft_size: int | None = None, name: str | None = None
) -> tuple[Image.Image, ImageInfo]:
    """Decode `source` (a path or the file's bytes) to an RGB image plus its facts.

    `draft_size` lets JPEGs (and RAW photos' embedded previews) decode at a reduced scale
    whose shorter side stays at least that many pixels. A picture whose decoded size is over
    `max_decoded_pixels` is refused before any pixel is decoded. RAW photos are recognised by
    their bytes; `name` (the file's name, when `source` is its bytes) also sends a RAW
    extension to the RAW decoder. Raises `UnreadableImage` with a short reason.
    """
    label = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        name = name or label
        source = read_file(label)
    if not source:
        raise UnreadableImage(label, "empty file (0 bytes)")
    _register_heif()
    raw_format = raw.raw_format(source)
    try:
        named_raw = name and raw.is_raw_name(name) and not source.startswith(_PICTURE_MAGIC)
        if raw_format or named_raw:
            try:
                return _open_raw(source, label, draft_size)
            except raw.NotRaw:
                pass  # not a RAW LibRaw knows: Pillow may still read it
        try:
            img = _open_unchecked(source)
        except UnidentifiedImageError:
            if raw_format:
                reason = f"{raw_format} photo this version of rawpy (LibRaw) cannot read"
                raise UnreadableImage(label, reason) from None
            if raw.rawpy_available() and not name:  # bytes of unknown kind: LibRaw may know
                try:
                    return _open_raw(source, label, draft_size)
                except (raw.NotRaw, UnreadableImage):
                    pass  # neither LibRaw nor Pillow: say it as Pillow would
            raise
        fmt = img.format or "unknown"
        width, height = img.size
        orientation = _orientation(img)
        if orientation in _ROTATING_ORIENTATIONS:
            width, height = height, width
        taken_at = _taken_at(img)
        facts = facts_from_exif(img)
        if draft_size and isinstance(img, JpegImagePlugin.JpegImageFile):  # MPO too
            img.draft("RGB", (draft_size, draft_size))
        _check_decoded_size(label, img.size)
        img.load()
        img = ImageOps.exif_transpose(img) if orientation not in (None, 1) else img
        rgb = to_rgb(img)
    except UnidentifiedImageError:
        raise UnreadableImage(label, "not an image, or a format clipsearch cannot read") from None
    except Image.DecompressionBombError as exc:  # a frame or tile Pillow checks while reading
        found = _PILLOW_PIXELS.search(str(exc))
        raise _too_large(label, int(found.group(1)) if found else None) from None
    except OSError as exc:
        text = str(exc)
        if "truncated" in text.lower() or "broken" in text.lower():
            raise UnreadableImage(label, "truncated or corrupt image data") from None
        raise UnreadableImage(label, f"corrupt image ({text or type(exc).__name__})") from None
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError) as exc:
        raise UnreadableImage(label, f"corrupt image ({type(exc).__name__}: {exc})") from None
    info = ImageInfo(width, height, fmt, taken_at, None if facts.empty else facts)
    return rgb, info


def _open_raw(data: bytes, label: str, draft_size: int | None) -> tuple[Image.Image, ImageInfo]:
    """A RAW photo through `media.raw`; its facts from its own EXIF, then its preview's."""
    picture = raw.decode_raw(
        data,
        label,
        min_side=draft_size or 0,
        check_size=lambda size: _check_decoded_size(label, size),
    )
    exif = raw.raw_exif(data)
    facts = facts_from_exif(exif) if exif is not None else PhotoFacts()
    taken_at = _taken_at(exif) if exif is not None else None
    if picture.preview is not None:
        img = _open_unchecked(picture.preview)
        facts = facts.merge(facts_from_exif(img))
        if not _made_by_libraw(img):  # LibRaw's own EXIF on a bare preview: time 0 if unknown
            taken_at = taken_at or _taken_at(img)
        orientation = _orientation(img)
        if draft_size and isinstance(img, JpegImagePlugin.JpegImageFile):
            img.draft("RGB", (draft_size, draft_size))
        _check_decoded_size(label, img.size)
        img.load()
        if orientation not in (None, 1):
            img = ImageOps.exif_transpose(img)
        else:  # previews are mostly stored as the sensor sees: turn them as the RAW says
            img = raw.upright(img, picture.orientation)
        rgb = to_rgb(img)
    else:
        assert picture.pixels is not None
        rgb = picture.pixels
    facts = facts.merge(PhotoFacts(lens=picture.lens))
    if taken_at is None and picture.taken_at is not None:
        taken_at = picture.taken_at.replace(microsecond=0).isoformat()
    info = ImageInfo(
        picture.width, picture.height, picture.format, taken_at, None if facts.empty else facts
    )
    return rgb, info


def _open_unchecked(data: bytes) -> Image.Image:
    """`Image.open` without its check of the header's size: `_check_decoded_size` follows.

    Pillow judges a picture by the size in its header, before a JPEG can pick a reduced
    decoding scale, so a 108 MP photo it would decode at 1/8 scale is refused. This tries the
    formats Pillow has registered, in its order, as `Image.open` does, and reads headers only.
    Pillow's `DecompressionBombWarning` (some formats check frame sizes while opening) is
    silenced here; `catch_warnings` is not thread-safe, so decode threads take turns (opening
    reads headers only: it is quick).
    """
    fp = io.BytesIO(data)
    prefix = data[:16]
    tried: set[str] = set()
    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for load_plugins in (Image.preinit, Image.init):
            load_plugins()
            for fmt in [f for f in Image.ID if f not in tried]:
                tried.add(fmt)
                factory, accept = Image.OPEN[fmt]
                accepted = not accept or accept(prefix)
                if not accepted or isinstance(accepted, str):
                    continue
                fp.seek(0)
                try:
                    return factory(fp, "")
                except (SyntaxError, IndexError, TypeError, struct.error):
                    continue
    raise UnidentifiedImageError("cannot identify image file")


def _check_decoded_size(label: str, size: tuple[int, int]) -> None:
    limit = max_decoded_pixels()
    pixels = max(1, size[0]) * max(1, size[1])
    if limit is not None and pixels > limit:
        raise _too_large(label, pixels, size)


def _too_large(
    label: str, pixels: int | None, size: tuple[int, int] | None = None
) -> UnreadableImage:
    limit = max_decoded_pixels()
    found = f"{size[0]}x{size[1]}, " if size else ""
    found += f"{_megapixels(pixels)} MP; " if pixels else ""
    allowed = f"limit {_megapixels(limit)} MP" if limit else "over Pillow's limit"
    return UnreadableImage(label, f"image too large to decode safely ({found}{allowed})")


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}".removesuffix(".0")


def read_file(path: str | Path) -> bytes:
    """Read a whole file; raises UnreadableImage for permission and I/O errors."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        raise UnreadableImage(str(path), "permission denied") from None
    except IsADirectoryError:
        raise UnreadableImage(str(path), "is a directory") from None
    except FileNotFoundError:
        raise UnreadableImage(str(path), "file not found") from None
    except OSError as exc:
        raise UnreadableImage(str(path), f"cannot read file ({exc.strerror or exc})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if (img.mode == "P" and "transparency" in img.info) or img.mode in ("RGBA", "LA", "PA", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(0x0112)
    except Exception:
        return None


def _made_by_libraw(img: Image.Image) -> bool:
    try:
        return str(img.getexif().get(_SOFTWARE, "")).startswith("dcraw")
    except Exception:
        return False


def _taken_at(source: Image.Image | Image.Exif) -> str | None:
    try:
        exif = source.getexif() if isinstance(source, Image.Image) else source
        value = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
        if not value:
            return None
        text = str(value).strip("\x00 ").strip()
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except Exception:
        return None


_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def prepare(img: Image.Image, params: PreprocessParams) -> np.ndarray:
    """Resize and crop like open_clip's preprocess; returns uint8 (height, width, 3)."""
    th, tw = params.size
    resample = _RESAMPLE.get(params.interpolation, Image.Resampling.BICUBIC)
    w, h = img.size
    if params.resize_mode == "squash":
        img = img.resize((tw, th), resample)
    elif params.resize_mode == "longest":
        scale = min(th / h, tw / w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        img = img.resize((nw, nh), resample)
        canvas = Image.new("RGB", (tw, th), (params.fill_color,) * 3)
        canvas.paste(img, ((tw - nw) // 2, (th - nh) // 2))
        img = canvas
    else:  # shortest: torchvision Resize(int) then CenterCrop
        short = min(th, tw)
        if w <= h:
            nw, nh = short, int(short * h / w)
        else:
            nw, nh = int(short * w / h), short
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), resample)
        img = _center_crop(img, th, tw)
    return np.array(img, dtype=np.uint8)  # a writable copy (torch wraps it without copying)


def _center_crop(img: Image.Image, th: int, tw: int) -> Image.Image:
    w, h = img.size
    if w < tw or h < th:  # pad like torchvision's CenterCrop
        canvas = Image.new("RGB", (max(w, tw), max(h, th)), (0, 0, 0))
        canvas.paste(img, ((max(w, tw) - w) // 2, (max(h, th) - h) // 2))
        img, (w, h) = canvas, canvas.size
    top = round((h - th) / 2.0)
    left = round((w - tw) / 2.0)
    return img.crop((left, top, left + tw, top + th))


def load_for_model(
    source: str | Path | bytes, params: PreprocessParams
) -> tuple[np.ndarray, ImageInfo]:
    """Decode and prepare one image for the model (draft-mode JPEG decoding)."""
    img, info = open_image(source, draft_size=min(params.size))
    return prepare(img, params), info
