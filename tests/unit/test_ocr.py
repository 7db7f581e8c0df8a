"""OCR with the real Tesseract: the words of receipts, whiteboards, turned and photographed
pages are found; photos without text stay (nearly) silent; odd pictures never crash; a missing
Tesseract or language is reported with what to install.

Skipped as a whole only where Tesseract itself is not installed (the reason is printed).
"""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clipsearch.media.ocr import (
    OcrError,
    OcrResult,
    OcrUnavailable,
    TextReader,
    find_tessdata,
    ocr_unavailable,
)
from tests.ocr_pictures import (
    font,
    photos_without_text,
    receipt,
    rotated,
    text_pictures,
    whiteboard,
    words_of,
)

_MISSING = ocr_unavailable()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"Tesseract is not here: {_MISSING}")


@pytest.fixture(scope="module")
def reader() -> TextReader:
    with TextReader() as r:
        yield r


def recall(result: OcrResult, expected: list[str]) -> float:
    got = set(words_of(result.text))
    return sum(w in got for w in expected) / len(expected)


def test_receipt_words_are_found(reader: TextReader) -> None:
    pic = receipt()
    result = reader.read(pic.image)
    got = set(words_of(result.text))
    assert {"invoice", "hardware", "total", "springfield", "31", "47"} <= got, result.text
    assert recall(result, pic.words) >= 0.8
    assert result.words == len(result.text.split())
    assert 0 < result.seconds < 30


def test_whiteboard_words_are_found(reader: TextReader) -> None:
    pic = whiteboard()
    result = reader.read(pic.image)
    assert {"sprint", "planning", "database", "deadline", "release"} <= set(words_of(result.text))
    assert recall(result, pic.words) >= 0.9


def test_text_is_normalised(reader: TextReader) -> None:
    result = reader.read(receipt().image)
    lines = result.text.split("\n")
    assert all(line and line == line.strip() and "  " not in line for line in lines)
    assert lines[0] == "MAPLE STREET HARDWARE"  # one line of the picture, one line of text
    assert 80 <= result.confidence <= 100


@pytest.mark.parametrize("pic", rotated(), ids=lambda p: p.name)
def test_turned_pictures_are_read(reader: TextReader, pic) -> None:
    result = reader.read(pic.image)
    assert recall(result, pic.words) >= 0.85, (pic.name, result.text)


def test_photographed_pages_read_most_words(reader: TextReader) -> None:
    pics = [p for p in text_pictures(include_large=False) if p.kind == "photo"]
    assert pics
    for pic in pics:
        result = reader.read(pic.image)
        assert recall(result, pic.words) >= 0.75, (pic.name, result.text)


def test_every_rendered_picture_mostly_read(reader: TextReader) -> None:
    """The benchmark's set, as a floor: each kind reads at least 80% of its words."""
    by_kind: dict[str, list[float]] = {}
    for pic in text_pictures(include_large=False):
        by_kind.setdefault(pic.kind, []).append(recall(reader.read(pic.image), pic.words))
    low = {k: round(sum(v) / len(v), 2) for k, v in by_kind.items() if sum(v) / len(v) < 0.8}
    assert not low


def test_large_picture_is_brought_down_and_read(reader: TextReader) -> None:
    img = Image.new("RGB", (4200, 3000), (250, 250, 250))
    ImageDraw.Draw(img).text(
        (300, 1200), "Quarterly maintenance schedule", font=font("sans", 80), fill=(20, 20, 20)
    )
    result = reader.read(img)
    assert {"quarterly", "maintenance", "schedule"} <= set(words_of(result.text))


def test_photos_without_text_say_nearly_nothing(reader: TextReader) -> None:
    photos = photos_without_text()
    if not photos:
        pytest.skip("the photos of ../shared/datasets/imagenet-sample are not here")
    words = [reader.read(p.image).words for p in photos]
    assert sum(words) <= 1, words


ODD_MODES = tuple(
    [
        "RGBA",
        "LA",
        "P",
        "P-transparent",
        "1",
        "I;16",
        "I",
        "F",
        "CMYK",
        "tiny-3x3",
        "one-pixel-high",
        "thin-strip",
        "all-black",
        "all-white",
        "noise",
    ]
)


def _odd_pictures() -> dict[str, Image.Image]:
    text = Image.new("L", (400, 80), 255)
    ImageDraw.Draw(text).text((10, 20), "Garden party", font=font("sans", 32), fill=0)
    rgba = Image.new("RGBA", (400, 80), (0, 0, 0, 0))  # black text on transparent black
    ImageDraw.Draw(rgba).text((10, 20), "Garden party", font=font("sans", 32), fill=(0, 0, 0, 255))
    ptrans = Image.new("P", (400, 80), 0)  # index 0: black, transparent; index 1: black
    ptrans.putpalette([0, 0, 0, 0, 0, 0])
    ptrans.info["transparency"] = 0
    ImageDraw.Draw(ptrans).text((10, 20), "Garden party", font=font("sans", 32), fill=1)
    sixteen = Image.fromarray(np.asarray(text, dtype=np.uint16) * 257)  # mode I;16
    return {
        "RGBA": rgba,
        "LA": rgba.convert("LA"),
        "P": text.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE),
        "P-transparent": ptrans,
        "1": text.convert("1"),
        "I;16": sixteen,
        "I": text.convert("I"),
        "F": text.convert("F"),
        "CMYK": text.convert("CMYK"),
        "tiny-3x3": Image.new("RGB", (3, 3), (10, 200, 30)),
        "one-pixel-high": Image.new("RGB", (3000, 1), 0),
        "thin-strip": Image.new("L", (5000, 12), 255),
        "all-black": Image.new("L", (640, 480), 0),
        "all-white": Image.new("RGB", (640, 480), (255, 255, 255)),
        "noise": Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400), np.uint8)),
    }


@pytest.mark.parametrize("mode", ODD_MODES)
def test_odd_pictures_never_crash(reader: TextReader, mode: str) -> None:
    img = _odd_pictures()[mode]
    result = reader.read(img)
    assert isinstance(result, OcrResult)
    assert result.words == len(result.text.split())
    if mode in ("RGBA", "LA", "P", "P-transparent", "1", "I;16", "I", "CMYK"):
        assert {"garden", "party"} <= set(words_of(result.text)), (mode, result.text)
    if mode in ("tiny-3x3", "one-pixel-high", "all-black", "all-white"):
        assert result.text == ""


def test_corrupt_picture_is_an_ocr_error(reader: TextReader) -> None:
    buf = io.BytesIO()
    receipt().image.save(buf, "JPEG")
    cut = Image.open(io.BytesIO(buf.getvalue()[: len(buf.getvalue()) // 3]))  # decoded lazily
    with pytest.raises(OcrError):
        reader.read(cut)


def test_one_reader_serves_threads_and_reopens_after_close(reader: TextReader) -> None:
    pic = whiteboard()
    expected = reader.read(pic.image).text
    out: list[str] = []

    def work() -> None:
        out.append(reader.read(pic.image).text)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [expected, expected]
    reader.close()
    assert reader.read(pic.image).text == expected


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="no `tesseract` program here")
def test_the_tesseract_program_reads_as_well() -> None:
    with TextReader(backend="cli") as cli:
        assert cli.backend == "cli"
        result = cli.read(receipt().image)
        assert {"invoice", "hardware", "total"} <= set(words_of(result.text))
        turned = cli.read(rotated()[1].image)  # 180 degrees
        assert turned.rotation == 180 and turned.words >= 20


def test_available_here() -> None:
    assert ocr_unavailable() is None
    assert find_tessdata("eng") is not None


def test_missing_language_data_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))  # an empty folder
    message = ocr_unavailable()
    assert message is not None
    assert "apt-get install tesseract-ocr-eng" in message and "TESSDATA_PREFIX" in message
    assert str(tmp_path) in message
    with pytest.raises(OcrUnavailable, match="tesseract-ocr-eng"):
        TextReader()
    monkeypatch.delenv("TESSDATA_PREFIX")
    assert ocr_unavailable(tessdata=tmp_path) is not None  # the parameter does the same


def test_missing_language_is_named() -> None:
    message = ocr_unavailable("eng+zzz")
    assert message is not None and "tesseract-ocr-zzz" in message
    with pytest.raises(OcrUnavailable):
        TextReader(lang="eng+zzz")


def test_missing_tesseract_says_what_to_install() -> None:
    message = ocr_unavailable(backend="cli", tesseract_cmd="/nonexistent/tesseract")
    assert message is not None
    for needed in ("apt-get install tesseract-ocr", "brew install tesseract", "clipsearch[ocr]"):
        assert needed in message
    assert "\n" not in message  # one sentence
    with pytest.raises(OcrUnavailable, match="brew install tesseract"):
        TextReader(backend="cli", tesseract_cmd="/nonexistent/tesseract")


def test_turned_pictures_are_read_without_osd_data(tmp_path: Path) -> None:
    """Where osd.traineddata is missing, the turns are tried on sideways-looking text."""
    folder = find_tessdata("eng")
    assert folder is not None
    (tmp_path / "eng.traineddata").symlink_to(folder / "eng.traineddata")
    with TextReader(tessdata=tmp_path) as no_osd:
        assert not no_osd.has_osd
        pic = rotated()[1]  # 180 degrees
        result = no_osd.read(pic.image)
        assert result.rotation == 180 and recall(result, pic.words) >= 0.85
