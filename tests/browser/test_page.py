"""The web page in a real browser: search, search by image, the viewer, keys, phones, login."""

from __future__ import annotations

import base64
import re

import pytest

from tests.helpers import make_image, new_page

pytestmark = pytest.mark.browser


def open_page(page, url: str, hash_: str = "") -> None:
    page.goto(f"{url}/{hash_}")
    page.wait_for_selector("body[data-ready]")


def search_for(page, text: str) -> None:
    page.fill("#q", text)
    page.wait_for_function(
        """(q) => location.hash.includes("q=" + encodeURIComponent(q).replace(/%20/g, "+"))
                  && /result/.test(document.querySelector("#summary").textContent)""",
        arg=text,
    )


def tile_ids(page) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all("#grid a.tile", "els => els.map(e => e.dataset.id)")
    ]


def grid_columns(page) -> int:
    return page.evaluate(
        "() => getComputedStyle(document.querySelector('#grid'))"
        ".gridTemplateColumns.split(' ').length"
    )


def wait_thumbnails_loaded(page, n: int) -> None:
    page.wait_for_function(
        """(n) => {
            const imgs = [...document.querySelectorAll("#grid img")].slice(0, n);
            return imgs.length === n && imgs.every((i) => i.complete && i.naturalWidth > 0);
        }""",
        arg=n,
    )


def test_typing_a_query_shows_the_right_thumbnails(page, served):
    open_page(page, served.url)
    assert page.evaluate("document.activeElement.id") == "q"  # ready to type
    search_for(page, "a red circle")
    expected = [r.id for r in served.lib.search("a red circle", k=60)]
    assert tile_ids(page) == expected and len(expected) == 11
    wait_thumbnails_loaded(page, 6)
    assert page.text_content("#summary").startswith("11 results")
    # The score shows on hover (and in the tooltip).
    first = page.locator("#grid li").first
    first.hover()
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('#grid li .score')).opacity === '1'"
    )
    score = served.lib.search("a red circle", k=1)[0].score
    assert first.locator(".score").text_content() == f"{score:.3f}"
    assert f"score {score:.3f}" in first.locator("a.tile").get_attribute("title")


def _b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_upload_drop_or_paste_an_image_to_get_similar_ones(page, served, tmp_path):
    twin = make_image(tmp_path / "twin.png", seed=3, size=(160, 120))  # img3's pixels
    target = served.ids[str(served.photos / "img3.jpg")]
    open_page(page, served.url)
    page.set_input_files("#file", str(twin))
    page.wait_for_selector("#chips .chip.upload")
    page.wait_for_function("() => document.querySelector('#grid a.tile')")
    assert tile_ids(page)[0] == target
    assert page.locator("#chips .chip-label").first.text_content() == "twin.png"

    page.keyboard.press("Escape")  # clears the query
    page.wait_for_function("() => !document.querySelector('#grid a.tile')")
    other = make_image(tmp_path / "five.png", seed=5, size=(160, 120))
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "five.png", { type: "image/png" }));
            document.dispatchEvent(new DragEvent("dragenter", { dataTransfer: dt, bubbles: true }));
            const init = { dataTransfer: dt, bubbles: true, cancelable: true };
            document.dispatchEvent(new DragEvent("drop", init));
        }""",
        _b64(other),
    )
    page.wait_for_function("() => document.querySelector('#grid a.tile')")
    assert tile_ids(page)[0] == served.ids[str(served.photos / "img5.jpg")]
    assert page.locator("#dropzone").is_hidden()

    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.querySelector('#grid a.tile')")
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
            const init = { clipboardData: dt, bubbles: true, cancelable: true };
            document.dispatchEvent(new ClipboardEvent("paste", init));
        }""",
        _b64(twin),
    )
    page.wait_for_function("() => document.querySelector('#grid a.tile')")
    assert tile_ids(page)[0] == target


def test_a_file_that_is_not_an_image_is_refused_politely(page, served, tmp_path, page_errors):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    open_page(page, served.url)
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#toast.show")
    assert "not an image" in page.text_content("#toast")
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"not a jpeg either")
    page.set_input_files("#file", str(fake))
    page.wait_for_function("() => /cannot read/.test(document.querySelector('#toast').textContent)")
    assert page.locator("#chips .chip").count() == 0
    page_errors[:] = [e for e in page_errors if "status of 415" not in e]


def test_open_a_result_step_through_and_more_like_this(page, served):
    open_page(page, served.url)
    search_for(page, "green")
    results = served.lib.search("green", k=60)
    page.click("#grid li:first-child a.tile")
    page.wait_for_selector("#viewer[open]")
    assert page.text_content("#viewer-title") == results[0].path.rsplit("/", 1)[-1]
    page.wait_for_function(
        "(p) => [...document.querySelectorAll('#viewer .meta dd')].some(d => d.textContent === p)",
        arg=results[0].path,
    )
    page.wait_for_function("() => document.querySelector('#viewer-img').src.includes('/file')")
    page.wait_for_function("() => document.querySelector('#viewer-img').naturalWidth === 160")
    assert "1 / 11" in page.text_content("#viewer .counter")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('#viewer .counter').textContent === '2 / 11'"
    )
    assert page.text_content("#viewer-title") == results[1].path.rsplit("/", 1)[-1]
    page.keyboard.press("m")  # more like the image on screen
    page.wait_for_selector("#viewer", state="hidden")
    page.wait_for_function(f"() => location.hash.includes('like={results[1].id}')")
    page.wait_for_function("() => /result/.test(document.querySelector('#summary').textContent)")
    page.wait_for_function("(n) => document.querySelectorAll('#grid a.tile').length === n", arg=10)
    assert tile_ids(page) == [r.id for r in served.lib.search(like=results[1].id, k=60)]
    assert page.locator("#chips .chip.like").count() == 1
    page.go_back()  # back to the text search
    page.wait_for_function("() => document.querySelector('#q').value === 'green'")
    page.wait_for_function("(n) => document.querySelectorAll('#grid a.tile').length === n", arg=11)


def test_keyboard_only(page, served):
    open_page(page, served.url, "#/search?q=blue")
    page.wait_for_function("() => document.querySelectorAll('#grid a.tile').length === 11")
    page.locator("body").click(position={"x": 5, "y": 780})  # focus away from the box
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.index") == "0"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.index") == "2"
    cols = grid_columns(page)
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.index") == str(min(2 + cols, 10))
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    page.wait_for_selector("#viewer[open]")
    assert "3 / 11" in page.text_content("#viewer .counter")
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")
    assert page.evaluate("document.activeElement.dataset.index") == "2"  # focus comes back
    page.keyboard.press("?")
    page.wait_for_selector("#help[open]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#help", state="hidden")
    page.keyboard.press("f")
    assert page.locator("#filters").is_visible()
    assert page.evaluate("document.activeElement.id") == "not"  # the first filter


def test_filters_narrow_the_results_and_live_in_the_url(page, served):
    sub = str(served.photos / "sub")
    open_page(page, served.url)
    search_for(page, "circle")
    page.click("#toggle-filters")
    page.fill("#folder", sub)
    page.wait_for_function("() => document.querySelectorAll('#grid a.tile').length === 3")
    expected = [r.id for r in served.lib.search("circle", k=60, within=[sub])]
    assert tile_ids(page) == expected
    assert "folder=" in page.evaluate("location.hash")
    page.select_option("#source", "generated")
    page.wait_for_function(
        "() => /No results/.test(document.querySelector('#summary').textContent)"
    )
    # A link with the filters in it opens the same search.
    link = page.evaluate("location.href")
    page.goto("about:blank")
    page.goto(link)
    page.wait_for_selector("body[data-ready]")
    page.wait_for_function(
        "() => /No results/.test(document.querySelector('#summary').textContent)"
    )
    assert page.input_value("#folder") == sub and page.input_value("#source") == "generated"
    assert page.locator("#filters").is_visible()


def test_works_on_a_phone_sized_screen(browser, served, page_errors):
    context, page = new_page(
        browser,
        page_errors,
        viewport={"width": 375, "height": 667},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    try:
        open_page(page, served.url, "#/search?q=a+boat")
        page.wait_for_function("() => document.querySelectorAll('#grid a.tile').length === 11")
        wait_thumbnails_loaded(page, 3)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        cols = grid_columns(page)
        assert cols >= 3
        # No hover on a phone: scores are always visible.
        assert (
            page.evaluate("getComputedStyle(document.querySelector('#grid .score')).opacity") == "1"
        )
        page.locator("#grid a.tile").first.tap()
        page.wait_for_selector("#viewer[open]")
        box = page.locator("#viewer").bounding_box()
        assert box["width"] >= 370
        assert page.locator("#viewer button.primary").is_visible()
    finally:
        context.close()
    assert page_errors == []


def test_library_page(page, served):
    open_page(page, served.url)
    page.click("#nav a[data-page=library]")
    page.wait_for_selector(".library-page .facts")
    text = page.text_content(".library-page")
    assert "11 (11 photos, 0 generated)" in text and served.lib.model in text
    page.click(".library-page .roots a")
    page.wait_for_function("() => location.hash.startsWith('#/search')")
    assert page.input_value("#folder") == str(served.photos)


def test_login_with_the_token(browser, served_with_token):
    errors: list[str] = []
    context, page = new_page(browser, errors, viewport={"width": 1000, "height": 700})
    try:
        page.goto(served_with_token.url + "/")
        page.wait_for_selector("#login[open]")
        page.fill("#login-token", "wrong-token-wrong-token")
        page.click("#login button[type=submit]")
        page.wait_for_function("() => document.querySelector('#login-error').textContent !== ''")
        page.fill("#login-token", served_with_token.token)
        page.click("#login button[type=submit]")
        page.wait_for_selector("body[data-ready]")
        search_for(page, "sunset")
        wait_thumbnails_loaded(page, 3)  # the images load with the session cookie
    finally:
        context.close()
    # A link with ?token= logs in once and drops the token from the address bar.
    context, page = new_page(browser, errors)
    try:
        page.goto(f"{served_with_token.url}/?token={served_with_token.token}#/search?q=sunset")
        page.wait_for_selector("body[data-ready]")
        page.wait_for_function("() => document.querySelectorAll('#grid a.tile').length === 11")
        assert "token" not in page.evaluate("location.href")
        assert page.locator("#login").is_hidden()
    finally:
        context.close()
    assert [e for e in errors if not re.search(r"status of 401", e)] == []
