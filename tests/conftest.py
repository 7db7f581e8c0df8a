"""Shared fixtures: a tiny real open_clip model, real image files, temp libraries, the CLI.

Everything is real: SQLite files, FAISS, open_clip (a tiny randomly initialised model saved in
`local-dir:` layout), PIL-written images on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_model(out: Path, seed: int = 0, cfg: dict | None = None) -> Path:
    """A randomly initialised open_clip model in local-dir layout (config + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = cfg or TINY_CFG
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    return out


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


def make_image(
    path: Path, seed: int = 0, size: tuple[int, int] = (96, 64), fmt: str | None = None, **save
) -> Path:
    """Write a random-pattern image (distinct per seed) in the format given by the suffix."""
    rng = np.random.default_rng(seed)
    w, h = size
    # Low-frequency pattern (blocks) so resizing keeps images distinct.
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    arr = np.kron(blocks, np.ones((h // 4 + 1, w // 4 + 1, 1), dtype=np.uint8))[:h, :w]
    img = Image.fromarray(arr, "RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt, **save)
    return path


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


def unprivileged() -> list[str]:
    """Command prefix under which file permissions apply (root ignores them otherwise)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def run_process(
    *args: str,
    env: dict | None = None,
    timeout: float = 120,
    prefix: list[str] | None = None,
    **kw,
) -> subprocess.CompletedProcess:
    """Run the real `clipsearch` console script in a fresh process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    exe = Path(sys.executable).with_name("clipsearch")
    return subprocess.run(
        [*(prefix or []), str(exe), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        **kw,
    )
