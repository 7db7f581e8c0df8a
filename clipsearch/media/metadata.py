"""What a photo says about itself: the camera, the lens and where it was taken (EXIF).

`facts_from_exif` reads them without decoding any pixel. A malformed value is dropped, never
raised: one bad tag costs that fact, not the others and not the picture. The places a position
names, and positions for a place's name, are in `clipsearch.media.places`.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

_MAKE, _MODEL = 0x010F, 0x0110
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_LENS_MODEL = 0xA434
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
_MAX_TEXT = 120
_NO_LENS = re.compile(r"[0\s.,mf/-]*")  # "0.0 mm f/0.0", "----": a camera saying "no lens"
_CORPORATE = re.compile(
    r"[\s,]+(corporation|corp\.?|co\.?,? ?ltd\.?|company|inc\.?|imaging|optical|electronics"
    r"|digital solutions|photo ?imaging|camera ag)\b.*$",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------------------
# Camera, lens and position from EXIF


@dataclass(frozen=True)
class PhotoFacts:
    """Camera, lens and GPS position a photo carries; a field is None when it does not say.

    Texts are cleaned (whitespace collapsed, cut at a NUL, control characters dropped) but
    otherwise kept as the camera wrote them: `camera_model` may repeat the make ("Canon" +
    "Canon EOS 5D"), so that a search for either field finds the photo; `camera` is the
    display name without the repetition. `lat`/`lon` are signed decimal degrees (south and
    west negative); a position of exactly (0, 0), what a camera without a fix writes, counts
    as none.
    """

    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    lat: float | None = None
    lon: float | None = None

    @property
    def empty(self) -> bool:
        """True when the photo told nothing."""
        return self == _NO_FACTS

    @property
    def has_position(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def camera(self) -> str | None:
        """The camera for people: "Canon EOS 5D", "Apple iPhone 12", "NIKON D750"."""
        make = _CORPORATE.sub("", self.camera_make or "").strip() or None
        model = self.camera_model
        if not model:
            return make
        if not make or model.split()[0].casefold() in make.casefold().split():
            return model  # the model names the make already ("Canon EOS 5D", "NIKON D750")
        return f"{make} {model}"

    def merge(self, other: PhotoFacts) -> PhotoFacts:
        """These facts, with what they lack taken from `other` (the position as a pair)."""
        position = (self.lat, self.lon) if self.has_position else (other.lat, other.lon)
        return PhotoFacts(
            camera_make=self.camera_make or other.camera_make,
            camera_model=self.camera_model or other.camera_model,
            lens=self.lens or other.lens,
            lat=position[0],
            lon=position[1],
        )


_NO_FACTS = PhotoFacts()


def facts_from_exif(source: Image.Image | Image.Exif) -> PhotoFacts:
    """The camera, lens and position in a picture's EXIF (an opened image or its `Exif`).

    Reads the EXIF block only (no pixels are decoded). Never raises: a malformed value is
    left out, and a picture whose EXIF cannot be read at all gets empty facts.
    """
    try:
        exif = source.getexif() if isinstance(source, Image.Image) else source
    except Exception:
        return _NO_FACTS
    make = _safe(lambda: _text(exif.get(_MAKE)))
    model = _safe(lambda: _text(exif.get(_MODEL)))
    lens = _safe(lambda: _lens(exif.get_ifd(_EXIF_IFD).get(_LENS_MODEL)))
    position = _safe(lambda: _position(exif.get_ifd(_GPS_IFD))) or (None, None)
    return PhotoFacts(make, model, lens, position[0], position[1])


def _safe(read: Any) -> Any:
    try:
        return read()
    except Exception:
        return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    value = value.lstrip("\x00").split("\x00", 1)[0]
    with contextlib.suppress(UnicodeError):  # Pillow reads ASCII as Latin-1; many write UTF-8
        value = value.encode("latin-1").decode("utf-8")
    value = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
    if not any(ch.isalnum() for ch in value):
        return None
    return value[:_MAX_TEXT]


def _lens(value: object) -> str | None:
    text = _text(value)
    return None if text is None or _NO_LENS.fullmatch(text.lower()) else text


def _position(gps: Mapping[int, Any]) -> tuple[float, float] | None:
    if not gps:
        return None
    lat = _coordinate(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "N", "S", 90.0)
    lon = _coordinate(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "E", "W", 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        return None
    return lat, lon


def _coordinate(value: object, ref: object, plus: str, minus: str, limit: float) -> float | None:
    """Degrees, minutes, seconds (rationals) and a hemisphere letter as signed degrees."""
    parts = list(value) if isinstance(value, tuple | list) else [value]
    if not 1 <= len(parts) <= 3:
        return None
    numbers = [float(p) for p in parts]  # a zero denominator reads as NaN
    if any(not math.isfinite(n) or n < 0 for n in numbers) or any(n >= 60 for n in numbers[1:]):
        return None
    degrees = sum(n / 60**i for i, n in enumerate(numbers))
    letter = (_text(ref) or plus)[:1].upper()  # no reference: positive, as exiftool reads it
    if letter not in (plus, minus) or degrees > limit:
        return None
    return -degrees if letter == minus else degrees
