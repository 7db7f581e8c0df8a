"""The viewer in a real browser: the whole picture in view (portrait or panorama, desktop or
phone), its title and close button never covered, and swiping between results."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import make_image, new_page

pytestmark = pytest.mark.browser

FRAME = (255, 0, 255)  # a magenta border around the test pictures, found again on screen
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}


def framed(path, size: tuple[int, int], seed: int):
    """A picture with a random inside and an 8 px magenta frame (only the frame is magenta)."""
    make_image(path, seed=seed, size=size)
    arr = np.asarray(Image.open(path).convert("RGB")).copy()
    arr[..., 1] = np.maximum(arr[..., 1], 90)  # nothing inside looks like the frame
    arr[:8], arr[-8:], arr[:, :8], arr[:, -8:] = FRAME, FRAME, FRAME, FRAME
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("viewer")
    photos = root / "photos"
    portrait = framed(photos / "portrait.png", (220, 530), seed=1)
    panorama = framed(photos / "panorama.png", (1200, 240), seed=2)
    for i in range(4):
        make_image(photos / f"img{i}.jpg", seed=10 + i, size=(160, 120))
    lib = Library.open(root / "library", model=tiny_model)
    lib.index([photos])
    rows = lib.store.rows_under([str(photos)])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        yield SimpleNamespace(
            url=srv.url,
            lib=lib,
            portrait=rows[str(portrait)].id,
            panorama=rows[str(panorama)].id,
        )
    lib.close()


@pytest.fixture
def open_context(browser):
    """new_context(**args) -> page; every context is closed, and no page may log an error."""
    made, errors = [], []

    def make(**args):
        context, page = new_page(browser, errors, **args)
        made.append(context)
        return page

    yield make
    for context in made:
        context.close()
    assert errors == []


def open_viewer_on(page, served, image_id: int, natural: tuple[int, int]) -> None:
    page.goto(f"{served.url}/#/search?q=a+picture")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_function("() => document.querySelectorAll('#grid a.tile').length === 6")
    tile = page.locator(f"#grid a.tile[data-id='{image_id}']")
    if page.evaluate("matchMedia('(pointer: coarse)').matches"):
        tile.tap()
    else:
        tile.click()
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function(
        """([w, h]) => {
            const img = document.querySelector('#viewer-img');
            return img.src.includes('/file') && img.complete
                && img.naturalWidth === w && img.naturalHeight === h;
        }""",
        arg=list(natural),
    )


PICTURE_BOX = """() => {
    // Where the picture itself is drawn: the img's box, less object-fit's letterboxing.
    const img = document.querySelector('#viewer-img');
    const box = img.getBoundingClientRect();
    const fit = getComputedStyle(img).objectFit;
    const nw = img.naturalWidth, nh = img.naturalHeight;
    let scale = null;
    if (fit === 'contain') scale = Math.min(box.width / nw, box.height / nh);
    else if (fit === 'scale-down') scale = Math.min(1, box.width / nw, box.height / nh);
    else if (fit === 'cover') scale = Math.max(box.width / nw, box.height / nh);
    else if (fit === 'none') scale = 1;
    const w = scale === null ? box.width : nw * scale;
    const h = scale === null ? box.height : nh * scale;
    const fig = document.querySelector('.viewer-figure').getBoundingClientRect();
    return {
        left: box.left + (box.width - w) / 2, top: box.top + (box.height - h) / 2,
        width: w, height: h, element: [box.left, box.top, box.right, box.bottom],
        figure: [fig.left, fig.top, fig.right, fig.bottom], natural: [nw, nh],
        viewport: [innerWidth, innerHeight],
    };
}"""


def assert_whole_picture_visible(page) -> None:
    page.wait_for_timeout(300)  # let any transition settle
    pic = page.evaluate(PICTURE_BOX)
    left, top = pic["left"], pic["top"]
    right, bottom = left + pic["width"], top + pic["height"]
    vw, vh = pic["viewport"]
    nw, nh = pic["natural"]
    # Inside the viewport, inside the img's own box (nothing cropped by object-fit) and
    # inside the frame that clips it.
    assert left >= -0.5 and top >= -0.5 and right <= vw + 0.5 and bottom <= vh + 0.5, pic
    el, fig = pic["element"], pic["figure"]
    assert left >= el[0] - 0.5 and top >= el[1] - 0.5, pic
    assert right <= el[2] + 0.5 and bottom <= el[3] + 0.5, pic
    assert left >= fig[0] - 0.5 and top >= fig[1] - 0.5, pic
    assert right <= fig[2] + 0.5 and bottom <= fig[3] + 0.5, pic
    assert pic["width"] / pic["height"] == pytest.approx(nw / nh, rel=0.01), pic
    assert pic["width"] >= min(nw, vw) * 0.5 or pic["height"] >= min(nh, vh) * 0.4, pic
    # And on screen: the magenta frame is all there, where the picture is said to be.
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(scale="css"))).convert("RGB"))
    magenta = (shot[..., 0] > 200) & (shot[..., 1] < 70) & (shot[..., 2] > 200)
    ys, xs = np.nonzero(magenta)
    assert len(xs), "the picture's frame is not on screen"
    assert xs.min() == pytest.approx(left, abs=3) and xs.max() + 1 == pytest.approx(right, abs=3)
    assert ys.min() == pytest.approx(top, abs=3) and ys.max() + 1 == pytest.approx(bottom, abs=3)
    for edge in (magenta[ys.min()], magenta[ys.max()], magenta[:, xs.min()], magenta[:, xs.max()]):
        assert edge.sum() >= 0.8 * (
            (xs.max() - xs.min()) if edge.shape[0] == magenta.shape[1] else (ys.max() - ys.min())
        ), "an edge of the picture is hidden"


def assert_not_covered(page, selector: str) -> None:
    """The element is on screen and is what a tap at its centre reaches."""
    hit = page.evaluate(
        """(sel) => {
            const el = document.querySelector(sel);
            const r = el.getBoundingClientRect();
            const x = r.left + r.width / 2, y = r.top + r.height / 2;
            const top = document.elementFromPoint(x, y);
            return {
                inside: r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0
                        && r.right <= innerWidth && r.bottom <= innerHeight,
                reached: Boolean(top && (top === el || el.contains(top))),
                top: top ? top.outerHTML.slice(0, 80) : null,
            };
        }""",
        selector,
    )
    assert hit["inside"], f"{selector} is not inside the viewport"
    assert hit["reached"], f"{selector} is covered by {hit['top']}"


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_the_whole_picture_shows_and_the_controls_stay_usable(open_context, served, screen):
    page = open_context(**(DESKTOP if screen == "desktop" else PHONE))
    for image_id, natural in ((served.portrait, (220, 530)), (served.panorama, (1200, 240))):
        open_viewer_on(page, served, image_id, natural)
        assert_whole_picture_visible(page)
        assert page.text_content("#viewer-title") == (
            "portrait.png" if image_id == served.portrait else "panorama.png"
        )
        assert_not_covered(page, "#viewer-title")
        assert_not_covered(page, "#viewer .close")
        if screen == "phone":
            # The metadata scrolls under the title; the title and close button stay put.
            page.locator("#viewer .meta dd").last.scroll_into_view_if_needed()
            assert page.locator("#viewer .meta dd").last.is_visible()
            assert_not_covered(page, "#viewer-title")
            assert_not_covered(page, "#viewer .close")
            assert_whole_picture_visible(page)
            page.locator("#viewer .close").tap()
        else:
            page.locator("#viewer .close").click()
        page.wait_for_selector("#viewer", state="hidden")


def swipe(page, cdp, dx: float, dy: float = 0) -> None:
    """A finger drawn across the picture (real touch input, through the browser)."""
    box = page.evaluate(
        "() => { const r = document.querySelector('.viewer-figure').getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; }"
    )
    x0, y0 = box[0] - dx / 2, box[1] - dy / 2
    point = lambda x, y: {"touchPoints": [{"x": x, "y": y, "id": 1}]}  # noqa: E731
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", **point(x0, y0)})
    for i in range(1, 9):
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchMove", **point(x0 + dx * i / 8, y0 + dy * i / 8)},
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def counter(page) -> str:
    return page.text_content("#viewer .counter")


def test_swipe_moves_between_pictures(open_context, served):
    page = open_context(**PHONE)
    cdp = page.context.new_cdp_session(page)
    page.goto(f"{served.url}/#/search?q=a+picture")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_function("() => document.querySelectorAll('#grid a.tile').length === 6")
    names = [r.path.rsplit("/", 1)[-1] for r in served.lib.search("a picture", k=60)]
    page.locator("#grid a.tile").first.tap()
    page.wait_for_selector("#viewer[open]")
    assert counter(page) == "1 / 6" and page.text_content("#viewer-title") == names[0]
    swipe(page, cdp, -200)  # right to left: the next picture
    page.wait_for_function(
        "() => document.querySelector('#viewer .counter').textContent === '2 / 6'"
    )
    assert page.text_content("#viewer-title") == names[1]
    swipe(page, cdp, -200)
    page.wait_for_function(
        "() => document.querySelector('#viewer .counter').textContent === '3 / 6'"
    )
    swipe(page, cdp, 200)  # left to right: back
    page.wait_for_function(
        "() => document.querySelector('#viewer .counter').textContent === '2 / 6'"
    )
    assert page.text_content("#viewer-title") == names[1]
    # A mostly vertical drag, or a short one, is not a swipe.
    swipe(page, cdp, -60, 260)
    swipe(page, cdp, -20)
    page.wait_for_timeout(300)
    assert counter(page) == "2 / 6"
    # Past the first picture there is nothing: it stays on the first.
    swipe(page, cdp, 200)
    page.wait_for_function(
        "() => document.querySelector('#viewer .counter').textContent === '1 / 6'"
    )
    swipe(page, cdp, 200)
    page.wait_for_timeout(300)
    assert counter(page) == "1 / 6" and page.text_content("#viewer-title") == names[0]
    # The picture follows the finger, then settles back in place.
    transform = page.evaluate("getComputedStyle(document.querySelector('#viewer-img')).transform")
    assert transform in ("none", "matrix(1, 0, 0, 1, 0, 0)")
