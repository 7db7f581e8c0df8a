"""Generation errors over HTTP speak in the request's terms (a `field`, the page's controls),
and `GET /api/generate/options` says which drawers the library can use; the CLI keeps its
own flags in its messages."""

from __future__ import annotations

import re
from types import SimpleNamespace

import httpx
import pytest

from clipsearch import Library
from clipsearch.server import BackgroundServer, ServerSettings
from tests.helpers import make_image

CLI_FLAG = re.compile(r"(?<![\w-])--[a-z]")


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    """A library whose model is not tiny-shapes: clipsearch ships no VQGAN for it."""
    root = tmp_path_factory.mktemp("gen-errors")
    for i in range(3):
        make_image(root / "photos" / f"img{i}.jpg", seed=i)
    lib = Library.open(root / "library", model=tiny_model, threads=1)
    lib.index([root / "photos"])
    with BackgroundServer(lib, ServerSettings(port=0)) as srv:
        http = httpx.Client(base_url=srv.url, timeout=60)
        yield SimpleNamespace(http=http, lib=lib, lib_dir=root / "library")
        http.close()
    lib.close()


def test_options_say_the_vqgan_drawer_cannot_be_used(served):
    r = served.http.get("/api/generate/options")
    assert r.status_code == 200, r.text
    opts = r.json()
    assert opts["default_drawer"] == "pixel"
    drawers = {d["name"]: d for d in opts["drawers"]}
    assert list(drawers) == ["vqgan", "pixel"]
    assert drawers["pixel"]["available"] is True and drawers["pixel"]["note"] is None
    assert drawers["vqgan"]["available"] is False
    assert "tiny-shapes" in drawers["vqgan"]["note"]
    assert not CLI_FLAG.search(drawers["vqgan"]["note"])


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"prompts": ["a cat"]}, "drawer", "no VQGAN for this library's model"),
        ({"prompts": ["a cat"], "drawer": "vqgan", "width": 64}, "drawer", "no VQGAN"),
        ({"prompts": ["   "], "drawer": "pixel"}, "prompts", "no prompt given"),
        ({"prompts": ["sunset:lots"], "drawer": "pixel"}, "prompts", "bad weight"),
    ],
)
def test_refusals_name_the_field_and_no_cli_flag(served, body, field, words):
    r = served.http.post("/api/generate", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_request" and err["field"] == field
    assert words in err["message"]
    said = err["message"] + " " + (err["hint"] or "")
    assert not CLI_FLAG.search(said), said
    assert "clipsearch generate" not in said
    if field == "drawer":
        assert "“Pixels” under Drawer" in err["hint"]
    assert all(j["state"] != "running" for j in served.http.get("/api/generate").json())


def test_the_cli_keeps_its_own_flags(served):
    from click.testing import CliRunner

    from clipsearch.cli import cli

    got = CliRunner().invoke(cli, ["--library", str(served.lib_dir), "generate", "a cat"])
    assert got.exit_code == 1, got.output
    assert "no VQGAN given" in got.stderr
    assert "--vqgan FOLDER" in got.stderr and "--drawer pixel" in got.stderr
