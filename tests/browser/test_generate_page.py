"""The generation page in a real browser: prompts in, live progress, the picture, then search;
the transformer drawer's candidates with their CLIP scores, the best kept."""

from __future__ import annotations

import base64
import json
import re
from contextlib import contextmanager
from io import BytesIO
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.demo import shapes
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import make_image

pytestmark = pytest.mark.browser

CLI_FLAG = re.compile(r"(?<![\w-])--[a-z]")  # `--vqgan`, `--drawer`, `--size`: the CLI's words


@contextmanager
def _shapes_server(root):
    """A tiny-shapes library of six shapes pictures (it has the shipped VQGAN and
    transformer), served."""
    shapes.write_collection(root / "photos", 6, seed=9, size=64)
    lib = Library.open(root / "library", model="tiny-shapes", threads=1)
    lib.index([root / "photos"])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        yield SimpleNamespace(url=srv.url, lib=lib)
    lib.close()


@pytest.fixture(scope="module")
def served_shapes(tmp_path_factory):
    with _shapes_server(tmp_path_factory.mktemp("gen-page")) as served:
        yield served


@pytest.fixture(scope="module")
def served_for_candidates(tmp_path_factory):
    """Its own library: the picture the transformer adds is the only generated one."""
    with _shapes_server(tmp_path_factory.mktemp("gen-page-candidates")) as served:
        yield served


@pytest.fixture(scope="module")
def served_other_model(tmp_path_factory, tiny_model):
    """A library whose model is not tiny-shapes: clipsearch ships no VQGAN for it."""
    root = tmp_path_factory.mktemp("gen-page-other")
    for i in range(3):
        make_image(root / "photos" / f"img{i}.jpg", seed=i)
    lib = Library.open(root / "library", model=tiny_model, threads=1)
    lib.index([root / "photos"])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        yield SimpleNamespace(url=srv.url, lib=lib)
    lib.close()


def status_text(page) -> str:
    return page.text_content("#gen-status") or ""


def wait_error(page) -> str:
    page.wait_for_function(
        "() => document.querySelector('#gen-status').classList.contains('error')"
        " && document.querySelector('#gen-status').textContent.length > 0"
    )
    return status_text(page)


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


def test_no_vqgan_for_the_model_the_page_offers_pixels_and_says_so_in_its_terms(
    page, served_other_model, page_errors
):
    page.goto(f"{served_other_model.url}/#/generate")
    page.wait_for_selector("body[data-ready]")
    # The drawer control offers both; Pixels is chosen, and the note says why.
    page.wait_for_selector("#gen-drawer-note:not([hidden])")
    options = page.eval_on_selector_all(
        "#gen-drawer option", "els => els.map(o => [o.value, o.textContent])"
    )
    assert [v for v, _ in options] == ["vqgan", "pixel"]
    assert "not available" in dict(options)["vqgan"]
    assert page.input_value("#gen-drawer") == "pixel"
    note = page.text_content("#gen-drawer-note")
    assert "No VQGAN for this library's model" in note and "Pixels" in note
    assert "tiny-shapes" in page.get_attribute("#gen-drawer-note", "title")
    assert page.locator("#gen-cancel").is_hidden()  # nothing to cancel
    # Choosing VQGAN anyway: refused before anything starts, in the page's words, and the
    # Drawer control is marked and focused.
    page.select_option("#gen-drawer", "vqgan")
    page.fill("#gen-prompts", "a red circle")
    page.fill("#gen-steps", "3")
    page.click("#gen-start")
    text = wait_error(page)
    assert "VQGAN" in text and "“Pixels” under Drawer" in text, text
    assert not CLI_FLAG.search(text) and "clipsearch generate" not in text, text
    assert page.get_attribute("#gen-drawer", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "gen-drawer"
    assert page.locator("#gen-progress").is_hidden()
    assert all(
        j["state"] != "running"
        for j in page.request.get(f"{served_other_model.url}/api/generate").json()
    )
    # Pixels, as the page suggests: it runs, and the mark goes.
    page.select_option("#gen-drawer", "pixel")
    assert page.get_attribute("#gen-drawer", "aria-invalid") is None
    page.click("#gen-start")
    page.wait_for_selector("#gen-image", timeout=240_000)
    assert "Done" in status_text(page)
    page_errors[:] = [e for e in page_errors if "status of 400" not in e]


def test_a_size_the_vqgan_cannot_make_points_at_size(page, served_shapes, page_errors):
    page.goto(f"{served_shapes.url}/#/generate")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#gen-prompts")
    page.wait_for_function("() => document.querySelector('#gen-drawer').value === 'vqgan'")
    assert page.locator("#gen-drawer-note").is_hidden()  # tiny-shapes has its VQGAN
    page.fill("#gen-prompts", "a red circle")
    page.fill("#gen-size", "66x64")
    page.click("#gen-start")
    text = wait_error(page)
    assert "multiples of 4" in text and "Try 64x64 under Size" in text, text
    assert not CLI_FLAG.search(text), text
    assert page.get_attribute("#gen-size", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "gen-size"
    # Out of range: said on the page, before asking the server.
    page.fill("#gen-size", "4000x64")
    page.click("#gen-start")
    page.wait_for_function(
        "() => /out of range/.test(document.querySelector('#gen-status').textContent)"
    )
    assert not CLI_FLAG.search(status_text(page))
    # Only spaces as a prompt: the Prompts box is pointed at.
    page.fill("#gen-size", "")
    page.fill("#gen-prompts", "   ")
    page.click("#gen-start")
    page.wait_for_function(
        "() => /no prompt given/i.test(document.querySelector('#gen-status').textContent)"
    )
    assert page.get_attribute("#gen-prompts", "aria-invalid") == "true"
    assert not CLI_FLAG.search(status_text(page))
    page_errors[:] = [e for e in page_errors if "status of 400" not in e]


def test_transformer_candidates_are_shown_with_their_clip_scores_and_the_best_is_kept(
    page, served_for_candidates
):
    lib = served_for_candidates.lib
    page.goto(f"{served_for_candidates.url}/#/generate")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#gen-prompts")
    drawers = page.eval_on_selector_all("#gen-drawer option", "els => els.map(o => o.value)")
    assert drawers == ["vqgan", "pixel", "transformer", "transformer+vqgan"]
    page.select_option("#gen-drawer", "transformer")
    page.fill("#gen-prompts", "a red circle on a white background")
    page.fill("#gen-seed", "5")
    page.fill("#gen-candidates", "4")
    page.evaluate(  # every status the page shows, however briefly
        "() => { window.seenStatus = []; const s = document.querySelector('#gen-status');"
        " new MutationObserver(() => window.seenStatus.push(s.textContent))"
        ".observe(s, {childList: true, characterData: true, subtree: true}); }"
    )
    page.click("#gen-start")
    page.wait_for_selector("#gen-candidates-list", timeout=120_000)
    page.wait_for_selector("#gen-image")
    seen = page.evaluate("() => window.seenStatus")
    assert "Drawing 4 candidates…" in seen, seen  # while sampling: no "Step 0 of 0"
    assert not any(s.startswith("Step ") for s in seen), seen
    status = status_text(page)
    assert status.startswith("Done: best of 4 candidates, CLIP score "), status
    assert "refined" not in status  # no VQGAN steps with this drawer

    # Four candidates, best first, each with its CLIP score; only the first is kept.
    figures = page.locator("#gen-candidates-list figure.gen-candidate")
    assert figures.count() == 4
    captions = [figures.nth(i).locator("figcaption").inner_text() for i in range(4)]
    scores = [float(c.split(" ")[0]) for c in captions]
    assert scores == sorted(scores, reverse=True), captions
    assert captions[0].endswith(" · kept") and not any("kept" in c for c in captions[1:])
    assert f"CLIP score {scores[0]:.3f}" in status
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gen-candidates-list img')]"
        ".every(i => i.complete && i.naturalWidth === 64)"
    )
    kept = figures.nth(0).locator("img")
    kept_index = int(re.match(r"candidate (\d+),", kept.get_attribute("alt"))[1]) - 1

    # The kept candidate is the picture the page shows and the one added to the library.
    (row,) = lib.store.rows_under([str(lib.path)]).values()
    assert row.source == "generated"
    assert page.get_attribute("#gen-image", "src") == f"/api/images/{row.id}/file"
    made = lib.store.generation(row.id)
    params = json.loads(made["params"])
    assert (made["drawer"], made["seed"], params["candidates"]) == ("transformer", 5, 4)
    assert params["kept_candidate"] == kept_index
    assert [s for _, s in params["candidate_scores"]] == pytest.approx(scores, abs=6e-4)
    src = kept.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    with Image.open(BytesIO(base64.b64decode(src.split(",", 1)[1]))) as shown:
        shown_px = np.asarray(shown.convert("RGB"))
    with Image.open(row.path) as saved:
        assert np.array_equal(np.asarray(saved.convert("RGB")), shown_px)
