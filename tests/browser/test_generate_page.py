"""The generation page in a real browser: prompts in, live progress, the picture, then search."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clipsearch import Library
from clipsearch.demo import shapes
from clipsearch.server import BackgroundServer, ServerSettings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen-page")
    shapes.write_collection(root / "photos", 6, seed=9, size=64)
    lib = Library.open(root / "library", model="tiny-shapes", threads=1)
    lib.index([root / "photos"])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        yield SimpleNamespace(url=srv.url, lib=lib)
    lib.close()


def test_generate_watch_progress_and_find_it_by_search(page, served_shapes):
    page.goto(f"{served_shapes.url}/#/generate")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#gen-prompts")
    assert page.locator("#nav").get_by_text("Generate").count() == 1
    page.fill("#gen-prompts", "a red circle on a white background")
    page.fill("#gen-steps", "30")
    page.fill("#gen-seed", "7")
    page.click("#gen-start")
    # Live progress: the step counter moves and a preview frame appears while it runs.
    page.wait_for_function(
        "() => /Step [1-9]\\d* of 30/.test(document.querySelector('#gen-status').textContent)"
    )
    page.wait_for_selector("#gen-image", timeout=240_000)
    assert "Done" in page.text_content("#gen-status")
    page.wait_for_function("() => document.querySelector('#gen-image').naturalWidth === 64")
    (row,) = served_shapes.lib.store.rows_under([str(served_shapes.lib.path)]).values()
    assert row.source == "generated"
    page.click("#gen-search")
    page.wait_for_function(
        "() => location.hash.startsWith('#/search') && location.hash.includes('source=generated')"
    )
    page.wait_for_selector("#grid a.tile")
    ids = page.eval_on_selector_all("#grid a.tile", "els => els.map(e => +e.dataset.id)")
    assert ids[0] == row.id


def test_bad_prompt_is_explained_on_the_page(page, served_shapes, page_errors):
    page.goto(f"{served_shapes.url}/#/generate")
    page.wait_for_selector("#gen-prompts")
    page.fill("#gen-prompts", "sunset:lots")
    page.click("#gen-start")
    page.wait_for_function(
        "() => /bad weight/.test(document.querySelector('#gen-status').textContent)"
    )
    assert page.locator("#gen-progress").is_hidden()
    page_errors[:] = [e for e in page_errors if "status of 400" not in e]  # the answer itself
