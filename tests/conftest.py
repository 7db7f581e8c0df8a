"""Shared fixtures: a tiny real open_clip model, real image files, temp libraries, the CLI.

Everything is real: SQLite files, FAISS, open_clip (a tiny randomly initialised model saved in
`local-dir:` layout), PIL-written images on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.helpers import TINY_CFG, make_image, write_tiny_model


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ONNX exports and int8 models go to a temporary cache, for every process the tests run."""
    folder = tmp_path_factory.mktemp("model-cache")
    old = os.environ.get("CLIPSEARCH_CACHE")
    os.environ["CLIPSEARCH_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("CLIPSEARCH_CACHE", None)
    else:
        os.environ["CLIPSEARCH_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Model spec of a tiny random open_clip model (`local-dir:...`)."""
    return "local-dir:" + str(write_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A second, different tiny model (for model-mismatch tests)."""
    cfg = json.loads(json.dumps(TINY_CFG))
    cfg["embed_dim"] = 24
    return "local-dir:" + str(
        write_tiny_model(tmp_path_factory.mktemp("other-model"), seed=1, cfg=cfg)
    )


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of 8 distinct JPEG/PNG photos, some in a subfolder."""
    root = tmp_path / "photos"
    for i in range(6):
        make_image(root / f"img{i}.jpg", seed=i)
    make_image(root / "sub" / "deep" / "png6.png", seed=6)
    make_image(root / "sub" / "webp7.webp", seed=7)
    return root


@pytest.fixture
def lib_dir(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def cli(lib_dir: Path, tiny_model: str) -> Callable[..., Result]:
    """Run the CLI in-process against `lib_dir` with the tiny model."""
    from clipsearch.cli import cli as command

    runner = CliRunner()

    def run(*args: str, model: str | None = tiny_model, expect: int | None = 0) -> Result:
        argv = ["--library", str(lib_dir)]
        if model:
            argv += ["--model", model]
        result = runner.invoke(command, [*argv, *args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (result.output, result.stderr)
        return result

    return run
