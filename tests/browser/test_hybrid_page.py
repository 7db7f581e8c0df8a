"""The search page and the query language: filter chips from the query text, the controls that
write into it, parse errors, the automatic cutoff with "show more", keyword marks, and the
viewer's place, camera and map link. Real JPEGs with real EXIF, the tiny model, a real server."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import exif_jpeg, make_image

pytestmark = pytest.mark.browser

LISBON = (38.7223, -9.1393)
PARIS = (48.8566, 2.3522)
CUT_FLOOR = 12  # the page never cuts the list below this many (search.js)
FILLERS = 13


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("hybrid-page")
    photos = root / "photos"
    tram = exif_jpeg(
        photos / "Trips" / "tram.jpg",
        1,
        at=LISBON,
        make="Google",
        model="Pixel 7",
        taken="2023:07:14 10:00:00",
    )
    tower = exif_jpeg(
        photos / "Trips" / "tower.jpg",
        2,
        at=PARIS,
        make="Canon",
        model="Canon EOS 5D Mark IV",
        taken="2021:05:01 09:00:00",
    )
    cat = exif_jpeg(photos / "Home" / "cat.jpg", 3)  # no EXIF: dated by its mtime (today)
    for i in range(FILLERS):
        make_image(photos / "Misc" / f"misc{i:02}.jpg", seed=100 + i, size=(120, 90))
    lib = Library.open(root / "library", model=tiny_model)
    lib.index([photos])
    rows = lib.store.rows_under([str(photos)])
    with (
        BackgroundServer(lib, ServerSettings(port=0)) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as http,
    ):
        yield SimpleNamespace(
            url=srv.url,
            http=http,
            lib=lib,
            tram=rows[str(tram)].id,
            tower=rows[str(tower)].id,
            cat=rows[str(cat)].id,
            total=3 + FILLERS,
        )
    lib.close()


def text_picture(lines: list[str]) -> Image.Image:
    img = Image.new("RGB", (1100, 90 + 70 * len(lines)), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(48)  # Pillow's own font: no system fonts needed
    for i, line in enumerate(lines):
        draw.text((40, 40 + 70 * i), line, fill="black", font=font)
    return img


@pytest.fixture(scope="module")
def scans(tmp_path_factory, tiny_model):
    """A small library indexed with OCR (real Tesseract): a short note and a long page."""
    if shutil.which("tesseract") is None:
        pytest.skip("Tesseract is not installed")
    root = tmp_path_factory.mktemp("hybrid-scans")
    note = exif_jpeg(root / "scans" / "note.jpg", 1, picture=text_picture(["INVOICE 2041"]))
    page_lines = [
        "Minutes of the garden committee",
        "The hedge along the north wall",
        "will be trimmed before the summer",
        "and the shed door gets a new lock",
        "Next meeting on the first Monday",
    ]
    letter = exif_jpeg(root / "scans" / "letter.jpg", 2, picture=text_picture(page_lines))
    lib = Library.open(root / "library", model=tiny_model)
    lib.index([root / "scans"], ocr=True)
    rows = lib.store.rows_under([str(root / "scans")])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        yield SimpleNamespace(url=srv.url, note=rows[str(note)].id, letter=rows[str(letter)].id)
    lib.close()


def open_search(page, served, hash_: str = "#/search") -> None:
    page.goto(f"{served.url}/{hash_}")
    page.wait_for_selector("body[data-ready]")


def type_query(page, text: str) -> None:
    """Type into the box; wait until the page has searched (or refused) that very text."""
    page.fill("#q", text)
    wait_searched(page, text)


def wait_searched(page, text: str) -> None:
    page.wait_for_function(
        """(q) => document.querySelector("#q").value === q
              && !document.body.classList.contains("busy")
              && (/result/.test(document.querySelector("#summary").textContent)
                  || !document.querySelector("#query-error").hidden)
              && new URLSearchParams(location.hash.split("?")[1] || "").get("q") === q""",
        arg=text,
    )


def tile_ids(page) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all("#grid a.tile", "els => els.map(e => e.dataset.id)")
    ]


def chips(page) -> list[str]:
    return page.eval_on_selector_all(
        "#filter-chips .chip .chip-label", "els => els.map(e => e.textContent)"
    )


def test_chips_follow_the_query_text_and_remove_exactly_their_filter(page, served):
    open_search(page, served)
    type_query(page, "near:Lisbon after:2023")
    page.wait_for_function("() => document.querySelectorAll('#filter-chips .chip').length === 2")
    assert chips(page) == ["near Lisbon, Portugal", "after 2023"]
    assert tile_ids(page) == [served.tram]
    # Filters only: newest first, no score to show.
    assert page.text_content("#grid .score") == "—"
    assert page.get_attribute("#grid a.tile", "title") == "tram.jpg"

    # The × of the near chip takes "near:Lisbon" out of the box, and the results widen.
    page.click("#filter-chips .chip[data-key=near] button")
    wait_searched(page, "after:2023")
    assert chips(page) == ["after 2023"]
    ids = tile_ids(page)
    assert served.tram in ids and served.cat in ids and served.tower not in ids
    assert len(ids) == served.total - 1  # everything but the 2021 picture
    assert page.evaluate("document.activeElement.id") == "q"

    # The date control shows the filter written in the text.
    page.click("#toggle-filters")
    assert page.input_value("#after") == "2023-01-01"


def test_the_controls_write_filters_into_the_query_text(page, served):
    open_search(page, served, "#/search?q=a+photo")
    wait_searched(page, "a photo")
    page.click("#toggle-filters")
    page.fill("#camera", "pixel")
    page.press("#camera", "Enter")
    wait_searched(page, "a photo camera:pixel")
    assert chips(page) == ["camera pixel"]
    assert tile_ids(page) == [served.tram]

    # A place with a space is quoted; changing a control replaces its filter in place.
    page.fill("#near", "Paris, FR")
    page.press("#near", "Enter")
    wait_searched(page, 'a photo camera:pixel near:"Paris, FR"')
    assert "No results" in page.text_content("#summary")
    page.fill("#camera", "canon")
    page.press("#camera", "Enter")
    wait_searched(page, 'a photo camera:canon near:"Paris, FR"')
    assert chips(page) == ["camera canon", "near Paris, Île-de-France, France"]
    assert tile_ids(page) == [served.tower]

    # Emptying a control takes its filter out; a date control writes a date.
    page.fill("#camera", "")
    page.press("#camera", "Enter")
    wait_searched(page, 'a photo near:"Paris, FR"')
    page.fill("#near", "")
    page.press("#near", "Enter")
    wait_searched(page, "a photo")
    page.fill("#before", "2022-01-01")
    wait_searched(page, "a photo before:2022-01-01")
    assert chips(page) == ["before 2022-01-01"]
    assert tile_ids(page) == [served.tower]
    # The query text is what a link keeps.
    assert "before%3A2022-01-01" in page.evaluate("location.hash")


def test_a_bad_filter_shows_the_parsers_message_and_hint(page, served):
    open_search(page, served)
    type_query(page, "tram nar:Lisbon")
    error = page.locator("#query-error")
    assert error.is_visible()
    text = error.text_content()
    assert "unknown filter 'nar' at position 6" in text
    assert "Did you mean near:?" in text
    assert page.text_content("#query-error mark") == "nar:Lisbon"
    assert page.get_attribute("#q", "aria-invalid") == "true"
    assert page.locator("#filter-chips .chip").count() == 0
    # Fixed: the error goes, the chip comes, the search runs.
    type_query(page, "tram near:Lisbon")
    assert page.locator("#query-error").is_hidden()
    assert chips(page) == ["near Lisbon, Portugal"]
    assert tile_ids(page) == [served.tram]


def test_quoted_words_mark_keyword_hits(page, served):
    open_search(page, served)
    type_query(page, 'a picture "tram"')
    ids = tile_ids(page)
    assert served.tram in ids
    marked = page.eval_on_selector_all(
        "#grid a.tile:has(.kw)", "els => els.map(e => Number(e.dataset.id))"
    )
    assert marked == [served.tram]
    badge = page.locator(f"#grid a.tile[data-id='{served.tram}'] .kw")
    assert badge.text_content() == "≡ keyword" and "quoted words" in badge.get_attribute("title")


def _ids(answer: dict) -> list[int]:
    return [r["id"] for r in answer["results"]]


def test_the_cutoff_and_show_more(page, served):
    # Find, through the API, a query whose automatic cutoff leaves fewer than the page's floor
    # (the tiny model's scores are arbitrary but fixed).
    chosen = None
    queries = "a photo|a red circle|a boat|blue|sunset|green|the sea|a cat|mountains|a dog|text"
    for q in queries.split("|"):
        cut = served.http.get("/api/search", params={"q": q, "k": 60, "cutoff": "auto"}).json()
        full = served.http.get("/api/search", params={"q": q, "k": 60}).json()
        if max(cut["count"], CUT_FLOOR) < full["count"]:
            chosen = q, _ids(cut), _ids(full)
            break
    assert chosen, "no query was cut by the automatic cutoff"
    q, cut_ids, full_ids = chosen
    shown = max(len(cut_ids), CUT_FLOOR)
    assert len(full_ids) == served.total

    open_search(page, served)
    type_query(page, q)
    assert tile_ids(page) == full_ids[:shown]
    more = page.locator("#show-more")
    assert more.is_visible() and more.text_content() == f"Show {served.total - shown} more"
    assert page.text_content("#summary").startswith(f"{shown} results")
    # Scores show for a semantic search.
    first = served.lib.search(q, k=1)[0]
    assert page.text_content("#grid .score") == f"{first.score:.3f}"
    more.click()
    page.wait_for_function(
        "(n) => document.querySelectorAll('#grid a.tile').length === n", arg=served.total
    )
    assert tile_ids(page) == full_ids
    assert more.is_hidden()
    assert page.text_content("#summary").startswith(f"{served.total} results")

    # A list that was not cut has no button.
    type_query(page, "a photo near:Lisbon")
    assert tile_ids(page) == [served.tram]
    assert page.locator("#show-more").is_hidden()


def test_the_viewer_shows_place_camera_and_a_map_link(page, served):
    open_search(page, served, "#/search?q=near%3ALisbon")
    wait_searched(page, "near:Lisbon")
    page.click(f"#grid a.tile[data-id='{served.tram}']")
    page.wait_for_selector("#viewer[open]")
    page.wait_for_selector("#viewer .meta a.map-link")
    meta = page.text_content("#viewer .meta")
    assert "Lisbon, Portugal" in meta and "Google Pixel 7" in meta
    link = page.locator("#viewer .meta a.map-link")
    href = link.get_attribute("href")
    assert href.startswith("https://www.openstreetmap.org/?mlat=38.722")
    assert "mlon=-9.139" in href
    assert link.get_attribute("target") == "_blank" and link.get_attribute("rel") == "noopener"
    assert page.text_content("#viewer .viewer-score") == ""  # no score for filters only
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")

    # A picture without GPS or camera has no such rows.
    type_query(page, "in:Home")
    page.click(f"#grid a.tile[data-id='{served.cat}']")
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#viewer .meta dt')].some(d => d.textContent === 'Id')"
    )
    labels = page.eval_on_selector_all("#viewer .meta dt", "els => els.map(e => e.textContent)")
    assert "Place" not in labels and "Camera" not in labels and "Text" not in labels


def test_text_in_pictures_the_control_and_the_viewer(page, scans):
    open_search(page, scans)
    page.click("#toggle-filters")
    page.fill("#in-text", "invoice")
    page.press("#in-text", "Enter")
    wait_searched(page, "text:invoice")
    assert chips(page) == ["text invoice"]
    assert tile_ids(page) == [scans.note]
    page.click("#grid a.tile")
    page.wait_for_selector("#viewer[open]")
    page.wait_for_selector("#viewer .meta .ocr")
    assert "INVOICE 2041" in page.text_content("#viewer .meta .ocr")
    assert page.locator("#viewer .meta details.ocr").count() == 0  # short: shown as it is
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")

    # A long text starts folded behind its first words; a click opens it.
    type_query(page, 'text:"garden committee"')
    assert tile_ids(page) == [scans.letter]
    page.click("#grid a.tile")
    page.wait_for_selector("#viewer .meta details.ocr")
    folded = page.locator("#viewer .meta details.ocr")
    assert not folded.evaluate("d => d.open")
    assert folded.locator("summary").text_content().startswith("Minutes of the garden")
    assert not folded.locator(".ocr-full").is_visible()
    folded.locator("summary").click()
    assert folded.locator(".ocr-full").is_visible()
    assert "new lock" in folded.locator(".ocr-full").text_content()
