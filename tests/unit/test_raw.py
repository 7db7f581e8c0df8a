"""RAW photos: real DNG files (written here, read by LibRaw) decode like any picture."""

from __future__ import annotations

import importlib.util
import io
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsearch.errors import UnreadableImage
from clipsearch.media import fs, raw, thumbs
from clipsearch.media.images import content_hash, open_image
from clipsearch.media.metadata import PhotoFacts

needs_rawpy = pytest.mark.skipif(
    importlib.util.find_spec("rawpy") is None, reason="rawpy not installed"
)

# --- a minimal DNG writer ------------------------------------------------------------------
# TIFF types
BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10
_FORMATS = {BYTE: "B", SHORT: "H", LONG: "I", RATIONAL: "I", SRATIONAL: "i"}


class Dir(list):
    """A TIFF directory: (tag, type, value) entries. A value is a list of numbers (pairs for
    rationals), a str, a `Dir` (written as a pointer to it) or `bytes` (image data, written
    as a pointer to it)."""


def write_tiff(first: Dir) -> bytes:
    dirs, blobs = [], []

    def collect(d: Dir) -> None:
        dirs.append(d)
        for _, _, value in d:
            if isinstance(value, Dir):
                collect(value)
            elif isinstance(value, bytes):
                blobs.append(value)

    collect(first)

    def packed(kind: int, value) -> bytes:
        if kind == ASCII:
            return value.encode() + b"\x00"
        flat = [x for pair in value for x in pair] if kind in (RATIONAL, SRATIONAL) else value
        return struct.pack(f"<{len(flat)}{_FORMATS[kind]}", *flat)

    def size(d: Dir) -> int:
        extra = 0
        for _, kind, value in d:
            if not isinstance(value, Dir | bytes) and len(raw := packed(kind, value)) > 4:
                extra += len(raw) + len(raw) % 2
        return 2 + 12 * len(d) + 4 + extra

    offsets, at = {}, 8
    for d in dirs:
        offsets[id(d)] = at
        at += size(d)
    for blob in blobs:
        offsets[id(blob)] = at
        at += len(blob) + len(blob) % 2
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for d in dirs:
        entries, extra = struct.pack("<H", len(d)), b""
        extra_at = offsets[id(d)] + 2 + 12 * len(d) + 4
        for tag, kind, value in sorted(d, key=lambda e: e[0]):
            if isinstance(value, Dir | bytes):
                entries += struct.pack("<HHII", tag, LONG, 1, offsets[id(value)])
                continue
            data = packed(kind, value)
            count = len(data) if kind == ASCII else len(value)
            if len(data) <= 4:
                entries += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\x00")
            else:
                entries += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
                extra += data + b"\x00" * (len(data) % 2)
        out += entries + struct.pack("<I", 0) + extra
    for blob in blobs:
        out += blob + b"\x00" * (len(blob) % 2)
    return bytes(out)


def _cfa(width: int, height: int, rgb: tuple[int, int, int]) -> np.ndarray:
    """A 12-bit RGGB mosaic of a picture of one colour."""
    r, g, b = rgb
    mosaic = np.empty((height, width), np.uint16)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2] = r, g
    mosaic[1::2, 0::2], mosaic[1::2, 1::2] = g, b
    return mosaic


def _raw_dir(mosaic: np.ndarray, subfile: int = 0) -> Dir:
    h, w = mosaic.shape
    data = mosaic.astype("<u2").tobytes()
    return Dir(
        [
            (254, LONG, [subfile]),
            (256, LONG, [w]),
            (257, LONG, [h]),
            (258, SHORT, [16]),
            (259, SHORT, [1]),
            (262, SHORT, [32803]),  # CFA
            (273, LONG, data),
            (277, SHORT, [1]),
            (278, LONG, [h]),
            (279, LONG, [len(data)]),
            (33421, SHORT, [2, 2]),  # CFARepeatPatternDim
            (33422, BYTE, [0, 1, 1, 2]),  # CFAPattern: RGGB
            (50714, LONG, [0]),  # BlackLevel
            (50717, LONG, [4095]),  # WhiteLevel
        ]
    )


def _preview_dir(size: tuple[int, int], rgb: tuple[int, int, int], jpeg: bool) -> Dir:
    w, h = size
    if jpeg:
        buf = io.BytesIO()
        Image.new("RGB", size, rgb).save(buf, "JPEG", quality=90)
        data, compression, photometric = buf.getvalue(), 7, 6
    else:
        data, compression, photometric = bytes(rgb) * (w * h), 1, 2
    return Dir(
        [
            (254, LONG, [1]),  # a reduced-resolution copy
            (256, LONG, [w]),
            (257, LONG, [h]),
            (258, SHORT, [8, 8, 8]),
            (259, SHORT, [compression]),
            (262, SHORT, [photometric]),
            (273, LONG, data),
            (277, SHORT, [3]),
            (278, LONG, [h]),
            (279, LONG, [len(data)]),
        ]
    )


def make_dng(
    path: Path | None = None,
    *,
    size: tuple[int, int] = (600, 400),
    sensor: tuple[int, int, int] = (3500, 600, 500),  # mostly red
    preview: tuple[int, int] | None = None,
    preview_rgb: tuple[int, int, int] = (20, 40, 230),  # blue: tells preview from sensor
    jpeg_preview: bool = True,
    orientation: int = 1,
    exif: bool = True,
) -> bytes:
    """A real DNG: a Bayer mosaic, DNG colour tags, and (optionally) EXIF with a camera, a
    lens, a capture time and a GPS position in Lisbon, and an embedded preview."""
    mosaic = _cfa(*size, sensor)
    camera = [
        (271, ASCII, "Testmaker"),
        (272, ASCII, "Testmaker TM-1"),
        (274, SHORT, [orientation]),
        (50706, BYTE, [1, 4, 0, 0]),  # DNGVersion
        (50707, BYTE, [1, 1, 0, 0]),
        (50708, ASCII, "Testmaker TM-1"),
        (
            50721,
            SRATIONAL,
            [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)],
        ),
        (50728, RATIONAL, [(1, 1), (1, 1), (1, 1)]),  # AsShotNeutral
        (50778, SHORT, [21]),  # CalibrationIlluminant1: D65
    ]
    if exif:
        exif_dir = Dir([(36867, ASCII, "2023:05:06 07:08:09"), (42036, ASCII, "TM 50mm F1.8")])
        gps = Dir(
            [
                (0, BYTE, [2, 3, 0, 0]),
                (1, ASCII, "N"),
                (2, RATIONAL, [(38, 1), (43, 1), (2028, 100)]),
                (3, ASCII, "W"),
                (4, RATIONAL, [(9, 1), (8, 1), (2148, 100)]),
            ]
        )
        camera += [(34665, LONG, exif_dir), (34853, LONG, gps)]
    if preview:  # the usual layout: IFD0 is the preview, the sensor data a sub-IFD
        first = _preview_dir(preview, preview_rgb, jpeg_preview)
        first += [*camera, (330, LONG, _raw_dir(mosaic))]
    else:
        first = _raw_dir(mosaic) + camera
    data = write_tiff(Dir(first))
    if path is not None:
        path.write_bytes(data)
    return data


def _dominant(img: Image.Image) -> str:
    r, g, b = np.asarray(img, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return "red" if r > 2 * max(g, b) else "blue" if b > 2 * max(r, g) else "other"


# --- decoding ------------------------------------------------------------------------------


@needs_rawpy
def test_a_dng_without_preview_is_developed_from_the_sensor(tmp_path):
    path = tmp_path / "IMG_0001.DNG"
    make_dng(path)
    img, info = open_image(path, draft_size=224)
    assert img.mode == "RGB" and img.size == (300, 200)  # developed at half size
    assert _dominant(img) == "red"
    assert (info.width, info.height, info.format) == (600, 400, "DNG")
    assert info.taken_at == "2023-05-06T07:08:09"
    assert info.facts.camera == "Testmaker TM-1"
    assert info.facts.lens == "TM 50mm F1.8"
    assert info.facts.lat == pytest.approx(38.7223, abs=1e-4)
    assert info.facts.lon == pytest.approx(-9.1393, abs=1e-4)


@needs_rawpy
def test_a_dng_decodes_the_same_from_its_bytes(tmp_path):
    # ingest reads each file once and decodes from memory: no name, no extension
    data = make_dng(tmp_path / "a.dng")
    from_bytes, info = open_image(data, draft_size=224)
    from_path, _ = open_image(tmp_path / "a.dng", draft_size=224)
    assert info.format == "DNG" and info.facts.camera_make == "Testmaker"
    assert np.array_equal(np.asarray(from_bytes), np.asarray(from_path))


@needs_rawpy
@pytest.mark.parametrize("jpeg", [True, False], ids=["jpeg-preview", "bitmap-preview"])
def test_a_big_enough_embedded_preview_is_used(tmp_path, jpeg):
    data = make_dng(preview=(384, 256), jpeg_preview=jpeg)
    img, info = open_image(data, draft_size=224)
    assert _dominant(img) == "blue"  # the preview, not the (red) sensor data
    assert min(img.size) >= 224
    assert (info.width, info.height) == (600, 400)
    assert info.facts.camera_model == "Testmaker TM-1"
    assert info.taken_at == "2023-05-06T07:08:09"


@needs_rawpy
def test_a_small_preview_is_passed_over_for_the_sensor(tmp_path):
    img, _ = open_image(make_dng(preview=(160, 120)), draft_size=224)
    assert _dominant(img) == "red" and img.size == (300, 200)


@needs_rawpy
def test_a_preview_as_big_as_a_half_size_development_is_enough():
    img, _ = open_image(make_dng(preview=(300, 200)), draft_size=1024)
    assert _dominant(img) == "blue"


@needs_rawpy
@pytest.mark.parametrize("preview", [None, (384, 256)], ids=["sensor", "preview"])
def test_the_camera_rotation_is_applied(preview):
    img, info = open_image(make_dng(preview=preview, orientation=6), draft_size=224)
    assert img.width < img.height
    assert (info.width, info.height) == (400, 600)


@needs_rawpy
def test_the_pixel_limit_applies_to_raw(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # half size is 300 x 200 = 60,000
    with pytest.raises(UnreadableImage, match="too large to decode safely"):
        open_image(make_dng(), draft_size=224)


@needs_rawpy
def test_a_truncated_raw_is_reported_not_raised(tmp_path):
    path = tmp_path / "cut.dng"
    path.write_bytes(make_dng()[:5000])
    with pytest.raises(UnreadableImage) as caught:
        open_image(path)
    assert caught.value.path == str(path)
    assert caught.value.reason == "truncated or damaged RAW photo"


def test_without_rawpy_a_raw_photo_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rawpy", None)  # `import rawpy` now fails
    (tmp_path / "a.dng").write_bytes(make_dng())
    (tmp_path / "b.orf").write_bytes(b"IIRO\x08\x00\x00\x00" + b"\x00" * 64)
    for name in ("a.dng", "b.orf"):
        with pytest.raises(UnreadableImage) as caught:
            open_image(tmp_path / name)
        assert caught.value.reason == "RAW photo: install rawpy (pip install 'clipsearch[raw]')"
    assert not raw.rawpy_available()


@needs_rawpy
def test_thumbnails_of_raw_photos_work_unchanged(tmp_path):
    data = make_dng(tmp_path / "a.dng")
    thumb = thumbs.thumbnail(tmp_path / "lib", str(tmp_path / "a.dng"), content_hash(data), 160)
    img = Image.open(io.BytesIO(thumb.data))
    assert img.format == "JPEG" and max(img.size) == 160 and _dominant(img.convert("RGB")) == "red"


# --- telling RAW photos apart ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"FUJIFILMCCD-RAW 0201", "RAF"),
        (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01", "CR3"),
        (b"II\x1a\x00\x00\x00HEAPCCDR", "CRW"),
        (b"IIRO\x08\x00\x00\x00", "ORF"),
        (b"IIU\x00\x18\x00\x00\x00", "RW2"),
        (b"II*\x00\x10\x00\x00\x00CR\x02\x00", "CR2"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),
        (b"\x89PNG\r\n\x1a\n", None),
    ],
)
def test_raw_formats_are_known_by_their_first_bytes(head, fmt):
    assert raw.raw_format(head + b"\x00" * 64) == fmt


def test_a_dng_is_known_by_its_tags_and_a_plain_tiff_is_not(tmp_path):
    assert raw.raw_format(make_dng()) == "DNG"
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 200, 0)).save(buf, "TIFF", tiffinfo={271: "EPSON", 272: "V600"})
    assert raw.raw_format(buf.getvalue()) is None
    img, info = open_image(buf.getvalue())
    assert info.format == "TIFF" and img.getpixel((5, 5)) == (0, 200, 0)
    assert info.facts == PhotoFacts(camera_make="EPSON", camera_model="V600")


@needs_rawpy
def test_a_tiff_that_only_looks_raw_falls_back_to_pillow():
    # A reduced-resolution first page and a camera make: looks like a NEF, but LibRaw
    # refuses it, and Pillow reads it.
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 200, 0)).save(buf, "TIFF", tiffinfo={254: 1, 271: "Acme"})
    assert raw.raw_format(buf.getvalue()) == "RAW"
    img, info = open_image(buf.getvalue())
    assert info.format == "TIFF" and img.getpixel((5, 5)) == (0, 200, 0)


def test_raw_extensions_are_image_names():
    for name in ("IMG_0001.CR2", "a.nef", "b.ARW", "c.dng", "d.raf", "e.orf", "f.rw2", "g.cr3"):
        assert fs.is_image_name(name) and raw.is_raw_name(name)
    assert not raw.is_raw_name("photo.jpg") and not raw.is_raw_name("dng")


def test_the_scan_indexes_the_jpeg_of_a_raw_plus_jpeg_pair(tmp_path):
    make_dng(tmp_path / "IMG_0001.DNG")
    Image.new("RGB", (8, 8)).save(tmp_path / "IMG_0001.jpg")
    make_dng(tmp_path / "IMG_0002.dng")  # a RAW on its own
    Image.new("RGB", (8, 8)).save(tmp_path / ".IMG_0002.jpg")  # hidden: does not count
    found = sorted(Path(f.path).name for f in fs.scan([str(tmp_path)]))
    assert found == ["IMG_0001.jpg", "IMG_0002.dng"]
    assert fs.raw_has_sibling("IMG_0001.DNG", ["IMG_0001.jpg", "IMG_0001.DNG"])
    assert not fs.raw_has_sibling("IMG_0002.dng", ["IMG_0002.dng", "IMG_0002.xmp"])
    # a RAW named on its own is indexed even with a JPEG beside it
    assert [f.path for f in fs.scan([str(tmp_path / "IMG_0001.DNG")])]
