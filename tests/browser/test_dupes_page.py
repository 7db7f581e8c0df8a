"""Review duplicates in a real browser: groups side by side, choose a keeper, quarantine, undo."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import photo_like


@pytest.fixture
def dupes_served(tmp_path, tiny_model):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    a = photo_like(1)
    a.save(photos / "a.jpg", quality=95)
    a.resize((160, 120), Image.LANCZOS).save(photos / "sub" / "a-small.jpg")
    a.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "a-flip.jpg", quality=60)
    b = photo_like(2)
    b.save(photos / "b.jpg", quality=95)
    b.save(photos / "b-q30.jpg", quality=30)
    photo_like(3).save(photos / "c.jpg")
    lib = Library.open(tmp_path / "library", model=tiny_model)
    lib.index([photos])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        ids = {
            os.path.relpath(r.path, photos): r.id
            for r in lib.store.rows_under([str(photos)]).values()
        }
        yield srv.url, lib, photos, ids
    lib.close()


def test_review_duplicates(page, dupes_served):
    url, lib, photos, ids = dupes_served
    page.goto(f"{url}/#/duplicates")
    page.wait_for_selector("body[data-ready]")
    # The random test model puts every picture near every other: similar images are left
    # out, and the page says why instead of offering unrelated pictures.
    page.wait_for_selector("#dupes-warnings .dupes-warning")
    assert "cannot tell these pictures apart" in page.inner_text("#dupes-warnings")
    assert page.locator(".dupe-group.similar").count() == 0
    assert page.locator("#similar-section").is_hidden()
    page.uncheck("#similar")
    page.wait_for_function(
        "() => /2 groups of copies/.test(document.querySelector('#dupes-summary').textContent)"
    )
    assert page.locator("#dupes-warnings").is_hidden()
    groups = page.locator(".dupe-group")
    assert groups.count() == 2
    first = groups.filter(has=page.locator(f"figure[data-id='{ids['a.jpg']}']"))
    # Side by side: the three pictures of the group share one row.
    boxes = [first.locator("figure").nth(i).bounding_box() for i in range(3)]
    assert len({round(b["y"]) for b in boxes}) == 1
    assert first.locator("figure.keep").get_attribute("data-id") == str(ids["a.jpg"])
    assert "near" in first.inner_text() and "320×240" in first.inner_text()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.dupe img')]"
        ".every((i) => i.complete && i.naturalWidth > 0)"
    )

    # Keep the small copy instead (by keyboard: the radio is a native control).
    radio = first.locator(f"figure[data-id='{ids['sub/a-small.jpg']}'] input[type=radio]")
    radio.focus()
    page.keyboard.press("Space")
    assert first.locator("figure.keep").get_attribute("data-id") == str(ids["sub/a-small.jpg"])
    first.locator("button.move-group").click()
    dialog = page.locator("#confirm-move")
    dialog.wait_for(state="visible")  # asks first, and says what stays
    assert "Move 2 files to quarantine?" in dialog.inner_text()
    assert "a-small.jpg, which stays" in dialog.inner_text()
    page.keyboard.press("Escape")  # changed my mind: nothing moves
    dialog.wait_for(state="hidden")
    assert (photos / "a.jpg").is_file() and (photos / "a-flip.jpg").is_file()
    first.locator("button.move-group").click()
    page.click("#confirm-move-ok")
    page.wait_for_function(
        "() => /Moved 2 files/.test(document.querySelector('#dupes-done').textContent)"
    )
    page.wait_for_function("() => document.querySelectorAll('.dupe-group').length === 1")

    # The library followed: the copies are in the quarantine folder, the chosen keeper stayed.
    assert (photos / "sub" / "a-small.jpg").is_file()
    assert not (photos / "a.jpg").exists() and not (photos / "a-flip.jpg").exists()
    moved = lib.store.get_rows([ids["a.jpg"], ids["a-flip.jpg"]])
    assert all("/quarantine/" in r.path and os.path.isfile(r.path) for r in moved.values())

    page.click("#undo-move")
    page.wait_for_function(
        "() => /Restored 2 files/.test(document.querySelector('#dupes-done').textContent)"
    )
    page.wait_for_function("() => document.querySelectorAll('.dupe-group').length === 2")
    assert (photos / "a.jpg").is_file() and (photos / "a-flip.jpg").is_file()
    assert lib.store.get_rows([ids["a.jpg"]])[ids["a.jpg"]].path == str(photos / "a.jpg")


@pytest.fixture
def shapes_served(tmp_path):
    """tiny-shapes (a trained model): 12 distinct scenes, two showing the same description
    (look-alikes at cosine ~0.98), an exact copy and a smaller copy."""
    from clipsearch.demo import shapes

    same = shapes.Description(
        count=1, size="large", colour="red", kind="circle", background="white"
    )
    folder = tmp_path / "shapes"
    paths = shapes.write_collection(folder, 12, seed=13, descriptions=[same, same, *[None] * 10])
    (folder / "copy-of-last.png").write_bytes(paths[-1].read_bytes())
    Image.open(paths[5]).resize((128, 128), Image.LANCZOS).save(folder / "five-small.png")
    lib = Library.open(tmp_path / "library", model="tiny-shapes")
    lib.index([folder])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        ids = {os.path.basename(p): r.id for p, r in lib.store.rows_under([str(folder)]).items()}
        yield srv.url, folder, paths, ids
    lib.close()


def test_similar_groups_stand_apart_and_never_move_with_copies(page, shapes_served):
    url, folder, paths, ids = shapes_served
    page.goto(f"{url}/#/duplicates")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#similar-section .dupe-group")
    assert page.locator("#dupes-warnings").is_hidden()
    copies = page.locator("#copies-section .dupe-group")
    similar = page.locator("#similar-section .dupe-group")
    assert copies.count() == 2 and similar.count() == 1
    alike = {paths[0].name, paths[1].name}
    shown = similar.locator("figure").evaluate_all("fs => fs.map((f) => +f.dataset.id)")
    assert sorted(shown) == sorted(ids[n] for n in alike)
    assert "similar" in similar.inner_text()
    assert (
        page.locator("#copies-section").locator(f"figure[data-id='{ids[paths[0].name]}']").count()
        == 0
    )
    summary = page.inner_text("#dupes-summary")
    assert "2 groups of copies" in summary and "1 group of similar images" in summary

    # "Move all" moves copies only, and asks first.
    page.click("#move-all")
    dialog = page.locator("#confirm-move")
    dialog.wait_for(state="visible")
    assert "Move 2 files to quarantine?" in dialog.inner_text()
    assert "Similar images are not included" in dialog.inner_text()
    page.click("#confirm-move-cancel")
    dialog.wait_for(state="hidden")
    assert len(list(folder.iterdir())) == 14  # cancelled: nothing moved
    page.click("#move-all")
    page.click("#confirm-move-ok")
    page.wait_for_function(
        "() => /Moved 2 files/.test(document.querySelector('#dupes-done').textContent)"
    )
    page.wait_for_function("() => !document.querySelector('#copies-section .dupe-group')")
    assert not (folder / "copy-of-last.png").exists() and not (folder / "five-small.png").exists()
    assert all((folder / n).is_file() for n in alike)  # look-alikes stay
    assert page.locator("#similar-section .dupe-group").count() == 1

    # A similar group moves only on its own button, with its own question.
    page.locator("#similar-section button.move-group").click()
    dialog.wait_for(state="visible")
    assert "only look similar" in dialog.inner_text() and "not copies" in dialog.inner_text()
    page.click("#confirm-move-cancel")
    dialog.wait_for(state="hidden")
    assert all((folder / n).is_file() for n in alike)


def test_duplicates_page_on_a_phone(browser, dupes_served, page_errors):
    from tests.helpers import new_page

    url, _, _, _ = dupes_served
    context, page = new_page(browser, page_errors, viewport={"width": 390, "height": 800})
    try:
        page.goto(f"{url}/#/duplicates")
        page.wait_for_selector(".dupe-group")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390  # no sideways scrolling
    finally:
        context.close()
    assert page_errors == []


def test_search_page_filters_by_tag(page, dupes_served):
    from clipsearch.store.features import ids_with_tag, tag_counts

    url, lib, _, _ = dupes_served
    labels = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    lib.tag(labels, min_score=1 / len(labels))  # above-uniform labels only (a random model)
    counts = dict(tag_counts(lib.store))
    label = min((n, lb) for lb, n in counts.items() if 0 < n < 6)[1]  # a selective tag
    tagged = sorted(ids_with_tag(lib.store, label).tolist())
    page.goto(f"{url}/#/search?q=picture&tag={label}")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_function("() => /result/.test(document.querySelector('#summary').textContent)")
    shown = page.eval_on_selector_all("#grid a.tile", "els => els.map(e => +e.dataset.id)")
    assert sorted(shown) == tagged
    assert page.input_value("#tag") == label
    suggestions = page.eval_on_selector_all("#tag-list option", "os => os.map(o => o.value)")
    assert sorted(suggestions) == sorted(counts)
