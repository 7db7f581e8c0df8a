"""Camera RAW photos (.dng, .cr2, .nef, .arw, .raf...): told apart from other pictures, and
decoded through rawpy (LibRaw), an optional dependency imported on first use.

- `raw_format` recognises a RAW photo by its first bytes, so the file's bytes alone are
  enough (ingest decodes from memory). TIFF-based RAWs (DNG, CR2, NEF, ARW, PEF...) would
  otherwise open in Pillow as their small first-page thumbnail.
- `decode_raw` prefers the JPEG preview the camera embedded (fast: no demosaicing) when it
  is big enough, and otherwise develops the sensor data at half size with the camera's
  white balance. `images.open_image` does the rest (pixel limit, orientation, RGB), so
  indexing, thumbnails and uploads read RAW photos like any other picture.
- `raw_exif` reads the EXIF of a TIFF-based RAW (camera, capture time, GPS) with Pillow.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image, JpegImagePlugin

from clipsearch.errors import UnreadableImage
from clipsearch.media.fs import RAW_EXTENSIONS, is_raw_name

__all__ = [
    "PREVIEW_MIN_SIDE",
    "RAW_EXTENSIONS",
    "RAW_MISSING",
    "NotRaw",
    "RawPicture",
    "decode_raw",
    "is_raw_name",
    "raw_exif",
    "raw_format",
    "rawpy_available",
    "upright",
]

RAW_MISSING = "RAW photo: install rawpy (pip install 'clipsearch[raw]')"
PREVIEW_MIN_SIDE = 256  # an embedded preview smaller than this is not used

_TIFF = (b"II*\x00", b"MM\x00*")
_DNG_VERSION, _SUBIFDS, _NEW_SUBFILE_TYPE, _DNG_PRIVATE = 0xC612, 0x014A, 0x00FE, 0xC634
_MAKE, _COMPRESSION, _PHOTOMETRIC, _BITS = 0x010F, 0x0103, 0x0106, 0x0102
_RAW_PHOTOMETRIC = {32803, 34892}  # CFA, LinearRaw
_TIFF_COMPRESSIONS = {1, 2, 3, 4, 5, 6, 7, 8, 32773, 32946, 34712, 50000, 50001}
_MAKE_FORMATS = {"nikon": "NEF", "sony": "ARW", "pentax": "PEF", "ricoh": "PEF", "samsung": "SRW"}
# LibRaw's `flip` as the EXIF orientation that undoes it (dcraw's table, inverted).
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


class NotRaw(Exception):
    """LibRaw does not recognise the bytes as a RAW photo (try another decoder)."""


@dataclass(frozen=True)
class RawPicture:
    """A RAW photo, decoded: either its embedded JPEG preview or developed pixels."""

    format: str  # "DNG", "CR2", "NEF"..., or "RAW"
    width: int  # the full photo, as displayed (after the camera's rotation)
    height: int
    preview: bytes | None  # the embedded JPEG chosen, still to decode
    orientation: int  # EXIF orientation the preview needs if it carries none (1: none)
    pixels: Image.Image | None  # developed RGB pixels, already upright (when no preview)
    taken_at: datetime | None  # the capture time LibRaw read
    lens: str | None


def rawpy_available() -> bool:
    try:
        import rawpy  # noqa: F401
    except ImportError:
        return False
    return True


def raw_format(data: bytes) -> str | None:
    """The RAW format `data` is in ("DNG", "CR2", "RAF"...; "RAW" when unnamed), or None.

    Judged by the first bytes, and for TIFF-based files by the first directory's tags: a
    DNG version, a CFA or linear-raw page, sub-images, a reduced-resolution first page or a
    compression no plain TIFF uses, in a file that names its camera's make. (A plain TIFF
    misjudged here still decodes: LibRaw refuses it and Pillow reads it.)
    """
    head = data[:16]
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if head[4:12] == b"ftypcrx ":
        return "CR3"
    if head[6:14] == b"HEAPCCDR":
        return "CRW"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "ORF"
    if head[:4] == b"IIU\x00":
        return "RW2"
    if head[:4] == b"\x00MRM":
        return "MRW"
    if head[:4] == b"FOVb":
        return "X3F"
    if head[:4] not in _TIFF:
        return None
    if head[8:10] == b"CR":
        return "CR2"
    tags = _first_ifd(data)
    if _DNG_VERSION in tags:
        return "DNG"
    make = tags.get(_MAKE)
    if not isinstance(make, str) or not make.strip("\x00 "):
        return None
    compression = tags.get(_COMPRESSION, 1)
    bits = tags.get(_BITS, 8)
    bits = bits[0] if isinstance(bits, tuple) and bits else bits
    if (
        tags.get(_PHOTOMETRIC) in _RAW_PHOTOMETRIC
        or _SUBIFDS in tags
        or _DNG_PRIVATE in tags
        or tags.get(_NEW_SUBFILE_TYPE) == 1
        or compression not in _TIFF_COMPRESSIONS
        or bits in (10, 12, 14)
    ):
        return _MAKE_FORMATS.get(make.split()[0].lower() if make.split() else "", "RAW")
    return None


def _first_ifd(data: bytes) -> dict[int, object]:
    try:
        exif = Image.Exif()
        exif.load(data)
        return dict(exif)
    except Exception:
        return {}


def raw_exif(data: bytes) -> Image.Exif | None:
    """The EXIF of a TIFF-structured RAW (IFD0 with its Exif and GPS directories), or None.

    Olympus ORF and Panasonic RW2 are TIFF with their own first bytes; Fujifilm RAF,
    Canon CR3 and CRW are not TIFF (their embedded preview's EXIF stands in).
    """
    if data[:4] in (b"IIRO", b"IIRS", b"IIU\x00"):
        data = b"II*\x00" + data[4:]
    elif data[:4] == b"MMOR":
        data = b"MM\x00*" + data[4:]
    elif data[:4] not in _TIFF:
        return None
    try:
        exif = Image.Exif()
        exif.load(data)
    except Exception:
        return None
    return exif if len(exif) else None


def decode_raw(
    data: bytes,
    label: str,
    *,
    min_side: int = PREVIEW_MIN_SIDE,
    check_size: Callable[[tuple[int, int]], None] | None = None,
) -> RawPicture:
    """Decode a RAW photo: its embedded JPEG preview if that is big enough, else the sensor.

    The preview is used when its shorter side is at least `min_side` (never less than
    `PREVIEW_MIN_SIDE`), or at least as big as a half-size development would be. Otherwise
    the sensor data is developed at half size with the camera's white balance;
    `check_size((width, height))` is called before that, so a limit on decoded pixels
    applies. Raises `UnreadableImage` (rawpy missing, damaged file) or `NotRaw`.
    """
    try:
        import rawpy
    except ImportError:
        raise UnreadableImage(label, RAW_MISSING) from None
    fmt = raw_format(data) or "RAW"
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            turned = bool(sizes.flip & 4)
            width, height = (sizes.height, sizes.width) if turned else (sizes.width, sizes.height)
            half = ((width + 1) // 2, (height + 1) // 2)
            need = min(max(min_side, PREVIEW_MIN_SIDE), min(half))
            orientation = _FLIP_TO_ORIENTATION.get(sizes.flip, 1)
            taken_at, lens = _raw_facts(raw)
            preview, pixels = _preview(raw, rawpy, need, orientation, check_size)
            if preview is None and pixels is None:
                if check_size:
                    check_size(half)
                developed = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
                pixels = Image.fromarray(np.ascontiguousarray(developed[..., :3]))
    except rawpy.LibRawFileUnsupportedError:
        raise NotRaw(label) from None
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError):
        raise UnreadableImage(label, "RAW photo too large to decode") from None
    except (
        rawpy.LibRawIOError,
        rawpy.LibRawDataError,
        rawpy.LibRawOutOfOrderCallError,  # what a failed unpack leads to
        rawpy.LibRawRequestForNonexistentImageError,
    ):
        raise UnreadableImage(label, "truncated or damaged RAW photo") from None
    except rawpy.LibRawError as exc:
        raise UnreadableImage(label, f"cannot decode RAW photo ({_message(exc)})") from None
    return RawPicture(fmt, width, height, preview, orientation, pixels, taken_at, lens)


def _preview(
    raw: object,
    rawpy: object,
    need: int,
    orientation: int,
    check_size: Callable[[tuple[int, int]], None] | None,
) -> tuple[bytes | None, Image.Image | None]:
    """The embedded preview if it is at least `need` pixels on its shorter side."""
    try:
        thumb = raw.extract_thumb()  # type: ignore[attr-defined]
    except rawpy.LibRawError:  # type: ignore[attr-defined]  # none, or a kind LibRaw can't give
        return None, None
    if thumb.format == rawpy.ThumbFormat.JPEG:  # type: ignore[attr-defined]
        size = _jpeg_size(thumb.data)
        if size is None or min(size) < need:
            return None, None
        return bytes(thumb.data), None
    bitmap = np.asarray(thumb.data)
    if bitmap.ndim != 3 or bitmap.shape[2] < 3 or min(bitmap.shape[:2]) < need:
        return None, None
    if check_size:
        check_size((bitmap.shape[1], bitmap.shape[0]))
    image = Image.fromarray(np.ascontiguousarray(bitmap[..., :3], dtype=np.uint8))
    return None, upright(image, orientation)


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned as EXIF `orientation` says (1: as it is)."""
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image.transpose(method) if method is not None else image


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """A JPEG's size from its header (no decoding, no pixel-limit warning), or None."""
    try:
        return JpegImagePlugin.JpegImageFile(io.BytesIO(data)).size
    except (OSError, SyntaxError, ValueError, struct.error, IndexError):
        return None


def _raw_facts(raw: object) -> tuple[datetime | None, str | None]:
    try:
        stamp = raw.other.timestamp  # type: ignore[attr-defined]
        taken_at = stamp if isinstance(stamp, datetime) and stamp.year > 1970 else None
    except Exception:
        taken_at = None
    try:
        lens = (raw.lens.model or "").strip("\x00 ") or None  # type: ignore[attr-defined]
    except Exception:
        lens = None
    return taken_at, lens


def _message(exc: Exception) -> str:
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text) or type(exc).__name__
