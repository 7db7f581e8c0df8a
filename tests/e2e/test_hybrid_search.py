"""One query for what is in a picture, what is written in it, and when and where it was taken.

Real JPEGs with real EXIF (capture time, GPS of known cities, camera names), a real library
(SQLite + FTS5 + FAISS) indexed by the CLI with the tiny model, real Tesseract for --ocr.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from clipsearch.errors import QueryError
from clipsearch.library import Library
from clipsearch.query.build import build_query
from tests.helpers import exif_jpeg

LISBON = (38.7223, -9.1393)
PORTO = (41.1496, -8.6110)
PARIS = (48.8566, 2.3522)
SYDNEY = (-33.8688, 151.2093)


@pytest.fixture
def trip(tmp_path: Path) -> Path:
    """Photos from three cities and two cameras, over two years, in named folders."""
    root = tmp_path / "Pictures"
    pixel = {"make": "Google", "model": "Pixel 7"}
    canon = {"make": "Canon", "model": "Canon EOS 5D Mark IV"}
    holidays, work = root / "Holidays", root / "Work"
    exif_jpeg(holidays / "IMG_0001.jpg", 1, at=LISBON, taken="2023:07:14 10:00:00", **pixel)
    exif_jpeg(holidays / "IMG_0002.jpg", 2, at=PORTO, taken="2023:07:20 18:30:00", **pixel)
    exif_jpeg(work / "IMG_0003.jpg", 3, at=PARIS, taken="2024:03:02 09:00:00", **canon)
    exif_jpeg(work / "hardware store receipt.jpg", 4, taken="2022:11:05 12:00:00", **canon)
    exif_jpeg(holidays / "sydney-harbour.jpg", 5, at=SYDNEY, taken="2024:01:02 08:00:00")
    return root


def _names(results) -> list[str]:
    return [Path(r.path).name for r in results]


def _keyword_hits(results) -> list[str]:
    """The hits the keyword index matched (quoted words also rank semantically, fused)."""
    return [Path(r.path).name for r in results if r.keyword]


def test_filters_in_the_query_text(trip: Path, lib_dir: Path, tiny_model: str) -> None:
    with Library.open(lib_dir, model=tiny_model) as lib:
        lib.index([trip])
        assert set(_names(lib.search("photo near:Lisbon", k=10))) == {"IMG_0001.jpg"}
        # a country: every photo taken in it
        got = _names(lib.search("near:Portugal", k=10))
        assert set(got) == {"IMG_0001.jpg", "IMG_0002.jpg"}
        # coordinates with a radius: Lisbon and Porto are ~275 km apart
        assert len(lib.search("near:38.72,-9.14~300km", k=10)) == 2
        assert len(lib.search("near:38.72,-9.14~50km", k=10)) == 1
        assert set(_names(lib.search("camera:pixel", k=10))) == {"IMG_0001.jpg", "IMG_0002.jpg"}
        assert set(_names(lib.search('camera:"EOS 5D"', k=10))) == {
            "IMG_0003.jpg",
            "hardware store receipt.jpg",
        }
        assert _names(lib.search("photo camera:pixel after:2023-07-15", k=10)) == ["IMG_0002.jpg"]
        assert set(_names(lib.search("after:2023 before:2024-02", k=10))) == {
            "IMG_0001.jpg",
            "IMG_0002.jpg",
            "sydney-harbour.jpg",
        }
        assert set(_names(lib.search("in:Work", k=10))) == {
            "IMG_0003.jpg",
            "hardware store receipt.jpg",
        }
        # filters alone list the newest first
        assert _names(lib.search("in:Holidays", k=10)) == [
            "sydney-harbour.jpg",
            "IMG_0002.jpg",
            "IMG_0001.jpg",
        ]
        assert all(r.score is None for r in lib.search("in:Holidays"))
        # nothing matches: an empty list, and the reason names the filter
        assert lib.search("near:Tokyo", k=10) == []
        why = lib.why_no_results(build_query("beach near:Tokyo"))
        assert "near Tokyo" in why


def test_quoted_words_fuse_keywords_with_the_semantic_ranking(
    trip: Path, lib_dir: Path, tiny_model: str
) -> None:
    with Library.open(lib_dir, model=tiny_model) as lib:
        lib.index([trip])
        plain = lib.search("a receipt", k=5)
        fused = lib.search('a "hardware store" receipt', k=5)
        assert fused[0].path.endswith("hardware store receipt.jpg") and fused[0].keyword
        assert sum(r.keyword for r in fused) == 1
        assert {r.id for r in fused} <= {r.id for r in plain} | {fused[0].id}
        assert all(r.score is not None for r in fused)  # cosine shown for every hit
        # place names are keywords too
        sydney = lib.search('"sydney"', k=5)
        assert _names(sydney)[0] == "sydney-harbour.jpg"
        assert _keyword_hits(sydney) == ["sydney-harbour.jpg"]
        lisbon = lib.search('"lisbon"', k=5)
        assert _keyword_hits(lisbon) == ["IMG_0001.jpg"]  # from its GPS position
        assert _names(lisbon)[0] == "IMG_0001.jpg"
        # quoted words alone, without other words: only keyword matches? No: the words are
        # also the semantic query, so the list goes on; the keyword match leads it.
        assert len(lisbon) == 5


def test_bad_filters_say_where_and_how_to_fix() -> None:
    with pytest.raises(QueryError) as err:
        build_query("beach nar:Lisbon")
    assert "position 7" in str(err.value) and "near:" in str(err.value)
    with pytest.raises(QueryError) as err:
        build_query('whiteboard "project plan')
    assert "unclosed quote at position 12" in str(err.value)
    with pytest.raises(QueryError) as err:
        build_query("beach near:Atlantisville")
    assert "no place" in str(err.value) and "near:38.72,-9.14~5km" in str(err.value)
    with pytest.raises(QueryError, match="given twice"):
        build_query("after:2023 after:2024")
    # colons that are not filters stay words
    q = build_query("2:dog + cat note: buy milk")
    assert [t.value for t in q.terms] == ["dog", "cat note: buy milk"]


def test_an_existing_library_gets_facts_without_re_embedding(
    trip: Path, lib_dir: Path, tiny_model: str
) -> None:
    with Library.open(lib_dir, model=tiny_model) as lib:
        lib.index([trip])
    db = sqlite3.connect(lib_dir / "clipsearch.db")  # as a library made before facts existed
    db.execute("DELETE FROM photo_facts")
    db.execute("DELETE FROM keywords")
    db.execute("DELETE FROM meta WHERE key = 'facts_complete'")
    db.commit()
    db.close()
    with Library.open(lib_dir, model=tiny_model) as lib:
        assert lib.search("near:Lisbon") == []
        summary = lib.index([trip])
        assert summary.embedded == 0 and summary.facts_read == 5
        assert _names(lib.search("near:Lisbon")) == ["IMG_0001.jpg"]
        assert _keyword_hits(lib.search('"receipt"')) == ["hardware store receipt.jpg"]


def test_a_copy_a_move_and_a_delete_keep_the_keywords_right(
    trip: Path, lib_dir: Path, tiny_model: str
) -> None:
    with Library.open(lib_dir, model=tiny_model) as lib:
        lib.index([trip])
        shutil.copy(trip / "Holidays" / "IMG_0001.jpg", trip / "Work" / "copy of lisbon.jpg")
        (trip / "Holidays" / "IMG_0002.jpg").rename(trip / "Work" / "porto bridge.jpg")
        (trip / "Holidays" / "sydney-harbour.jpg").unlink()
        summary = lib.index([trip])
        assert summary.embedded == 0 and summary.moved == 1 and summary.removed == 1
        assert set(_names(lib.search("near:Lisbon"))) == {"IMG_0001.jpg", "copy of lisbon.jpg"}
        assert _keyword_hits(lib.search('"bridge"')) == ["porto bridge.jpg"]
        assert _names(lib.search("in:Holidays")) == ["IMG_0001.jpg"]
        assert _keyword_hits(lib.search('"sydney"')) == []


def test_cli_and_json(trip: Path, cli) -> None:
    cli("index", str(trip))
    out = cli("search", "near:Lisbon", "--json").output
    hits = json.loads(out)
    assert [Path(h["path"]).name for h in hits] == ["IMG_0001.jpg"]
    assert hits[0]["score"] is None
    bad = cli("search", "beach", "nearby:Lisbon", expect=2)
    assert "unknown filter 'nearby' at position 7" in bad.stderr
    assert "Did you mean near:?" in bad.stderr


def _text_picture(words: str, size=(900, 300)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(56)  # Pillow's own font: no system fonts needed
    draw.text((40, 110), words, fill="black", font=font)
    return img


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed")
def test_ocr_makes_written_words_searchable(tmp_path: Path, lib_dir: Path, tiny_model: str):
    root = tmp_path / "scans"
    exif_jpeg(root / "scan1.jpg", 1, picture=_text_picture("INVOICE 2041 hardware"))
    exif_jpeg(root / "scan2.jpg", 2, picture=_text_picture("project plan"))
    exif_jpeg(root / "dog.jpg", 3)
    with Library.open(lib_dir, model=tiny_model) as lib:
        first = lib.index([root])  # OCR off: nothing is read
        assert first.texts_read == 0 and lib.search("text:invoice") == []
        assert first.facts_read == 0  # read with the pixels, EXIF or not: never twice
        summary = lib.index([root], ocr=True)  # turning it on reads every picture once
        assert summary.embedded == 0 and summary.texts_read == 3
        assert _names(lib.search("text:invoice")) == ["scan1.jpg"]
        assert _names(lib.search('text:"project plan"')) == ["scan2.jpg"]
        assert _keyword_hits(lib.search('"hardware"')) == ["scan1.jpg"]
        exif_jpeg(root / "scan3.jpg", 4, picture=_text_picture("invoice paid"))
        again = lib.index([root])  # remembered: the new picture is read
        assert again.texts_read == 1
        assert set(_names(lib.search("text:invoice"))) == {"scan1.jpg", "scan3.jpg"}


def test_ocr_without_tesseract_data_is_skipped_with_one_message(
    tmp_path: Path, lib_dir: Path, tiny_model: str, cli, monkeypatch
) -> None:
    # A language whose data is not installed stands for a machine without Tesseract's data.
    root = tmp_path / "scans"
    exif_jpeg(root / "scan1.jpg", 1, picture=_text_picture("INVOICE"))
    result = cli("index", str(root), "--ocr-lang", "xxx")
    assert "1 added" in result.stdout
    assert result.stderr.count("OCR skipped:") == 1 and "xxx" in result.stderr
    assert json.loads(cli("status", "--json").stdout)["ocr"] == "xxx"
