"""A file name that is not UTF-8 on the page: shown escaped, opened, and filtered by."""

from __future__ import annotations

import os

import pytest

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import make_image

pytestmark = pytest.mark.browser


def test_an_odd_file_name_is_shown_escaped_and_opens(browser, page, tmp_path, tiny_model):
    photos = tmp_path / "caf\udce9"  # a folder with a Latin-1 name, as an old drive has
    os.makedirs(os.fsencode(photos))
    raw = os.fsencode(photos) + b"/pr\xe9sent.jpg"
    os.rename(os.fsencode(make_image(tmp_path / "tmp.jpg", seed=3, size=(120, 90))), raw)
    with Library.open(tmp_path / "lib", model=tiny_model) as lib:
        lib.index([photos])
        with BackgroundServer(lib, ServerSettings(port=0)) as srv:
            page.goto(f"{srv.url}/")
            page.wait_for_selector("body[data-ready]")
            page.fill("#q", "a picture")
            page.wait_for_selector("#grid a.tile")
            page.click("#grid a.tile")
            page.wait_for_selector("#viewer[open]")
            assert page.text_content("#viewer-title") == "pr\\xe9sent.jpg"
            page.wait_for_function(
                "() => document.querySelector('#viewer-img').naturalWidth === 120"
            )
            shown = page.eval_on_selector_all(
                "#viewer .meta dd", "els => els.map(e => e.textContent)"
            )
            assert f"{tmp_path}/caf\\xe9/pr\\xe9sent.jpg" in shown
