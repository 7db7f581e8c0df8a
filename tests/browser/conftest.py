"""Browser tests: Playwright driving Debian's Chromium against a live server.

They need `chromium` (apt-get install chromium; CI installs it in .ci/run) and the
`playwright` Python package (the dev extra); `playwright install` is not used. Without
chromium they are skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import make_image, new_page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TOKEN = "browser-test-token-0123456789"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _library(root, model):
    photos = root / "photos"
    for i in range(8):
        make_image(photos / f"img{i}.jpg", seed=i, size=(160, 120))
    for i in range(8, 11):
        make_image(photos / "sub" / f"sub{i}.png", seed=i, size=(120, 160))
    lib = Library.open(root / "library", model=model)
    lib.index([photos])
    return lib, photos


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("page")
    lib, photos = _library(root, tiny_model)
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        ids = {p: r.id for p, r in lib.store.rows_under([str(photos)]).items()}
        yield SimpleNamespace(url=srv.url, lib=lib, photos=photos, ids=ids, root=root)
    lib.close()


@pytest.fixture(scope="module")
def served_with_token(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("page-token")
    lib, photos = _library(root, tiny_model)
    with BackgroundServer(lib, ServerSettings(port=0, token=TOKEN)) as srv:
        yield SimpleNamespace(url=srv.url, lib=lib, photos=photos, token=TOKEN)
    lib.close()


@pytest.fixture
def page_errors():
    return []


@pytest.fixture
def page(browser, page_errors):
    """A fresh desktop-sized page; the test fails if the page logs an error."""
    context, pg = new_page(browser, page_errors, viewport={"width": 1280, "height": 800})
    yield pg
    context.close()
    assert page_errors == []
